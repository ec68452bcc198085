"""Clock sanity on a simulated clock: what is trusted, what is held, how it is re-stamped."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from edge.clock import (
    ClockGuard,
    ClockSample,
    Distrust,
    SyncState,
    SystemClock,
    TimeSource,
    Trusted,
    Untrusted,
    boot_id,
    kernel_sync_state,
    stamp,
)

NOW = datetime(2026, 11, 26, 5, 30, tzinfo=UTC).timestamp()


@dataclass
class SimulatedClock:
    """A Pi's clocks: monotonic since boot, a wall clock that can be set, a sync flag."""

    mono: float = 10.0
    offset: float = NOW - 10.0
    sync: SyncState = SyncState.SYNCED

    def sample(self) -> ClockSample:
        return ClockSample(wall=self.mono + self.offset, mono=self.mono, sync=self.sync)

    def tick(self, seconds: float = 1.0) -> ClockSample:
        self.mono += seconds
        return self.sample()


def test_a_synced_clock_is_trusted_and_stamps_from_the_monotonic_time() -> None:
    clock = SimulatedClock()
    guard = ClockGuard()
    verdict = guard.observe(clock.sample())
    assert verdict == Trusted(clock.offset)
    assert stamp(clock.mono, verdict.offset) == datetime(2026, 11, 26, 5, 30, tzinfo=UTC)


def test_a_pi_booting_in_1970_holds_until_ntp_then_restamps_the_held_readings() -> None:
    clock = SimulatedClock(mono=5.0, offset=0.0, sync=SyncState.UNSYNCED)  # wall = 1970
    guard = ClockGuard()
    held = []
    for _ in range(3):
        sample = clock.tick()
        verdict = guard.observe(sample)
        assert isinstance(verdict, Untrusted)
        assert verdict.reason is Distrust.BEFORE_2020
        held.append(sample.mono)
    # NTP steps the clock to the right time and reports sync.
    clock.offset = NOW
    clock.sync = SyncState.SYNCED
    verdict = guard.observe(clock.tick())
    assert isinstance(verdict, Trusted)
    # The held readings land at their true instants, one second apart.
    assert [stamp(mono, verdict.offset) for mono in held] == [
        datetime.fromtimestamp(NOW + 6.0 + i, UTC) for i in range(3)
    ]


def test_a_plausible_but_unsynced_clock_is_held_when_sync_is_required() -> None:
    # fake-hwclock restored the time of the last shutdown: after 2020, but stale.
    clock = SimulatedClock(offset=NOW - 86_400, sync=SyncState.UNSYNCED)
    verdict = ClockGuard(require_sync=True).observe(clock.sample())
    assert isinstance(verdict, Untrusted)
    assert verdict.reason is Distrust.UNSYNCED
    # Trusted as asked, and said to be so: the kernel never confirmed the time.
    verdict = ClockGuard(require_sync=False).observe(clock.sample())
    assert verdict == Trusted(clock.offset, TimeSource.UNSYNCED)


def test_an_unknown_sync_state_checks_only_the_year_and_jumps() -> None:
    clock = SimulatedClock(sync=SyncState.UNKNOWN)
    assert isinstance(ClockGuard(require_sync=True).observe(clock.sample()), Trusted)


def test_slew_within_tolerance_is_followed() -> None:
    clock = SimulatedClock()
    guard = ClockGuard(jump_tolerance_s=2.0)
    guard.observe(clock.sample())
    for _ in range(10):  # 1.5 s per step: each within tolerance, 15 s in all
        clock.offset += 1.5
        assert guard.observe(clock.tick()) == Trusted(clock.offset)


@pytest.mark.parametrize("jump", [3600.0, -3600.0, 2.5])
def test_a_jump_holds_readings_until_the_new_offset_is_steady(jump: float) -> None:
    clock = SimulatedClock()
    guard = ClockGuard(jump_tolerance_s=2.0, settle_s=5.0)
    assert isinstance(guard.observe(clock.tick()), Trusted)
    clock.offset += jump
    verdicts = [guard.observe(clock.tick()) for _ in range(5)]
    assert all(isinstance(v, Untrusted) and v.reason is Distrust.JUMPED for v in verdicts)
    assert guard.observe(clock.tick()) == Trusted(clock.offset)


def test_a_clock_that_keeps_jumping_is_never_trusted() -> None:
    clock = SimulatedClock()
    guard = ClockGuard(jump_tolerance_s=2.0, settle_s=5.0)
    guard.observe(clock.tick())
    for step in range(20):
        clock.offset += 60.0 if step % 2 == 0 else -30.0
        assert isinstance(guard.observe(clock.tick()), Untrusted)


def test_a_jump_back_to_the_trusted_offset_is_trusted_at_once() -> None:
    clock = SimulatedClock()
    guard = ClockGuard(settle_s=5.0)
    guard.observe(clock.tick())
    clock.offset += 100.0
    assert isinstance(guard.observe(clock.tick()), Untrusted)
    clock.offset -= 100.0
    assert guard.observe(clock.tick()) == Trusted(clock.offset)


def test_losing_sync_distrusts_and_regaining_it_trusts(caplog: pytest.LogCaptureFixture) -> None:
    clock = SimulatedClock()
    guard = ClockGuard()
    guard.observe(clock.tick())
    clock.sync = SyncState.UNSYNCED
    with caplog.at_level(logging.WARNING, logger="edge.clock"):
        for _ in range(3):
            guard.observe(clock.tick())
        clock.sync = SyncState.SYNCED
        assert isinstance(guard.observe(clock.tick()), Trusted)
    messages = [record.getMessage() for record in caplog.records]
    # One line when trust is lost, one when it comes back: not one per sample.
    assert len(messages) == 2
    assert "not synchronized" in messages[0]
    assert "trusted again" in messages[1]


def test_a_measured_hub_clock_stamps_while_ntp_has_not_synced_and_ntp_takes_over() -> None:
    clock = SimulatedClock(mono=5.0, offset=0.0, sync=SyncState.UNSYNCED)  # wall = 1970
    guard = ClockGuard()
    hub_offset = NOW - 3.0  # what the uplink measured: the hub's clock minus our monotonic one
    assert isinstance(guard.observe(clock.tick()), Untrusted)  # not measured yet: held
    assert guard.observe(clock.tick(), hub_offset) == Trusted(hub_offset, TimeSource.HUB)
    # fake-hwclock's plausible but stale time, still unsynced: the hub's time, not it.
    clock.offset = NOW - 86_400
    assert guard.observe(clock.tick(), hub_offset) == Trusted(hub_offset, TimeSource.HUB)
    # NTP syncs: its wall clock is preferred from then on, hub offset or not.
    clock.offset, clock.sync = NOW, SyncState.SYNCED
    assert guard.observe(clock.tick(), hub_offset) == Trusted(NOW, TimeSource.NTP)


@pytest.mark.parametrize("jump", [3600.0, -60.0])
def test_the_hub_clock_never_overrides_a_synced_clock_that_jumped(jump: float) -> None:
    clock = SimulatedClock()
    guard = ClockGuard(settle_s=5.0)
    guard.observe(clock.tick())
    clock.offset += jump
    verdict = guard.observe(clock.tick(), NOW)
    assert isinstance(verdict, Untrusted)
    assert verdict.reason is Distrust.JUMPED


def test_the_system_clock_reads_this_machine() -> None:
    sample = SystemClock().sample()
    assert abs(sample.wall - datetime.now(UTC).timestamp()) < 5.0
    assert sample.mono > 0.0
    assert sample.sync is kernel_sync_state()
    assert boot_id() == boot_id()
    assert len(boot_id()) >= 16
