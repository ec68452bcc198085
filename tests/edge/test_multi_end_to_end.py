"""End to end, a site of several devices per role: ``ems sim --site multi``'s devices,
``ems edge run`` with the config ``ems sim`` prints, the real hub process; what the hub
stored (read back through its API) and what a dashboard received.

The plant stands still during the test (stepped once by the test, then once an hour), so every
reading's totals can be held against the devices beside them and against the
plant itself, within the registers' resolution.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from simulation.layout import config_lines
from simulation.multi_site import EV_SHARE, HEAT_PUMP_SHARE, LAYOUT
from simulation.runner import SimulatedSite
from tests.edge.agent_site import START
from tests.edge.hubproc import HubProcess, running_hub
from tests.edge.test_cli import AgentProcess, wait_stored

DEVICE_ID = "e2e_multi"
NAMES = {device.name for device in LAYOUT.devices}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


def agent_config(tmp_path: Path, hub_url: str, modbus_port: int) -> str:
    """The config an installer writes from ``ems sim --site multi``'s printed lines."""
    lines = config_lines(LAYOUT, host="127.0.0.1", port=modbus_port)
    return (
        f'device_id = "{DEVICE_ID}"\n\n'
        f'[hub]\nurl = "{hub_url}"\n\n'
        f'[buffer]\npath = "{tmp_path / "buffer.db"}"\nmax_mb = 16\n\n'
        "[sampling]\ninterval_s = 0.25\n\n"
        "[clock]\nrequire_sync = false\n\n"
        + lines.replace("port = ", "timeout_s = 0.5\nport = ", 1)
    )


async def _watch(url: str, frames: list[dict[str, Any]]) -> None:
    async with connect(url) as ws:
        async for text in ws:
            frames.append(json.loads(text))


async def test_totals_and_each_device_reach_storage_and_dashboards(
    hub: HubProcess, tmp_path: Path
) -> None:
    token = await asyncio.to_thread(hub.token_add, DEVICE_ID)
    frames: list[dict[str, Any]] = []
    watcher = asyncio.create_task(_watch(f"{hub.url}/ws/dashboard/{DEVICE_ID}", frames))
    async with SimulatedSite(
        layout=LAYOUT, tcp=("127.0.0.1", 0), start=START, tick_s=3600.0
    ) as site:
        # Half an hour on: every energy counter is past its first Wh (SunSpec reports
        # a counter of 0 as "not accumulated").
        plant = site.step(1800.0).sections()
        path = tmp_path / "edge.toml"
        path.write_text(agent_config(tmp_path, hub.url, site.tcp_port))
        began = datetime.now(UTC)
        agent = AgentProcess(path, token)
        try:
            await wait_stored(hub, DEVICE_ID, began, 10)
            assert await asyncio.to_thread(agent.stop) == 0, agent.text()
        finally:
            if agent.process.poll() is None:
                agent.process.kill()
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    rows = await asyncio.to_thread(hub.readings, DEVICE_ID, start=began, end=datetime.now(UTC))
    assert len(rows) >= 10
    # Every device read, in every reading once all were tried (the agent waits for them).
    complete = [row for row in rows if set(row.get("devices", {})) == NAMES]
    assert len(complete) >= len(rows) - 1, [sorted(row.get("devices", {})) for row in rows]
    house = plant["extra"]["house_power_w"]
    for row in complete:
        devices = row["devices"]

        def own(name: str, section: str, field: str, devices: dict[str, Any] = devices) -> float:
            value = devices[name][section][field]
            assert isinstance(value, float | int)
            return float(value)

        # The totals are the devices' sums (the agent adds the values it decoded) ...
        for section, field, names in (
            ("inverter", "ac_power_w", ("inverter_east", "inverter_west")),
            ("inverter", "energy_total_wh", ("inverter_east", "inverter_west")),
            ("battery", "power_w", ("stack_a", "stack_b")),
            ("battery", "current_a", ("stack_a", "stack_b")),
        ):
            parts = sum(own(name, section, field) for name in names)
            assert row[section][field] == pytest.approx(parts, rel=1e-9, abs=1e-6), field
        # ... the sub-meters are beside the grid's total, not in it ...
        assert row["grid"]["power_w"] == own("meter_main", "grid", "power_w")
        assert devices["heat_pump"]["total"] is False
        assert devices["ev_charger"]["total"] is False
        # ... and all of it is the plant within register resolution: SunSpec's power in
        # 1 W and counter in 1 Wh per inverter, Seplos's 10 mV x 10 mA per stack.
        assert row["inverter"]["ac_power_w"] == pytest.approx(
            plant["inverter"]["ac_power_w"], abs=1.0
        )
        assert row["inverter"]["energy_total_wh"] == pytest.approx(
            plant["inverter"]["energy_total_wh"], abs=1.0
        )
        assert row["battery"]["power_w"] == pytest.approx(plant["battery"]["power_w"], abs=5.0)
        assert row["battery"]["soc_pct"] == pytest.approx(plant["battery"]["soc_pct"], abs=0.05)
        assert row["grid"]["power_w"] == pytest.approx(plant["grid"]["power_w"], rel=1e-6)
        assert own("heat_pump", "grid", "power_w") == pytest.approx(
            HEAT_PUMP_SHARE * house, rel=1e-6
        )
        assert own("ev_charger", "grid", "power_w") == pytest.approx(EV_SHARE * house, rel=1e-6)
    # A dashboard received them live, each device beside the totals.
    live = [f for f in frames if f.get("type") == "reading" and set(f.get("devices", {})) == NAMES]
    assert live, [f.get("type") for f in frames]
    stored = {row["ts"]: row for row in rows}
    for frame in live:
        if frame["ts"] in stored:
            assert frame["devices"] == stored[frame["ts"]]["devices"]
            assert frame["inverter"] == stored[frame["ts"]]["inverter"]
