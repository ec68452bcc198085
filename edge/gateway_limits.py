"""Per-client request pacing for the gateway (pure): a token bucket.

A client may send ``rate`` requests a second, in bursts of up to ``burst``.
A request beyond that is not refused: its session waits the returned delay
before serving it and reads nothing from the client meanwhile, so a flooding
client fills its own socket buffers (TCP backpressure) and costs the agent
one timer, not a busy loop (docs/gateway.md, "Limits").
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``take(now)`` returns how long to wait before the request may be served."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._updated = now

    def take(self, now: float) -> float:
        """Spend one token; below zero, the wait until the bucket is back at zero."""
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
