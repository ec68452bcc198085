"""The routes reach the running hub only through their narrow interfaces (hub/ports.py).

docs/architecture.md, "Inside the hub": ``Hub``'s parts are private, each route
gets its own port on ``app.state``, and only hub/server.py (the shutdown order)
and hub/app.py (which builds the ports) hold the ``Hub`` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

from hub.runtime import Hub, HubSettings
from tests.support.hub import running_hub

HUB = Path(__file__).resolve().parents[2] / "hub"
# The modules that may hold the Hub itself: it lives in runtime.py, app.py enters it
# and builds the ports from it, server.py orders the shutdown with it.
HOLDERS = {"runtime.py", "app.py", "server.py"}


def _reaches_for_the_hub(tree: ast.AST) -> list[str]:
    """``app.state.hub`` read, or the ``Hub`` class imported."""
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "hub"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "state"
        ):
            found.append(f"line {node.lineno}: state.hub")
        if isinstance(node, ast.ImportFrom) and node.module == "hub.runtime":
            found += [f"line {node.lineno}: Hub" for a in node.names if a.name == "Hub"]
    return found


def test_no_route_module_holds_the_hub() -> None:
    offenders = {}
    for path in sorted(HUB.rglob("*.py")):
        if path.name in HOLDERS and path.parent == HUB:
            continue
        found = _reaches_for_the_hub(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[str(path.relative_to(HUB.parent))] = found
    assert offenders == {}


def test_the_hubs_parts_are_private(tmp_path: Path) -> None:
    hub = Hub(HubSettings(data_dir=tmp_path))
    public = sorted(name for name in vars(hub) if not name.startswith("_"))
    # The one owner of the counters is public: hub/app.py serves it on /metrics.
    assert public == ["metrics"]


async def test_each_route_gets_its_own_port_on_the_app(tmp_path: Path) -> None:
    async with running_hub(None, tmp_path / "data") as running:
        state = running.server.app.state
        hub = running.hub
        assert state.device_port is hub.device_port
        assert state.dashboard_port is hub.dashboard_port
        assert state.reader is hub.reader
        assert state.viewer is hub.viewer_policy
        assert state.metrics is hub.metrics
        # The reader is read-only: a frozen view, its storage reads typed apart.
        assert not hub.reader.closing
        assert hub.reader.connected() == []
        assert hub.reader.writer_health().ready
