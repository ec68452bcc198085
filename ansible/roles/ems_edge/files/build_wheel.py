"""Builds a wheel of an EMS Switchboard checkout, on the controller, once per source state.

Run by the role (tasks/wheel.yml) with the controller's Python; prints one JSON
object: {"wheel": PATH, "version": VERSION, "built": BOOL}.

The wheel is built from a copy of the tree (setuptools' build/ directory in a
checkout can hold modules deleted since, which would end up in the wheel), with
SOURCE_DATE_EPOCH fixed, so the same sources give the same bytes: the role
copies the wheel to the Pi and reinstalls only when its bytes change. A digest
of the sources is kept next to the wheel; while it matches, nothing is built.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

# Not part of the wheel, or made by builds and tools.
IGNORED = ("build", "dist", "*.egg-info", "__pycache__", "tests", "ansible", "bench", "ems-data")
# Zip timestamps start in 1980; any fixed value gives reproducible bytes.
SOURCE_DATE_EPOCH = "315532800"


def _ignored(directory: str, names: list[str]) -> set[str]:
    skipped = set(shutil.ignore_patterns(*IGNORED)(directory, names))
    return skipped | {name for name in names if name.startswith(".")}


def _copy_tree(source: Path, tree: Path) -> None:
    shutil.copytree(source, tree, ignore=_ignored, symlinks=True)


def _digest(tree: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(tree)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def build(source: Path, out: Path) -> dict[str, object]:
    if importlib.util.find_spec("pip") is None:
        raise SystemExit(
            f"the controller's Python ({sys.executable}) has no pip to build the agent's "
            "wheel: install pip for it (Debian: python3-pip), or build a wheel elsewhere "
            "and set ems_edge_wheel"
        )
    if not (source / "pyproject.toml").is_file():
        raise SystemExit(f"{source} is not an EMS Switchboard checkout (no pyproject.toml)")
    project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    if project.get("name") != "ems-switchboard":
        raise SystemExit(f"{source}/pyproject.toml is not the ems-switchboard project")
    out.mkdir(parents=True, exist_ok=True)
    with (out / ".lock").open("w") as lock:
        # Several Pis of one run build from the same checkout into the same folder.
        fcntl.flock(lock, fcntl.LOCK_EX)
        with tempfile.TemporaryDirectory(prefix="ems-wheel-") as scratch:
            tree = Path(scratch) / "tree"
            _copy_tree(source, tree)
            digest = _digest(tree)
            stamp = out / "source.json"
            if stamp.is_file():
                known = json.loads(stamp.read_text(encoding="utf-8"))
                wheel = out / str(known.get("wheel", ""))
                if known.get("digest") == digest and wheel.is_file():
                    return {"wheel": str(wheel), "version": known["version"], "built": False}
            built = Path(scratch) / "wheels"
            env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH}
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "wheel",
                    "--no-deps",
                    "-q",
                    "-w",
                    str(built),
                    str(tree),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(
                    f"building the agent's wheel from {source} failed (pip exited "
                    f"{done.returncode}; it needs the package index for setuptools, "
                    "or set ems_edge_wheel):\n"
                    f"{done.stdout}{done.stderr}"
                )
            (made,) = built.glob("ems_switchboard-*.whl")
            for old in out.glob("ems_switchboard-*.whl"):
                old.unlink()
            wheel = out / made.name
            shutil.move(made, wheel)
            version = made.name.split("-")[1]
            stamp.write_text(
                json.dumps({"digest": digest, "wheel": wheel.name, "version": version}),
                encoding="utf-8",
            )
            return {"wheel": str(wheel), "version": version, "built": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the checkout (the folder with pyproject.toml)")
    parser.add_argument("out", type=Path, help="where the wheel is kept")
    args = parser.parse_args()
    result = build(args.source.expanduser().resolve(), args.out.expanduser().resolve())
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
