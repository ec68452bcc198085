"""The sampler: every ``interval_s``, one reading with each device's latest fresh values.

Devices that are failing, or whose last read is older than ``max_age_s``, are
left out of that reading (edge/health.py); when no device has fresh values,
there is no reading for that tick.

Each reading is timed by the monotonic clock at the tick and stamped through
the :class:`~edge.clock.ClockGuard`: with the wall time if the clock is
trusted, else held (no ``ts``) and re-stamped later. When trust returns, a
:class:`~edge.outbox_writer.Restamp` follows the held readings into the writer.
Each reading's body names the clock that stamped it (``clock``: ``ntp``,
``hub`` or ``unsynced``, docs/protocol.md); a held one gets it when re-stamped.
With an :class:`~edge.energy.EnergyTracker`, each reading carries its site's
energy since the previous reading (``energy``, docs/protocol.md, "Energy"),
and the integrator's state and the site's running energy totals
(edge/energy_totals.py) go with it into the outbox.
While the local clock waits for sync, the sampler asks the uplink for the
hub's time (:class:`~edge.hubtime.HubClock`) and stamps with it once trusted.

At start-up, the first tick waits until every device has been tried once
(read or failed), for at most ``max_age_s``: a device not read *yet* is not a
failing one, and a first reading taken between two devices' first reads would
lack a section for nothing (or hold only the fields another device fills in).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from edge.clock import (
    ClockGuard,
    ClockSample,
    ClockSource,
    Distrust,
    TimeSource,
    Trusted,
    Untrusted,
)
from edge.compose import Composed, Member, compose, compose_site
from edge.config import Role
from edge.energy import EnergyTracker
from edge.energy_totals import EnergyTotals
from edge.health import DeviceHealth, DeviceState, Values
from edge.hubtime import HubClock
from edge.outbox import NewReading
from edge.outbox_writer import Restamp

__all__ = ["Sampler", "SiteDevice"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SiteDevice:
    """A device of a site with several devices per role (edge/compose.py, compose_site)."""

    name: str
    role: Role
    total: bool
    health: DeviceHealth


class Sampler:
    def __init__(
        self,
        devices: Mapping[Role, DeviceHealth] | Sequence[SiteDevice],
        *,
        interval_s: float,
        max_age_s: float,
        clock: ClockSource,
        guard: ClockGuard,
        sink: Callable[[NewReading | Restamp], None],
        hub_clock: HubClock | None = None,
        energy: EnergyTracker | None = None,
    ) -> None:
        # A mapping: one device per role, today's readings. A sequence: each device's
        # own values beside the totals (docs/protocol.md, "Several devices per role").
        self.site: tuple[SiteDevice, ...] | None = None
        if isinstance(devices, Mapping):
            self.devices = dict(devices)
        else:
            self.site = tuple(devices)
            self.devices = {}
        self._healths = tuple(self.devices.values()) + tuple(d.health for d in self.site or ())
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self.clock = clock
        self.guard = guard
        self._sink = sink
        self.hub_clock = hub_clock  # None: no hub-time fallback ([clock] hub_fallback = false)
        self.energy = energy  # None: readings carry no energy
        self.stamped_by: Counter[TimeSource] = Counter()  # readings per stamping clock
        self._held = False
        self._rejected: tuple[str, ...] = ()
        self._was_empty = False
        self.last_tick_mono = 0.0
        self.readings = 0

    async def run(self) -> None:
        await self._first_reads()
        # Ticks on multiples of the interval of the monotonic clock: two agents
        # (or a restart) keep the same phase, and the sleep never drifts.
        while True:
            now = self.clock.sample().mono
            tick = math.floor(now / self.interval_s + 1) * self.interval_s
            await asyncio.sleep(max(0.0, tick - now))
            self.sample_once()

    async def _first_reads(self) -> None:
        deadline = self.clock.sample().mono + self.max_age_s
        while any(health.state is DeviceState.UNKNOWN for health in self._healths):
            left = deadline - self.clock.sample().mono
            if left <= 0:
                return
            await asyncio.sleep(min(left, self.interval_s / 4))

    def sample_once(self) -> NewReading | None:
        """Take one reading now and hand it to the sink; None when no device is fresh."""
        sample = self.clock.sample()
        self.last_tick_mono = sample.mono
        verdict = self._verdict(sample)
        if isinstance(verdict, Trusted) and self._held:
            self._held = False
            self._sink(Restamp(verdict.offset, verdict.source))
        composed = self._compose(sample.mono)
        self._report(composed)
        if composed.empty:
            return None
        ts_us: int | None = None
        body = composed.body()
        if not isinstance(verdict, Untrusted):
            ts_us = round((sample.mono + verdict.offset) * 1e6)
        energy_state: str | None = None
        energy_totals: EnergyTotals | None = None
        if self.energy is not None:
            energy, energy_state = self.energy.measure(sample.mono, ts_us, composed.sections)
            if energy is not None:
                body = with_energy(body, energy)
                energy_totals = self.energy.totals
        if isinstance(verdict, Untrusted):
            self._held = True
        else:
            body = with_clock(body, verdict.source)
            self.stamped_by[verdict.source] += 1
        reading = NewReading(
            mono=sample.mono,
            body=body,
            ts_us=ts_us,
            energy_state=energy_state,
            energy_totals=energy_totals,
        )
        self._sink(reading)
        self.readings += 1
        return reading

    def _compose(self, mono: float) -> Composed:
        if self.site is not None:
            members = []
            for device in self.site:
                snapshot = device.health.fresh(mono, self.max_age_s)
                sections = snapshot.sections if snapshot is not None else None
                members.append(Member(device.name, device.role, device.total, sections))
            return compose_site(members)
        fresh: dict[Role, Values] = {}
        for role, health in self.devices.items():
            snapshot = health.fresh(mono, self.max_age_s)
            if snapshot is not None:
                fresh[role] = snapshot.sections
        return compose(fresh)

    def _verdict(self, sample: ClockSample) -> Trusted | Untrusted:
        hub = self.hub_clock
        if hub is None:
            return self.guard.observe(sample)
        verdict = self.guard.observe(sample, hub.trusted.offset if hub.trusted else None)
        # Ask the hub only while its time is needed: an agent with NTP never does.
        hub.wanted = (isinstance(verdict, Trusted) and verdict.source is TimeSource.HUB) or (
            isinstance(verdict, Untrusted)
            and verdict.reason in (Distrust.BEFORE_2020, Distrust.UNSYNCED)
        )
        return verdict

    def _report(self, composed: Composed) -> None:
        # Log changes only: the same bad field every second would flood the journal.
        if composed.rejected != self._rejected and composed.rejected:
            logger.warning(
                "left out values outside the protocol's ranges: %s",
                ", ".join(composed.rejected),
                extra={"fields": list(composed.rejected)},
            )
        self._rejected = composed.rejected
        if composed.empty and not self._was_empty:
            logger.warning("no device has fresh values: no reading until one does")
        self._was_empty = composed.empty


def with_energy(body: str, energy: dict[str, object]) -> str:
    """The outbox body with the reading's ``energy`` (docs/protocol.md, "Energy")."""
    text = json.dumps(energy, separators=(",", ":"), allow_nan=False)
    return f'{body[:-1]},"energy":{text}}}'


def with_clock(body: str, source: TimeSource) -> str:
    """The outbox body with the ``clock`` field naming the clock that stamped it."""
    # The body is a non-empty JSON object (compose.py): append before its closing brace.
    return f'{body[:-1]},"clock":"{source.value}"}}'
