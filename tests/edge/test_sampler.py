"""The sampler on a simulated clock: fresh devices only, held readings, and the restamp."""

from __future__ import annotations

import json
from dataclasses import dataclass

from edge.clock import ClockGuard, ClockSample, SyncState, TimeSource
from edge.config import Role
from edge.health import DeviceHealth
from edge.hubtime import HubClock
from edge.outbox import NewReading
from edge.outbox_writer import Restamp
from edge.sampler import Sampler, SiteDevice
from telemetry.backoff import BackoffPolicy

NOW = 1_800_000_000.0


@dataclass
class FakeClock:
    """A simulated clock source (monotonic, wall offset, sync state) the test sets."""

    mono: float = 100.0
    offset: float = NOW - 100.0
    sync: SyncState = SyncState.SYNCED

    def sample(self) -> ClockSample:
        return ClockSample(self.mono + self.offset, self.mono, self.sync)


def make(
    clock: FakeClock, hub_clock: HubClock | None = None
) -> tuple[Sampler, dict[Role, DeviceHealth], list[object]]:
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
        hub_clock=hub_clock,
    )
    return sampler, devices, out


def test_one_reading_per_tick_with_the_fresh_devices_only() -> None:
    clock = FakeClock()
    sampler, devices, out = make(clock)
    devices[Role.GRID].succeeded({"grid": {"power_w": 5.0}}, clock.mono)
    devices[Role.BATTERY].succeeded({"battery": {"soc_pct": 50.0}}, clock.mono)
    first = sampler.sample_once()
    assert first is not None
    assert json.loads(first.body) == {
        "grid": {"power_w": 5.0},
        "battery": {"soc_pct": 50.0},
        "clock": "ntp",  # the clock that stamped it
    }
    assert first.ts_us == round(NOW * 1e6)
    clock.mono += 1.0
    devices[Role.BATTERY].failed("unit 4: no response", clock.mono)
    second = sampler.sample_once()
    assert second is not None
    # The failed BMS is left out.
    assert json.loads(second.body) == {"grid": {"power_w": 5.0}, "clock": "ntp"}
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
        assert "clock" not in json.loads(reading.body)  # the restamp names it
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


def measure_hub(hub_clock: HubClock, clock: FakeClock, hub_offset: float) -> None:
    """A round of time requests the hub answers 2 ms later, as the uplink would run it."""
    hub_clock.start_round()
    for _ in range(hub_clock.round_samples):
        sent = clock.mono
        request_id = hub_clock.request(sent)
        hub_clock.answer(request_id, sent + 0.001 + hub_offset, sent + 0.002)
    hub_clock.end_round()


def test_without_ntp_the_hub_clock_stamps_and_restamps_what_was_held() -> None:
    clock = FakeClock(offset=0.0, sync=SyncState.UNSYNCED)  # a Pi in 1970, no internet
    hub_clock = HubClock()
    sampler, devices, out = make(clock, hub_clock)
    clock.mono += 1.0
    devices[Role.GRID].succeeded({"grid": {"power_w": 1.0}}, clock.mono)
    held = sampler.sample_once()
    assert held is not None
    assert held.ts_us is None
    assert hub_clock.wanted  # the uplink is asked to measure the hub's clock
    measure_hub(hub_clock, clock, NOW)
    clock.mono += 1.0
    devices[Role.GRID].succeeded({"grid": {"power_w": 2.0}}, clock.mono)
    stamped = sampler.sample_once()
    assert stamped is not None
    assert stamped.ts_us == round((clock.mono + NOW) * 1e6)
    assert json.loads(stamped.body)["clock"] == "hub"
    assert out == [held, Restamp(NOW, TimeSource.HUB), stamped]
    assert hub_clock.wanted  # kept up to date while in use
    # NTP syncs (to a time 10 ms off the hub's): preferred, and the hub is left alone.
    clock.offset, clock.sync = NOW + 0.01, SyncState.SYNCED
    clock.mono += 1.0
    devices[Role.GRID].succeeded({"grid": {"power_w": 3.0}}, clock.mono)
    by_ntp = sampler.sample_once()
    assert by_ntp is not None
    assert json.loads(by_ntp.body)["clock"] == "ntp"
    assert not hub_clock.wanted
    assert sampler.stamped_by == {TimeSource.HUB: 1, TimeSource.NTP: 1}


def test_a_synced_agent_never_asks_the_hub() -> None:
    clock = FakeClock()
    hub_clock = HubClock()
    sampler, devices, _ = make(clock, hub_clock)
    devices[Role.GRID].succeeded({"grid": {"power_w": 1.0}}, clock.mono)
    assert sampler.sample_once() is not None
    assert not hub_clock.wanted


def test_a_site_of_several_devices_per_role_sends_totals_and_each_device() -> None:
    clock = FakeClock()
    east = DeviceHealth("east", BackoffPolicy(1.0, 2.0))
    west = DeviceHealth("west", BackoffPolicy(1.0, 2.0))
    out: list[object] = []
    sampler = Sampler(
        [
            SiteDevice("east", Role.INVERTER, True, east),
            SiteDevice("west", Role.INVERTER, True, west),
        ],
        interval_s=1.0,
        max_age_s=2.5,
        clock=clock,
        guard=ClockGuard(settle_s=3.0),
        sink=out.append,
    )
    east.succeeded({"inverter": {"ac_power_w": 2000.0}}, clock.mono)
    west.succeeded({"inverter": {"ac_power_w": 1000.0}}, clock.mono)
    first = sampler.sample_once()
    assert first is not None
    assert json.loads(first.body) == {
        "inverter": {"ac_power_w": 3000.0},
        "devices": {
            "east": {"role": "inverter", "inverter": {"ac_power_w": 2000.0}},
            "west": {"role": "inverter", "inverter": {"ac_power_w": 1000.0}},
        },
        "clock": "ntp",
    }
