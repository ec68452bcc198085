"""The repo's files cite only what the repo has: its own docs, never outside documents.

A contributor has the repository and nothing else, so a comment, docstring or doc that
points at a design document kept elsewhere, or at a guide they never saw, sends them
nowhere. And every document the code and docs name must exist under that name.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Built from parts so this file does not hold the strings it looks for. The names are
# case-sensitive: docs/protocol.md is the repo's own.
OUTSIDE_DOCUMENTS = re.compile("DESIGN" + r"\.md|" + "PROTOCOL" + r"\.md|(?i:seed" + " guide)")

# Docs cited before they are first committed (a generated file on its way); none today.
GENERATED_LATER: frozenset[str] = frozenset()

_SKIPPED_DIRS = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
# [text](target) and ![alt](target): the target up to a space, a ')' or a '#'.
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s#]+)")
# A path to a doc written in prose or code: docs/<name>.md.
_DOC_MENTION = re.compile(r"(?<![\w/.-])docs/[\w-]+\.md\b")


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        # Not a git checkout (an unpacked archive): every file outside the skipped folders.
        return [
            p
            for p in ROOT.rglob("*")
            if p.is_file() and not _SKIPPED_DIRS.intersection(p.relative_to(ROOT).parts)
        ]
    names = [n for n in out.decode().split("\0") if n]
    return [ROOT / n for n in names if (ROOT / n).is_file()]


def _texts() -> list[tuple[Path, str]]:
    texts = []
    for path in _tracked_files():
        try:
            texts.append((path, path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue  # a picture or another binary file
    return texts


def test_the_files_are_found() -> None:
    names = {p.relative_to(ROOT).as_posix() for p, _ in _texts()}
    assert {"README.md", "docs/protocol.md", "telemetry/reading.py"} <= names


def test_no_file_cites_a_document_outside_the_repo() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path, text in _texts()
        for number, line in enumerate(text.splitlines(), 1)
        if OUTSIDE_DOCUMENTS.search(line)
    ]
    assert found == [], "\n".join(found)


def test_every_markdown_link_names_a_file_that_exists() -> None:
    missing = []
    for path, text in _texts():
        if path.suffix != ".md":
            continue
        for target in _LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # https:, mailto: ...
            resolved = (path.parent / target).resolve()
            if resolved.relative_to(ROOT).as_posix() in GENERATED_LATER:
                continue
            if not resolved.exists():
                missing.append(f"{path.relative_to(ROOT)}: {target}")
    assert missing == [], "\n".join(missing)


def test_every_docs_path_named_in_code_and_docs_exists() -> None:
    missing = sorted(
        {
            f"{path.relative_to(ROOT)}: {mention}"
            for path, text in _texts()
            for mention in _DOC_MENTION.findall(text)
            if mention not in GENERATED_LATER and not (ROOT / mention).is_file()
        }
    )
    assert missing == [], "\n".join(missing)


def test_the_checks_catch_what_they_look_for() -> None:
    for line in ("DESIGN" + ".md, Layout", "(PROTOCOL" + ".md)", "the Seed" + " Guide's client"):
        assert OUTSIDE_DOCUMENTS.search(line), line
    assert not OUTSIDE_DOCUMENTS.search("docs/protocol.md, a plant seed, guide")
    assert _LINK.findall("[the protocol](docs/protocol.md#doors) ![x](shot.png)") == [
        "docs/protocol.md",
        "shot.png",
    ]
    assert _DOC_MENTION.findall("(docs/protocol.md, x) ../docs/a.md bench/docs/b.md") == [
        "docs/protocol.md"
    ]
