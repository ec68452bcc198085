"""The agent's energy per reading (docs/protocol.md, "Energy"), on its own clocks.

:class:`EnergyTracker` feeds the site's composed readings, in the order they
are taken, to the integrator (telemetry/energy_increments.py) and gives each
reading its ``energy`` and the integrator's state after it; the state is
stored in the transaction that stores the reading (edge/outbox.py), so a
restarted agent goes on from the last reading it kept. It also keeps the
site's running totals (:attr:`EnergyTracker.totals`, edge/energy_totals.py),
stored the same way, from which Home Assistant's "site" device is published.

Time is the monotonic clock (``CLOCK_BOOTTIME``, edge/clock.py): a step of
the wall clock changes no span. An agent restarted in the same boot goes on
on the same axis. After a reboot the monotonic clock starts again, so the
stored state is moved onto the new axis through the wall clock: the last
stored reading's ``ts`` against this reading's. When this reading is taken
before the clock is trusted (held, docs/protocol.md "Time"), the time since
is unknown: only counters bridge it, and the reading carries ``since_us``
(the earlier reading's time) in place of its span until the outbox stamps it
and turns that into ``span_s`` (:meth:`edge.outbox.Outbox.restamp`). A state
whose own reading was never stamped is of no use after a reboot (that reading
is dropped, edge/outbox.py) and the integrator starts afresh.

:func:`counter_specs` reads the counters' widths and steps from the register
maps, for the rollover and plausibility checks.

A demo's simulated site may run sped up (``ems demo --speed``): its plant's
counters then move ``time_scale`` times faster than the wall clock, and power
integrated over wall time would not match them (nor would the counters pass
the ``max_power_w`` check). With ``[energy] time_scale`` (demo only,
docs/configuration.md) the integrator's axis is the monotonic clock times that
scale, the plant's time, and ``max_gap_s`` is scaled with it; the ``span_s``
sent and every time stored stay wall seconds (the stored state unscaled, so a
run at another speed goes on from it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, Final

from drivers.errors import ProfileError
from drivers.profile import Point
from drivers.profiles import fixed_map
from drivers.registers import DataType
from edge.compose import ROLE_ORDER
from edge.energy_totals import EnergyTotals
from edge.outbox import EnergyRecord
from edge.settings import EdgeConfig, Role
from telemetry.energy_increments import (
    COUNTERS,
    CounterSpec,
    EnergyEvent,
    EnergyIntegrator,
    EnergySettings,
    Increments,
    IntegratorState,
    Quantity,
)

__all__ = ["EnergyTracker", "counter_specs", "energy_settings"]

logger = logging.getLogger(__name__)

# Where the earlier readings lie on the axis of a reboot whose time since is
# unknown: so long ago that no power is integrated and any counter delta is plausible.
_LONG_AGO_S: Final = 1e9
_WIDTHS: Final = {DataType.UINT16: 2**16, DataType.UINT32: 2**32, DataType.ACC32: 2**32}
_COUNTER_EVENTS: Final = {
    EnergyEvent.COUNTER_RESET: "went backwards (reset or replaced device): new baseline",
    EnergyEvent.COUNTER_ROLLOVER: "rolled over at its register's width",
    EnergyEvent.COUNTER_REJECTED: "rose more than [energy] max_power_w allows: new baseline",
}


def _spec(point: Point) -> CounterSpec:
    if point.scale_factor is not None:  # a SunSpec scale factor read at run time
        return CounterSpec()
    step = abs(point.scale)
    width = _WIDTHS.get(point.data_type)
    if width is not None:
        return CounterSpec(wrap_wh=width * step, step_wh=step)
    if point.data_type in (DataType.INT16, DataType.INT32):
        return CounterSpec(step_wh=step)
    return CounterSpec()  # a float: its resolution shrinks as it grows


def counter_specs(config: EdgeConfig) -> dict[Quantity, CounterSpec]:
    """Each counter's wrap and step, from the map of the device whose value the reading has.

    As edge/compose.py merges: the role owning the section first, then the
    others in role order. A map found on the device (SunSpec), a site of
    several devices per role (the counter is a sum) or no map: unknown.
    """
    if config.per_device:
        return {}
    specs: dict[Quantity, CounterSpec] = {}
    for quantity, (section, name) in COUNTERS.items():
        owner = Role(section)
        devices = sorted(
            config.devices, key=lambda d: (d.role is not owner, ROLE_ORDER.index(d.role))
        )
        for device in devices:
            try:
                register_map = fixed_map(device.profile, device.profile_file)
            except (ProfileError, OSError):
                break
            if register_map is None:
                break
            point = next(
                (
                    p
                    for p in register_map.points
                    if p.target is not None
                    and p.target.section.value == section
                    and p.target.field == name
                    and p.target.index is None
                ),
                None,
            )
            if point is not None:
                specs[quantity] = _spec(point)
                break
    return specs


def energy_settings(config: EdgeConfig) -> EnergySettings:
    """The integrator's settings, on the axis of ``[energy] time_scale`` (module docstring)."""
    return EnergySettings(
        max_gap_s=config.max_gap_s * config.energy.time_scale,
        max_power_w=config.energy.max_power_w,
        counters=counter_specs(config),
    )


class EnergyTracker:
    """Each reading's ``energy`` and the state to store with it (see the module docstring)."""

    def __init__(
        self,
        settings: EnergySettings,
        *,
        boot: str,
        record: EnergyRecord | None = None,
        time_scale: float = 1.0,
        totals: EnergyTotals | None = None,
    ) -> None:
        if not 0 < time_scale < math.inf:
            raise ValueError(f"time_scale must be a number > 0, not {time_scale!r}")
        self.integrator = EnergyIntegrator(settings)
        self.boot = boot
        # Integrator time per monotonic second (module docstring); settings on that axis.
        self.time_scale = time_scale
        self._record = record
        self._complete = True
        # Every reading's energy added up, from the stored totals (the outbox's).
        self.totals = totals if totals is not None else EnergyTotals()

    def measure(
        self, mono: float, ts_us: int | None, sections: Mapping[str, Mapping[str, object]]
    ) -> tuple[dict[str, Any] | None, str]:
        """(the reading's ``energy`` or None, the state after it) for a reading taken at
        ``mono``, stamped ``ts_us`` (None: held)."""
        since_us = self._seed(mono, ts_us) if self._record is not None else None
        scale = self.time_scale
        increments = self.integrator.step(mono * scale, sections)
        state = self.integrator.state.scaled(1 / scale).to_json()
        if increments is None:
            return None, state
        self._log(increments)
        energy = increments.wire()
        self.totals = self.totals.added(energy)
        if increments.span_s is not None:
            energy["span_s"] = round(increments.span_s / scale, 3)  # wall seconds
        if increments.span_s is None and since_us is not None:
            # Filled in when the outbox stamps this reading (edge/outbox.py, restamp).
            energy["since_us"] = since_us
        return energy, state

    def _seed(self, mono: float, ts_us: int | None) -> int | None:
        """Take the stored state onto this boot's axis; the earlier reading's time if the
        time since is unknown."""
        record, self._record = self._record, None
        assert record is not None
        try:
            state = IntegratorState.from_json(record.state)
        except ValueError as err:
            logger.warning("energy state not usable, starting afresh: %s", err)
            return None
        # Stored in monotonic seconds; the integrator's axis is scaled (module docstring).
        scale = self.time_scale
        if record.boot == self.boot:
            self.integrator.state = state.scaled(scale)
            return None
        if record.ts_us is None:
            logger.info("the energy state's reading was never stamped: starting afresh")
            return None
        if ts_us is not None:
            # The stored reading's instant on this boot's axis: its wall time less this
            # boot's offset between wall and monotonic time.
            then = record.ts_us / 1e6 - (ts_us / 1e6 - mono)
            self.integrator.state = state.shifted(then - record.mono).scaled(scale)
            return None
        self.integrator.state = state.shifted(mono - _LONG_AGO_S - record.mono).scaled(scale)
        self.integrator.lose_time()
        return record.ts_us

    def _log(self, increments: Increments) -> None:
        counts = self.integrator.counts
        for event, counter in increments.counter_events:
            logger.warning(
                "energy: the counter %s %s (%d such so far)",
                counter,
                _COUNTER_EVENTS[event],
                counts[event],
                extra={"event": event.value, "counter": counter, "count": counts[event]},
            )
        if EnergyEvent.HOUSE_CLAMPED in increments.events:
            logger.warning(
                "energy: the house balance stayed negative for 15 minutes, %.3f Wh dropped "
                "so far (meters that disagree?)",
                self.integrator.clamped_wh,
                extra={
                    "event": EnergyEvent.HOUSE_CLAMPED.value,
                    "count": counts[EnergyEvent.HOUSE_CLAMPED],
                    "wh": round(self.integrator.clamped_wh, 3),
                },
            )
        if not increments.complete and self._complete:
            logger.info(
                "energy: part of a reading's span could not be measured (a gap with no "
                "counter to bridge it)",
                extra={"event": EnergyEvent.UNMEASURED.value},
            )
        self._complete = increments.complete
