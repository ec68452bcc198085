"""A device's health as the pollers see it: its latest values, their age, its backoff.

Pure: times are monotonic seconds passed in, so tests drive it on plain values.

- A successful read stores a :class:`Snapshot` (values and the monotonic time
  of the read) and makes the device ``OK``.
- A failed read makes it ``FAILING``: its snapshot no longer counts, and the
  next attempt waits a capped, jittered backoff, so a dead device costs its
  bus one timeout per backoff step rather than one per poll.
- :meth:`DeviceHealth.fresh` gives the values only while the device is ``OK``
  and the read is younger than ``max_age_s``: values are never reported as
  fresh when stale.
- :func:`health_frame` tells the hub how every device is doing
  (docs/protocol.md, "Device health"): its state, for how long, and the age
  of its last good read, and what the device says it is (its identity, when
  it reported one).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from drivers.identity import DeviceIdentity
from telemetry.backoff import Backoff, BackoffPolicy
from telemetry.health import (
    MAX_ERROR_CHARS,
    DeviceHealthReport,
    DeviceIdentityReport,
    HealthFrame,
    HealthState,
)

__all__ = ["DeviceHealth", "DeviceState", "Snapshot", "Transition", "health_frame"]

Values = Mapping[str, Mapping[str, object]]  # section -> field -> value


class DeviceState(enum.StrEnum):
    UNKNOWN = "unknown"  # not read yet
    OK = "ok"
    FAILING = "failing"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A device's decoded sections and when (monotonic) they were read."""

    sections: Values
    read_mono: float


@dataclass(frozen=True, slots=True)
class Transition:
    """The device changed state (for logs and the persisted status)."""

    device: str
    state: DeviceState
    error: str
    previous: DeviceState = DeviceState.UNKNOWN


class DeviceHealth:
    def __init__(self, name: str, policy: BackoffPolicy, rng: random.Random | None = None) -> None:
        self.name = name
        self.state = DeviceState.UNKNOWN
        self.last_error = ""
        self.snapshot: Snapshot | None = None
        self.next_attempt_mono = 0.0
        self.changed_mono: float | None = None  # when it entered its state
        # What the device says it is, read once per connection (edge/poller.py).
        self.identity = DeviceIdentity()
        self._backoff = Backoff(policy, rng or random.Random())

    @property
    def failures(self) -> int:
        return self._backoff.failures

    def due(self, now: float) -> bool:
        return now >= self.next_attempt_mono

    def succeeded(self, sections: Values, now: float) -> Transition | None:
        self.snapshot = Snapshot(sections, now)
        self._backoff.reset()
        self.next_attempt_mono = now
        return self._become(DeviceState.OK, "", now)

    def failed(self, error: str, now: float) -> Transition | None:
        """Record a failed read; the next attempt waits the backoff."""
        self.next_attempt_mono = now + self._backoff.next_delay()
        self.last_error = error
        return self._become(DeviceState.FAILING, error, now)

    def fresh(self, now: float, max_age_s: float) -> Snapshot | None:
        """The latest values if they may be reported now; None when failing or stale."""
        snapshot = self.snapshot
        if self.state is not DeviceState.OK or snapshot is None:
            return None
        if now - snapshot.read_mono > max_age_s:
            return None
        return snapshot

    def report(self, now: float, role: str | None = None) -> DeviceHealthReport:
        """This device in a health frame, its times as ages at ``now``."""
        since = self.changed_mono
        return DeviceHealthReport(
            name=self.name,
            role=role,
            state=HealthState(self.state.value),
            for_s=round(max(0.0, now - since), 3) if since is not None else 0.0,
            last_ok_age_s=(
                round(max(0.0, now - self.snapshot.read_mono), 3)
                if self.snapshot is not None
                else None
            ),
            error=self.last_error[:MAX_ERROR_CHARS] if self.state is DeviceState.FAILING else "",
            identity=(
                DeviceIdentityReport.model_validate(self.identity.as_dict())
                if self.identity.known
                else None
            ),
        )

    def _become(self, state: DeviceState, error: str, now: float) -> Transition | None:
        if state is self.state:
            return None
        previous, self.state = self.state, state
        self.changed_mono = now
        return Transition(self.name, state, error, previous)


def health_frame(
    devices: Iterable[tuple[DeviceHealth, str | None]],
    now: float,
    interval_s: float,
    timezone: str | None = None,
) -> HealthFrame:
    """The health frame of an agent's devices (with their roles) at monotonic ``now``,
    and the site's time zone."""
    return HealthFrame(
        interval_s=interval_s,
        timezone=timezone,
        devices=[health.report(now, role) for health, role in devices],
    )
