"""Clock sanity: never stamp a reading with a wall clock known to be wrong.

A Raspberry Pi has no battery clock: until NTP syncs, its wall clock is 1970 or
the time ``fake-hwclock`` saved at the last shutdown, and the sync itself steps
the clock. The monotonic clock (``CLOCK_BOOTTIME``) is right all along, so the
agent records every reading's monotonic time and stamps it with
``wall = monotonic + offset`` only from an offset it trusts. Readings taken
while the clock is untrusted are held (in the outbox, with their monotonic
time and the boot they belong to) and re-stamped with the first trusted offset.

The wall clock is untrusted when

- it reads before 2020-01-01 (the hub refuses those too, docs/protocol.md ``ts``);
- the kernel says it is not synchronized (``adjtimex`` returns ``TIME_ERROR``),
  where the kernel tells, unless the config says not to require sync;
- the offset ``wall - monotonic`` jumped beyond a tolerance since the last
  trusted sample, until the new offset has held steady for a settle time
  (an NTP step, or an operator's ``date -s``: either way the old or the new
  time was wrong, and the newer, steady one is what NTP leaves behind).

When the wall clock is untrusted because it reads before 2020 or the kernel
says it is not synchronized, and the hub's clock has been measured over the
uplink (edge/hubtime.py, docs/protocol.md "Time"), the hub's offset stamps
the readings instead: a site with a hub on its LAN and no internet never gets
NTP. NTP stays preferred: as soon as the kernel reports sync, its wall clock
is used again. Each verdict names its :class:`TimeSource`, which travels in
each reading as ``clock``.

:class:`ClockGuard` is pure: it takes :class:`ClockSample` values, so tests
drive it with a simulated clock. :class:`SystemClock` is the real source.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import functools
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

from telemetry.reading import EARLIEST_TS

__all__ = [
    "ClockGuard",
    "ClockSample",
    "ClockSource",
    "Distrust",
    "SyncState",
    "SystemClock",
    "TimeSource",
    "Trusted",
    "Untrusted",
    "Verdict",
    "boot_id",
    "kernel_sync_state",
    "stamp",
]

logger = logging.getLogger(__name__)

EARLIEST_WALL: Final = EARLIEST_TS.timestamp()
# adjtimex(2): the clock is not synchronized to a time source.
_TIME_ERROR: Final = 5
# struct timex is 208 bytes on 64-bit Linux; a larger zeroed buffer is a read-only query
# (modes = 0 in its first field).
_TIMEX_BUFFER_BYTES: Final = 512


class SyncState(enum.StrEnum):
    """What the operating system says about NTP synchronization."""

    SYNCED = "synced"
    UNSYNCED = "unsynced"
    UNKNOWN = "unknown"  # the system does not say (not Linux, or adjtimex unavailable)


class Distrust(enum.StrEnum):
    """Why the wall clock is not trusted right now."""

    BEFORE_2020 = "before_2020"
    UNSYNCED = "unsynced"
    JUMPED = "jumped"


class TimeSource(enum.StrEnum):
    """Which clock stamped a reading (its ``clock`` field, docs/protocol.md)."""

    NTP = "ntp"  # the wall clock, the kernel saying it is synchronized
    HUB = "hub"  # the hub's clock, measured over the uplink (edge/hubtime.py)
    UNSYNCED = "unsynced"  # the wall clock, the kernel not saying it is synchronized


@dataclass(frozen=True, slots=True)
class ClockSample:
    """The two clocks read together, and the sync state, at one instant."""

    wall: float  # seconds since the Unix epoch
    mono: float  # seconds of the boot-wide monotonic clock
    sync: SyncState = SyncState.UNKNOWN

    @property
    def offset(self) -> float:
        return self.wall - self.mono


@dataclass(frozen=True, slots=True)
class Trusted:
    """A clock can be used: ``wall = mono + offset``."""

    offset: float
    source: TimeSource = TimeSource.NTP


@dataclass(frozen=True, slots=True)
class Untrusted:
    reason: Distrust
    detail: str


Verdict = Trusted | Untrusted


def stamp(mono: float, offset: float) -> datetime:
    """The UTC time of a monotonic instant under a trusted offset."""
    return datetime.fromtimestamp(mono + offset, UTC)


class ClockSource(Protocol):
    def sample(self) -> ClockSample: ...


@dataclass(slots=True)
class _Candidate:
    offset: float
    since_mono: float


class ClockGuard:
    """Judges each clock sample; holds the trusted offset between samples.

    ``require_sync``: an ``UNSYNCED`` kernel state distrusts the clock (an
    ``UNKNOWN`` state never does: then only the year and jumps are checked).
    """

    def __init__(
        self,
        *,
        require_sync: bool = True,
        jump_tolerance_s: float = 2.0,
        settle_s: float = 5.0,
    ) -> None:
        self.require_sync = require_sync
        self.jump_tolerance_s = jump_tolerance_s
        self.settle_s = settle_s
        self._reference: float | None = None  # the last trusted offset
        self._candidate: _Candidate | None = None  # a new offset after a jump, settling
        self._last: Verdict | None = None

    def observe(self, sample: ClockSample, hub_offset: float | None = None) -> Verdict:
        """The verdict on ``sample``; ``hub_offset``: the hub's clock, if measured and trusted.

        The hub's offset is used only where the wall clock is untrusted for want of
        sync (before 2020, or the kernel not synchronized), never to override NTP.
        """
        verdict = self._judge(sample)
        if (
            isinstance(verdict, Untrusted)
            and hub_offset is not None
            and verdict.reason in (Distrust.BEFORE_2020, Distrust.UNSYNCED)
        ):
            verdict = Trusted(hub_offset, TimeSource.HUB)
        self._log_change(verdict, sample)
        self._last = verdict
        return verdict

    def _judge(self, sample: ClockSample) -> Verdict:
        verdict = self._judge_wall(sample)
        if isinstance(verdict, Trusted) and sample.sync is not SyncState.SYNCED:
            return Trusted(verdict.offset, TimeSource.UNSYNCED)
        return verdict

    def _judge_wall(self, sample: ClockSample) -> Verdict:
        offset = sample.offset
        if sample.wall < EARLIEST_WALL:
            self._candidate = None
            return Untrusted(Distrust.BEFORE_2020, f"wall clock reads {stamp(sample.wall, 0.0)}")
        if self.require_sync and sample.sync is SyncState.UNSYNCED:
            self._candidate = None
            return Untrusted(
                Distrust.UNSYNCED,
                "the kernel says the clock is not synchronized (waiting for NTP; a host that "
                "keeps time without telling the kernel sets [clock] require_sync = false)",
            )
        if self._reference is None:
            # First trustworthy sample: nothing to compare with.
            self._reference = offset
            return Trusted(offset)
        if abs(offset - self._reference) <= self.jump_tolerance_s:
            # Within tolerance: follow the slew (NTP adjusts the rate, not in steps).
            self._reference = offset
            self._candidate = None
            return Trusted(offset)
        candidate = self._candidate
        if candidate is None or abs(offset - candidate.offset) > self.jump_tolerance_s:
            self._candidate = candidate = _Candidate(offset, sample.mono)
        if sample.mono - candidate.since_mono >= self.settle_s:
            self._reference = offset
            self._candidate = None
            return Trusted(offset)
        return Untrusted(
            Distrust.JUMPED,
            f"wall clock jumped by {offset - self._reference:+.3f} s; settling",
        )

    def _log_change(self, verdict: Verdict, sample: ClockSample) -> None:
        last = self._last
        if isinstance(verdict, Untrusted):
            if not isinstance(last, Untrusted) or last.reason is not verdict.reason:
                logger.warning(
                    "clock not trusted, holding readings: %s",
                    verdict.detail,
                    extra={"reason": verdict.reason.value, "error": verdict.detail},
                )
        elif isinstance(last, Untrusted):
            logger.warning(
                "clock trusted again (%s, sync %s, source %s): held readings get re-stamped",
                stamp(sample.mono, verdict.offset).isoformat(),
                sample.sync,
                verdict.source,
                extra={"sync": str(sample.sync), "source": verdict.source.value},
            )
        elif isinstance(last, Trusted) and last.source is not verdict.source:
            logger.warning(
                "readings are now stamped by the %s clock (was %s)",
                verdict.source,
                last.source,
                extra={"source": verdict.source.value, "was": last.source.value},
            )


def _boottime() -> float:
    # CLOCK_BOOTTIME counts suspend too and is shared by every process of a boot,
    # so a held reading's instant survives an agent restart (same boot_id).
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else time.monotonic()


_PROCESS_BOOT: Final = f"process-{uuid.uuid4()}"


def boot_id() -> str:
    """Which monotonic clock a monotonic time belongs to (changes at every boot).

    Off Linux, each process counts as its own boot: held readings of an earlier
    process cannot be re-stamped then.
    """
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return _PROCESS_BOOT


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def kernel_sync_state() -> SyncState:
    """The kernel's NTP state through adjtimex(2) (read-only query), where available."""
    if not sys.platform.startswith("linux"):
        return SyncState.UNKNOWN
    try:
        libc = _libc()
        buffer = ctypes.create_string_buffer(_TIMEX_BUFFER_BYTES)
        state = libc.adjtimex(buffer)
    except (OSError, AttributeError):
        return SyncState.UNKNOWN
    if state < 0:
        return SyncState.UNKNOWN
    return SyncState.UNSYNCED if state == _TIME_ERROR else SyncState.SYNCED


class SystemClock:
    """The machine's clocks: ``time.time``, ``CLOCK_BOOTTIME`` and the kernel's sync state."""

    def sample(self) -> ClockSample:
        mono = _boottime()
        wall = time.time()
        return ClockSample(wall=wall, mono=mono, sync=kernel_sync_state())
