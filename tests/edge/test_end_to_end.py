"""End to end against the moving simulator: the plant stepped in accelerated time, the real
hub process, ``ems edge run`` as a process; the stored rows read back through the hub's API.

The test steps the plant itself (as ``ems sim --speed 60`` does every 0.5 s) and keeps
every state it served, so each stored section can be traced to the plant state it was
read from, and the physics checked on what the hub stored.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from simulation.runner import SimulatedSite
from tests.edge.agent_site import START, site_config
from tests.edge.hubproc import HubProcess, running_hub
from tests.edge.test_cli import AgentProcess, stored_seqs, wait_stored

SPEED = 60.0  # one simulated minute per second
TICK_S = 0.5
SECTIONS = ("inverter", "grid", "solar", "battery")
# Fields that tell the plant states apart, with what the registers' resolution allows.
KEYS: dict[str, tuple[tuple[str, float, float], ...]] = {  # (field, relative, absolute)
    "inverter": (("ac_power_w", 0.002, 2.0), ("dc_power_w", 0.002, 2.0)),
    "grid": (("power_w", 1e-5, 0.1), ("voltage_v", 1e-5, 0.01)),
    "solar": (("pv_power_w", 0.001, 0.02), ("pv_voltage_v", 0.001, 0.02)),
    "battery": (("soc_pct", 0.0, 0.1), ("power_w", 0.002, 1.0)),
}


@dataclass
class SteppedSite:
    """The site, stepped from here; every state served is kept, in order."""

    site: SimulatedSite
    served: list[dict[str, Any]] = field(default_factory=list)
    since: list[float] = field(default_factory=list)  # wall time each state was first served

    async def run(self) -> None:
        self.served.append(self.site.state.sections())
        self.since.append(time.time())
        while True:
            await asyncio.sleep(TICK_S)
            self.served.append(self.site.step(TICK_S * SPEED).sections())
            self.since.append(time.time())

    def source(self, name: str, section: dict[str, Any], ts: str) -> int:
        """The served state this section was read from: the newest that matches among
        those served before the reading was taken and within the agent's freshness
        limit (1 s here) of it. Fails if none does."""
        taken = datetime.fromisoformat(ts).timestamp()
        latest = bisect.bisect_right(self.since, taken) - 1
        for index in range(latest, -1, -1):
            if index + 1 < len(self.since) and self.since[index + 1] < taken - 1.5:
                break  # replaced by a newer state before the freshness limit
            if _matches(name, section, self.served[index][name]):
                return index
        raise AssertionError(f"{name} {section} is no state the plant was in")

    def common_source(self, row: dict[str, Any], sources: dict[str, int]) -> int | None:
        """The newest state that all four sections match, if they were read from one."""
        for index in range(max(sources.values()), min(sources.values()) - 1, -1):
            state = self.served[index]
            if all(_matches(name, row[name], state[name]) for name in SECTIONS):
                return index
        return None


def _matches(name: str, section: dict[str, Any], plant: dict[str, Any]) -> bool:
    return all(
        math.isclose(section[key], plant[key], rel_tol=rel, abs_tol=abs_)
        for key, rel, abs_ in KEYS[name]
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


@pytest.fixture(
    params=[("sunny", 12), ("battery_full", 12), ("battery_empty", 23)],
    ids=["sunny-noon", "battery_full-noon", "battery_empty-midnight"],
)
async def stepped(request: pytest.FixtureRequest) -> AsyncIterator[SteppedSite]:
    scenario, hour = request.param
    # The site's own loop would step every hour: the test's task steps it instead.
    async with SimulatedSite(
        scenario=scenario, tcp=("127.0.0.1", 0), start=START.replace(hour=hour), tick_s=3600.0
    ) as site:
        stepped = SteppedSite(site)
        task = asyncio.create_task(stepped.run(), name="test.plant_loop")
        try:
            yield stepped
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_the_stored_rows_follow_the_moving_plant(
    hub: HubProcess, stepped: SteppedSite, tmp_path: Path
) -> None:
    scenario = stepped.site.plant.scenario
    device_id = f"e2e_{scenario}"
    token = await asyncio.to_thread(hub.token_add, device_id)
    path = tmp_path / "edge.toml"
    path.write_text(site_config(tmp_path, hub.url, stepped.site.tcp_port, device_id))
    began = datetime.now(UTC)
    agent = AgentProcess(path, token)
    try:
        await wait_stored(hub, device_id, began, 25)  # 5 s at 0.2 s: 5 simulated minutes
        assert await asyncio.to_thread(agent.stop) == 0, agent.text()
    finally:
        if agent.process.poll() is None:
            agent.process.kill()
    rows = await asyncio.to_thread(hub.readings, device_id, start=began, end=datetime.now(UTC))
    seqs = await stored_seqs(hub, device_id, began)  # also: no (device_id, ts) twice

    # Every reading sampled was stored, once, in order; each with the four sections.
    assert seqs == list(range(len(seqs)))
    assert len(rows) >= 25
    assert [row["seq"] for row in rows] == seqs
    for row in rows:
        assert set(SECTIONS) <= set(row), row

    # Each section is a state the plant was in, and time only moves forward.
    sources = {
        name: [stepped.source(name, row[name], row["ts"]) for row in rows] for name in SECTIONS
    }
    for name in SECTIONS:
        assert sources[name] == sorted(sources[name]), name
    assert sources["grid"][-1] - sources["grid"][0] >= 6  # the plant moved under the agent

    # The physics, on what the hub stored. Where all four devices were read from the
    # same plant state (the plant steps every 0.5 s, a poll cycle takes milliseconds),
    # the AC side balances: inverter out + grid import = house load (the house is no
    # device: its load is the plant's), and the DC bus: PV minus the charger's losses
    # plus battery discharge feeds the inverter.
    common = [
        stepped.common_source(row, {name: sources[name][i] for name in SECTIONS})
        for i, row in enumerate(rows)
    ]
    same_state = [
        (row, stepped.served[index])
        for row, index in zip(rows, common, strict=True)
        if index is not None
    ]
    assert len(same_state) >= 0.8 * len(rows)
    for row, plant in same_state:
        inverter, grid, solar, battery = (row[name] for name in SECTIONS)
        house = plant["extra"]["house_power_w"]
        assert inverter["ac_power_w"] + grid["power_w"] == pytest.approx(house, rel=0.01, abs=5)
        assert sum(grid["phase_power_w"]) == pytest.approx(grid["power_w"], rel=0.01, abs=1)
        dc_in = solar["pv_power_w"] + battery["power_w"]
        assert 0 <= dc_in - inverter["dc_power_w"] <= 0.1 * solar["pv_power_w"] + 5, row
        assert (
            0
            <= inverter["dc_power_w"] - inverter["ac_power_w"]
            <= (0.1 * inverter["dc_power_w"] + 5)
        ), row

    # State of charge: within 0..100, moving the way the battery's power pushes it.
    soc = [row["battery"]["soc_pct"] for row in rows]
    power = [row["battery"]["power_w"] for row in rows]
    assert all(0.0 <= value <= 100.0 for value in soc)
    mean_power = sum(power) / len(power)
    if abs(mean_power) > 100:
        assert (soc[-1] - soc[0]) * -mean_power > 0, (soc, power)
    else:  # idle (full, or at its reserve): it stays put
        assert abs(soc[-1] - soc[0]) <= 0.3, (soc, power)
    for (a, pa), (b, pb) in itertools.pairwise(zip(soc, power, strict=True)):
        if pa < -50 and pb < -50:  # charging throughout: never falls
            assert b >= a - 0.1
        if pa > 50 and pb > 50:  # discharging throughout: never rises
            assert b <= a + 0.1

    # Each scenario's own flow (scenarios.py): the PV charges the battery, and is
    # exported once the battery is full; an empty battery at midnight imports.
    grid = [row["grid"]["power_w"] for row in rows]
    expected = {
        "sunny": mean_power < -500,
        "battery_full": all(value < -100 for value in grid),
        "battery_empty": all(value > 100 for value in grid),
    }
    assert expected[scenario], (grid, power)

    # Energy counters never go back.
    counters = [
        ("inverter", "energy_total_wh"),
        ("grid", "import_energy_wh"),
        ("grid", "export_energy_wh"),
        ("solar", "energy_total_wh"),
    ]
    for name, key in counters:
        # An inverter that never delivered reports no energy total (SunSpec: acc32 0
        # is "not accumulated"); the field is then left out.
        values = [row[name][key] for row in rows if key in row[name]]
        assert values == sorted(values), (name, key, values)
    # ... and the one the scenario's flow feeds moves on.
    name, key = {
        "sunny": ("solar", "energy_total_wh"),
        "battery_full": ("grid", "export_energy_wh"),
        "battery_empty": ("grid", "import_energy_wh"),
    }[scenario]
    assert rows[-1][name][key] > rows[0][name][key], (name, key)
