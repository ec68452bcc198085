"""The hub's clock as a fallback time source, measured over the uplink (docs/protocol.md, "Time").

A site with a hub on its LAN and no internet has no NTP server: the Pi's
kernel never reports sync and every reading would be held. The hub states
its time on request: the agent sends ``{"type": "time_request", "id": N}``
and the hub answers ``{"type": "time", "id": N, "hub_ts": "..."}``. The agent
notes its monotonic clock when it sends and when the answer arrives, as NTP
does (RFC 5905, "On-wire protocol"): the hub read its clock somewhere in
between, so

    offset = hub_ts - (sent + received) / 2      (wall = mono + offset)

is wrong by at most half the round trip, whatever the hub's processing time
and however asymmetric the two directions are. Of a round of samples the one
with the shortest round trip has the tightest bound and is kept; the round is
trusted only when enough samples agree with it (their bounded intervals
overlap), so a single delayed or garbled answer cannot set the clock.

:func:`estimate` is pure (plain values in, a verdict out). :class:`HubClock`
holds the trusted estimate and the open round between the uplink, which asks
and hears, and the sampler, which stamps.
"""

from __future__ import annotations

import enum
import itertools
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

__all__ = [
    "HubClock",
    "HubOffset",
    "NoEstimate",
    "Refusal",
    "TimeSample",
    "estimate",
]

logger = logging.getLogger(__name__)

# Samples a round takes, and how many must agree with the best one (itself included).
ROUND_SAMPLES: Final = 8
MIN_AGREEING: Final = 4
# A round trip longer than this says nothing useful about a LAN hub's clock.
MAX_RTT_S: Final = 1.0
# hub_ts carries microseconds; two intervals this close still agree (rounding).
RESOLUTION_S: Final = 1e-6


@dataclass(frozen=True, slots=True)
class TimeSample:
    """One round trip: the agent's monotonic clock at send and receive, the hub's wall clock."""

    sent_mono: float
    received_mono: float
    hub_wall: float  # seconds since the Unix epoch, as the hub stated it

    @property
    def rtt(self) -> float:
        return self.received_mono - self.sent_mono

    @property
    def offset(self) -> float:
        return self.hub_wall - (self.sent_mono + self.received_mono) / 2

    @property
    def bound(self) -> float:
        """The most the offset can be wrong by: the hub read its clock within the round trip."""
        return self.rtt / 2


@dataclass(frozen=True, slots=True)
class HubOffset:
    """A trusted estimate: ``wall = mono + offset``, within ``bound`` seconds."""

    offset: float
    bound: float
    rtt: float
    agreeing: int
    measured_mono: float


class Refusal(enum.StrEnum):
    TOO_FEW = "too_few"
    DISAGREE = "disagree"


@dataclass(frozen=True, slots=True)
class NoEstimate:
    reason: Refusal
    detail: str


def estimate(
    samples: list[TimeSample],
    *,
    min_agreeing: int = MIN_AGREEING,
    max_rtt_s: float = MAX_RTT_S,
) -> HubOffset | NoEstimate:
    """The offset of the round's best sample, if at least ``min_agreeing`` samples agree with it.

    A sample agrees when its interval ``offset ± bound`` overlaps the best one's:
    both can then be right at once.
    """
    usable = [s for s in samples if 0.0 <= s.rtt <= max_rtt_s]
    if len(usable) < min_agreeing:
        return NoEstimate(
            Refusal.TOO_FEW,
            f"{len(usable)} of {len(samples)} round trips within {max_rtt_s} s; "
            f"{min_agreeing} needed",
        )
    best = min(usable, key=lambda s: s.rtt)
    agreeing = sum(
        1 for s in usable if abs(s.offset - best.offset) <= s.bound + best.bound + 2 * RESOLUTION_S
    )
    if agreeing < min_agreeing:
        spread = max(s.offset for s in usable) - min(s.offset for s in usable)
        return NoEstimate(
            Refusal.DISAGREE,
            f"only {agreeing} of {len(usable)} round trips agree "
            f"(offsets spread over {spread:.3f} s)",
        )
    return HubOffset(
        offset=best.offset,
        bound=best.bound,
        rtt=best.rtt,
        agreeing=agreeing,
        measured_mono=best.received_mono,
    )


class HubClock:
    """The hub-time state the uplink and the sampler share.

    ``wanted`` is set by the sampler while the local clock is not trusted (or
    while hub time is the one in use), so an agent with NTP never asks.
    """

    def __init__(self, *, round_samples: int = ROUND_SAMPLES, min_agreeing: int = MIN_AGREEING):
        self.round_samples = round_samples
        self.min_agreeing = min_agreeing
        self.wanted = False
        self.trusted: HubOffset | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, float] = {}  # request id -> sent_mono, this round only
        self._samples: list[TimeSample] = []
        self.last_refusal: NoEstimate | None = None

    def start_round(self) -> None:
        self._pending.clear()
        self._samples.clear()

    def request(self, sent_mono: float) -> int:
        """A new request id of the open round, sent at ``sent_mono``."""
        request_id = next(self._ids)
        self._pending[request_id] = sent_mono
        return request_id

    def answer(self, request_id: int, hub_wall: float, received_mono: float) -> None:
        """The hub's answer to a request; one of an earlier round, or unknown, is ignored."""
        sent = self._pending.pop(request_id, None)
        if sent is None:
            return
        self._samples.append(TimeSample(sent, received_mono, hub_wall))

    def end_round(self) -> HubOffset | NoEstimate:
        """Judge the round's samples; a trusted estimate replaces the previous one."""
        verdict = estimate(list(self._samples), min_agreeing=self.min_agreeing)
        self._pending.clear()
        self._samples.clear()
        if isinstance(verdict, HubOffset):
            first = self.trusted is None
            self.trusted = verdict
            self.last_refusal = None
            log = logger.warning if first else logger.debug
            log(
                "hub time measured: offset within %.1f ms (best round trip %.1f ms, %d agree)",
                verdict.bound * 1e3,
                verdict.rtt * 1e3,
                verdict.agreeing,
                extra={"bound_ms": round(verdict.bound * 1e3, 3), "agreeing": verdict.agreeing},
            )
        else:
            if self.last_refusal is None or self.last_refusal.reason is not verdict.reason:
                logger.warning(
                    "hub time not trusted: %s",
                    verdict.detail,
                    extra={"reason": verdict.reason.value, "error": verdict.detail},
                )
            self.last_refusal = verdict
        return verdict

    @property
    def samples(self) -> int:
        return len(self._samples)

    def age(self, now_mono: float) -> timedelta | None:
        if self.trusted is None:
            return None
        return timedelta(seconds=now_mono - self.trusted.measured_mono)
