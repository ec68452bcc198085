"""The whole agent in-process: simulated devices on loopback Modbus, the real hub, a real buffer."""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.clock import ClockSample, SyncState, SystemClock, TimeSource
from edge.outbox import OutboxError, read_status
from simulation.modbus_server import DeviceServer, Fault, FaultKind
from tests.edge.agent_site import OPTIONS, make_config, stored
from tests.edge.hubproc import HubProcess, running_hub
from tests.support.polling import until
from tests.tcp_proxy import CutMode, TcpProxy


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    with running_hub(tmp_path_factory.mktemp("hub")) as process:
        yield process


async def test_readings_flow_to_the_hub_and_match_the_plant(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
) -> None:
    served, plant = site
    token = await asyncio.to_thread(hub.token_add, "agent_flow")
    config = make_config(tmp_path, hub, served.tcp_port, "agent_flow")
    agent = Agent(config, token=token, options=OPTIONS)
    began = datetime.now(UTC)
    task = asyncio.create_task(agent.run(), name="test.agent")
    await until(lambda: agent.sampler is not None and agent.sampler.readings >= 10)
    agent.stop()
    async with asyncio.timeout(15):  # SIGTERM's budget: "within a few seconds"
        await task
    assert agent.sampler is not None
    produced = agent.sampler.readings
    rows = await stored(hub, "agent_flow", began)
    # Everything sampled was stored, once, in order, without a gap in seq.
    assert [row["seq"] for row in rows] == list(range(produced))
    assert len({row["ts"] for row in rows}) == produced
    status = read_status(config.buffer.path)
    assert (status.depth, status.dropped) == (0, 0)
    assert {record.device: record.state for record in status.devices} == dict.fromkeys(
        ("bms", "charger", "inverter", "meter"), "ok"
    )
    last = rows[-1]
    grid, battery = last["grid"], last["battery"]
    assert isinstance(grid, dict)
    assert isinstance(battery, dict)
    assert grid["power_w"] == pytest.approx(plant["grid"]["power_w"], rel=1e-4)
    assert battery["soc_pct"] == pytest.approx(plant["battery"]["soc_pct"], abs=0.1)
    assert {"inverter", "grid", "solar", "battery"} <= set(last)


async def test_an_unplugged_device_is_left_out_and_comes_back(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
) -> None:
    served, _ = site
    token = await asyncio.to_thread(hub.token_add, "agent_unplug")
    config = make_config(tmp_path, hub, served.tcp_port, "agent_unplug")
    agent = Agent(config, token=token, options=OPTIONS)
    began = datetime.now(UTC)
    task = asyncio.create_task(agent.run(), name="test.agent")
    await until(lambda: agent.sampler is not None and agent.sampler.readings >= 3)
    served.set_fault(2, Fault(FaultKind.SILENT))  # the meter is unplugged
    await until(lambda: agent.health["meter"].state.value == "failing")
    assert agent.sampler is not None
    mark = agent.sampler.readings
    await until(lambda: agent.sampler is not None and agent.sampler.readings >= mark + 5)
    served.set_fault(2, Fault(FaultKind.NONE))
    await until(lambda: agent.health["meter"].state.value == "ok")
    mark = agent.sampler.readings
    await until(lambda: agent.sampler is not None and agent.sampler.readings >= mark + 3)
    agent.stop()
    async with asyncio.timeout(15):
        await task
    rows = await stored(hub, "agent_unplug", began)
    assert [row["seq"] for row in rows] == list(range(agent.sampler.readings))
    with_grid = ["grid" in row for row in rows]
    # Present, then absent while unplugged (never stale values), then present again.
    first_gap = with_grid.index(False)
    back = with_grid.index(True, first_gap)
    assert all(with_grid[:first_gap])
    assert not any(with_grid[first_gap:back])
    assert back - first_gap >= 5
    assert with_grid[-1]
    assert all("battery" in row for row in rows)


async def test_a_full_buffer_while_the_hub_is_unreachable_drops_oldest_counted(
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
) -> None:
    served, _ = site
    hub = HubProcess(tmp_path / "nohub")  # never started: nothing listens
    config = make_config(tmp_path, hub, served.tcp_port, "agent_full")
    config = dataclasses.replace(
        config, buffer=dataclasses.replace(config.buffer, max_mb=0.1), interval_s=0.05
    )
    agent = Agent(config, token="unused", options=OPTIONS)
    task = asyncio.create_task(agent.run(), name="test.agent")

    def filled() -> bool:
        try:
            return read_status(config.buffer.path).dropped > 0
        except OutboxError:  # not created yet
            return False

    try:
        await until(filled, within=120)
    finally:
        agent.stop()
        async with asyncio.timeout(15):
            await task
    status = read_status(config.buffer.path)
    assert agent.sampler is not None
    assert status.depth + status.dropped == agent.sampler.readings
    assert status.used_bytes <= config.buffer.max_bytes
    assert status.last_seq == agent.sampler.readings - 1


@dataclasses.dataclass
class SteeredClock:
    """This machine's monotonic clock, with a wall clock and sync state the test steers."""

    wall_shift: float = 0.0
    sync: SyncState = SyncState.SYNCED
    real: SystemClock = dataclasses.field(default_factory=SystemClock)
    monos: list[float] = dataclasses.field(default_factory=list)  # every sample's, in order

    def sample(self) -> ClockSample:
        sample = self.real.sample()
        self.monos.append(sample.mono)
        return ClockSample(sample.wall + self.wall_shift, sample.mono, self.sync)


async def test_readings_taken_with_a_wrong_clock_are_held_and_restamped(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
) -> None:
    served, _ = site
    token = await asyncio.to_thread(hub.token_add, "agent_clock")
    config = make_config(tmp_path, hub, served.tcp_port, "agent_clock")
    # No hub-time fallback: readings wait for NTP (test_a_pi_without_ntp_takes_the_hubs_time).
    config = dataclasses.replace(
        config,
        clock=dataclasses.replace(config.clock, require_sync=True, hub_fallback=False),
    )
    began = datetime.now(UTC)
    # A Pi booting without a battery clock: 1970, not synced.
    clock = SteeredClock(wall_shift=-began.timestamp() + 1000.0, sync=SyncState.UNSYNCED)
    agent = Agent(config, token=token, options=OPTIONS, clock=clock)
    task = asyncio.create_task(agent.run(), name="test.agent")

    def held() -> int:
        try:
            return read_status(config.buffer.path).held
        except OutboxError:  # not created yet, or created but without its table yet
            return 0

    await until(lambda: held() >= 5)
    assert await stored(hub, "agent_clock", began) == []  # nothing sent with a wrong time
    clock.wall_shift, clock.sync = 0.0, SyncState.SYNCED  # NTP synced
    await until(lambda: held() == 0)
    assert agent.sampler is not None
    mark = agent.sampler.readings
    # Someone sets the clock an hour ahead (the kernel drops sync), NTP steps it back.
    clock.wall_shift, clock.sync = 3600.0, SyncState.UNSYNCED
    await until(lambda: held() >= 5)
    clock.wall_shift, clock.sync = 0.0, SyncState.SYNCED
    await until(lambda: agent.sampler is not None and agent.sampler.readings >= mark + 12)
    agent.stop()
    async with asyncio.timeout(15):
        await task
    rows = await stored(hub, "agent_clock", began)
    assert [row["seq"] for row in rows] == list(range(agent.sampler.readings))
    stamps = [datetime.fromisoformat(str(row["ts"])) for row in rows]
    # Every reading carries its true instant: all within the run, in order, each at
    # an instant the agent read its clock, on the true wall clock (the steered shift
    # is 0 again). A reading stamped in 1970 or an hour ahead is years or 3600 s off.
    # Checked against the instants the agent took, not a fixed 0.2 s step: a loaded
    # machine wakes the sampler late, which moves a reading's instant and stamp alike.
    assert began - timedelta(seconds=1) <= stamps[0]
    assert stamps[-1] <= datetime.now(UTC)
    assert all(a < b for a, b in itertools.pairwise(stamps)), stamps
    true = clock.real.sample()
    taken = sorted(clock.monos)
    for seq, ts in enumerate(stamps):
        mono = ts.timestamp() - (true.wall - true.mono)
        at = bisect.bisect(taken, mono)
        off = min(abs(m - mono) for m in taken[max(at - 1, 0) : at + 1])
        # Half the sampling interval: what separates one reading's instant from the next.
        assert off < 0.1, f"reading {seq} stamped {ts}, {off:.3f} s from any clock reading"


async def test_a_pi_without_ntp_takes_the_hubs_time(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
) -> None:
    served, _ = site
    token = await asyncio.to_thread(hub.token_add, "agent_hubtime")
    config = make_config(tmp_path, hub, served.tcp_port, "agent_hubtime")
    config = dataclasses.replace(config, clock=dataclasses.replace(config.clock, require_sync=True))
    began = datetime.now(UTC)
    # A Pi on a LAN without internet: its kernel never reports sync, its wall clock
    # is fake-hwclock's, a day behind. The hub (this machine's clock) is right.
    clock = SteeredClock(wall_shift=-86_400.0, sync=SyncState.UNSYNCED)
    agent = Agent(config, token=token, options=OPTIONS, clock=clock)
    task = asyncio.create_task(agent.run(), name="test.agent")
    await until(
        lambda: agent.sampler is not None and agent.sampler.stamped_by[TimeSource.HUB] >= 5,
        within=60,
    )
    agent.stop()
    async with asyncio.timeout(15):
        await task
    sampler = agent.sampler
    assert sampler is not None
    hub_clock = sampler.hub_clock
    assert hub_clock is not None
    measured = hub_clock.trusted
    assert measured is not None
    # The hub runs on this machine: its offset is the real wall clock's, within the bound.
    real = clock.real.sample()
    assert abs(measured.offset - real.offset) <= measured.bound + 0.002
    assert measured.agreeing >= 4
    assert sampler.stamped_by[TimeSource.HUB] >= 1
    assert set(sampler.stamped_by) == {TimeSource.HUB}
    rows = await stored(hub, "agent_hubtime", began)
    # Every reading reached the hub, the ones held before the hub was measured too,
    # at its true instant (the hub's clock), not a day behind, in steps of 0.2 s.
    assert [row["seq"] for row in rows] == list(range(sampler.readings))
    stamps = [datetime.fromisoformat(str(row["ts"])) for row in rows]
    assert began - timedelta(seconds=1) <= stamps[0]
    assert stamps[-1] <= datetime.now(UTC)
    steps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert all(0.1 < step < 0.5 for step in steps), steps


async def test_a_network_cut_loses_nothing_and_doubles_nothing(
    hub: HubProcess,
    site: tuple[DeviceServer, dict[str, dict[str, object]]],
    tmp_path: Path,
) -> None:
    served, _ = site
    token = await asyncio.to_thread(hub.token_add, "agent_netcut")
    async with TcpProxy("127.0.0.1", hub.port) as proxy:
        config = make_config(
            tmp_path, hub, served.tcp_port, "agent_netcut", url=proxy.rewrite_url(hub.url)
        )
        options = dataclasses.replace(
            OPTIONS,
            uplink=dataclasses.replace(OPTIONS.uplink, open_timeout_s=1.0, ack_timeout_s=2.0),
        )
        agent = Agent(config, token=token, options=options)
        began = datetime.now(UTC)
        task = asyncio.create_task(agent.run(), name="test.agent")
        await until(lambda: agent.uplink is not None and agent.uplink.status().acked >= 5)
        assert agent.uplink is not None
        # The cable is pulled: live sockets die, new ones hang (packets swallowed).
        await proxy.cut(CutMode.HOLD)
        await until(lambda: agent.uplink is not None and not agent.uplink.status().connected)
        await asyncio.sleep(2.0)
        assert read_status(config.buffer.path).depth >= 5  # buffered meanwhile
        await proxy.restore()
        assert agent.sampler is not None
        mark = agent.sampler.readings
        await until(lambda: read_status(config.buffer.path).last_seq >= mark + 3)
        await until(lambda: read_status(config.buffer.path).depth <= 2)
        agent.stop()
        async with asyncio.timeout(15):
            await task
    rows = await stored(hub, "agent_netcut", began)
    assert [row["seq"] for row in rows] == list(range(agent.sampler.readings))
    assert len({row["ts"] for row in rows}) == len(rows)
    assert read_status(config.buffer.path).depth == 0
