"""The sampler on a simulated clock: fresh devices only, held readings, and the restamp."""

from __future__ import annotations

import json
from dataclasses import dataclass

from edge.backoff import BackoffPolicy
from edge.clock import ClockGuard, ClockSample, SyncState
from edge.config import Role
from edge.health import DeviceHealth
from edge.outbox import NewReading
from edge.sampler import Sampler
from edge.writer import Restamp

NOW = 1_800_000_000.0


@dataclass
class FakeClock:
    """A simulated clock source (monotonic, wall offset, sync state) the test sets."""

    mono: float = 100.0
    offset: float = NOW - 100.0
    sync: SyncState = SyncState.SYNCED

    def sample(self) -> ClockSample:
        return ClockSample(self.mono + self.offset, self.mono, self.sync)


def make(clock: FakeClock) -> tuple[Sampler, dict[Role, DeviceHealth], list[object]]:
    devices = {
        Role.GRID: DeviceHealth("meter", BackoffPolicy(1.0, 2.0)),
        Role.BATTERY: DeviceHealth("bms", BackoffPolicy(1.0, 2.0)),
    }
    out: list[object] = []
    sampler = Sampler(
        devices,
        interval_s=1.0,
        max_age_s=2.5,
        clock=clock,
        guard=ClockGuard(settle_s=3.0),
        sink=out.append,
    )
    return sampler, devices, out


def test_one_reading_per_tick_with_the_fresh_devices_only() -> None:
    clock = FakeClock()
    sampler, devices, out = make(clock)
    devices[Role.GRID].succeeded({"grid": {"power_w": 5.0}}, clock.mono)
    devices[Role.BATTERY].succeeded({"battery": {"soc_pct": 50.0}}, clock.mono)
    first = sampler.sample_once()
    assert first is not None
    assert json.loads(first.body) == {"grid": {"power_w": 5.0}, "battery": {"soc_pct": 50.0}}
    assert first.ts_us == round(NOW * 1e6)
    clock.mono += 1.0
    devices[Role.BATTERY].failed("unit 4: no response", clock.mono)
    second = sampler.sample_once()
    assert second is not None
    assert json.loads(second.body) == {"grid": {"power_w": 5.0}}  # the failed BMS is left out
    clock.mono += 2.0  # the meter's values are 3 s old now: stale
    assert sampler.sample_once() is None
    assert out == [first, second]


def test_readings_are_held_while_the_clock_is_wrong_then_restamped() -> None:
    clock = FakeClock(offset=0.0, sync=SyncState.UNSYNCED)  # a Pi in 1970
    sampler, devices, out = make(clock)
    held = []
    for _ in range(3):
        clock.mono += 1.0
        devices[Role.GRID].succeeded({"grid": {"power_w": clock.mono}}, clock.mono)
        reading = sampler.sample_once()
        assert reading is not None
        assert reading.ts_us is None
        held.append(reading)
    clock.offset, clock.sync = NOW, SyncState.SYNCED
    clock.mono += 1.0
    devices[Role.GRID].succeeded({"grid": {"power_w": clock.mono}}, clock.mono)
    stamped = sampler.sample_once()
    assert stamped is not None
    assert stamped.ts_us == round((clock.mono + NOW) * 1e6)
    # The restamp reaches the writer after the held readings and before the next one.
    assert out == [*held, Restamp(NOW), stamped]
    assert [r.mono for r in held] == [101.0, 102.0, 103.0]


def test_a_clock_jump_holds_readings_until_it_settles() -> None:
    clock = FakeClock()
    sampler, devices, out = make(clock)
    for step in range(8):
        clock.mono += 1.0
        if step == 2:
            clock.offset += 3600.0  # someone sets the clock an hour ahead
        devices[Role.GRID].succeeded({"grid": {"power_w": 1.0}}, clock.mono)
        sampler.sample_once()
    readings = [item for item in out if isinstance(item, NewReading)]
    stamped = [r.ts_us is not None for r in readings]
    assert stamped == [True, True, False, False, False, True, True, True]
    restamps = [item for item in out if isinstance(item, Restamp)]
    assert restamps == [Restamp(clock.offset)]
