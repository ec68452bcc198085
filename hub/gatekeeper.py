"""What the hub does with the part of a device frame it cannot use.

``telemetry.parse_device_frame`` decides what is valid (docs/protocol.md, "A reading");
this module decides what happens to the rest: every rejection is counted per
``FrameProblem``, and logged, but at most ``burst`` lines per device per
``window_s`` seconds, with a summary of what was suppressed, so one broken
device cannot flood the log. The connection is never closed for bad content
(only an oversized frame closes it, with 1009, and that happens in uvicorn).

Pure logic: the clock is passed in, so tests run on plain values.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from telemetry import FrameProblem, Rejected
from telemetry.client_text import client_text

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Window:
    started: float
    logged: int = 0
    suppressed: int = 0


@dataclass(frozen=True, slots=True)
class LogDecision:
    """Whether to log a rejection now, and how many were suppressed before it."""

    log: bool
    suppressed_before: int = 0


@dataclass(slots=True)
class LogLimiter:
    """At most ``burst`` log lines per key per ``window_s`` seconds."""

    burst: int = 5
    window_s: float = 60.0
    max_keys: int = 20_000  # bounded memory: expired windows are pruned past this
    _windows: dict[str, _Window] = field(default_factory=dict)

    def decide(self, key: str, now: float) -> LogDecision:
        window = self._windows.get(key)
        if window is None and len(self._windows) >= self.max_keys:
            self._prune(now)
        suppressed_before = 0
        if window is None or now - window.started >= self.window_s:
            suppressed_before = window.suppressed if window is not None else 0
            window = _Window(started=now)
            self._windows[key] = window
        if window.logged < self.burst:
            window.logged += 1
            return LogDecision(True, suppressed_before)
        window.suppressed += 1
        return LogDecision(False, suppressed_before)

    def _prune(self, now: float) -> None:
        expired = [k for k, w in self._windows.items() if now - w.started >= self.window_s]
        for key in expired:
            del self._windows[key]
        if len(self._windows) >= self.max_keys:
            # Still full of live windows: forget the oldest half rather than grow.
            ordered = sorted(self._windows, key=lambda k: self._windows[k].started)
            for key in ordered[: len(ordered) // 2]:
                del self._windows[key]

    def __len__(self) -> int:
        return len(self._windows)


@dataclass(slots=True)
class Gatekeeper:
    """Counts rejections per problem and logs them without flooding."""

    limiter: LogLimiter = field(default_factory=LogLimiter)
    counts: Counter[FrameProblem] = field(default_factory=Counter)

    def reject(self, device_id: str, rejected: Rejected, now: float) -> None:
        self.counts[rejected.problem] += 1
        decision = self.limiter.decide(device_id, now)
        if decision.suppressed_before:
            logger.warning(
                "device %s: %d more bad frames were not logged in the last window",
                client_text(device_id),
                decision.suppressed_before,
            )
        if decision.log:
            logger.warning(
                "device %s: dropped (%s, seq %s): %s",
                client_text(device_id),
                rejected.problem.value,
                rejected.seq,
                client_text(rejected.reason),
            )
