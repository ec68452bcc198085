"""Ownership of a device across hubs: epochs, leases and fencing. Pure decisions.

A device is registered at one hub at a time (docs/protocol.md, "Ghost
protocol"). Across hubs, every claim takes the next **epoch** of the device
(Redis ``INCR``) and sets its owner key to ``"{hub} {epoch}"`` with a
**lease** (``PX``), in one script that also tells every hub (``kick``): a
newer connection always wins, as on one hub, and the hub holding an older
epoch closes its socket with 1008.

**Fencing.** A session holds its device while its epoch is the highest this
hub has heard of (``fence``) and its lease is still running on this hub's
clock: the lease is renewed every third of its length, counted from when the
renewal was *sent*, so this hub's idea of it ends before Redis's. A hub that
was paused or partitioned past its lease neither acks nor commits for the
device (hub/batch_writer.py asks the session's replies, hub/device_replies.py) until
a renewal confirms it still owns it, and a renewal that finds another owner
ends the session. While Redis itself is unreachable, hubs act on their own
authority (docs/architecture.md, "Several hubs"): availability first, the
cluster converges when Redis is back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

DEFAULT_LEASE_S: Final = 5.0
# Of the lease, the part this hub stops counting on early: the clocks of this hub
# and of Redis start it at different instants (sent vs executed).
LEASE_MARGIN: Final = 0.2


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    lease_s: float = DEFAULT_LEASE_S

    @property
    def renew_every_s(self) -> float:
        return self.lease_s / 3

    @property
    def lease_ms(self) -> int:
        return int(self.lease_s * 1000)

    def valid_until(self, sent_at: float) -> float:
        """Until when a lease granted or renewed by a command sent at ``sent_at`` holds."""
        return sent_at + self.lease_s * (1 - LEASE_MARGIN)


class Renewal(enum.Enum):
    """What a renewal script answered for one session (hub/cluster/scripts.py)."""

    HELD = 1  # still ours: extended (or taken back, nobody having claimed it since)
    LOST = 0  # another hub claimed it: end the session with 1008

    @classmethod
    def of(cls, answer: int) -> Renewal:
        return cls.HELD if answer == 1 else cls.LOST


def holds(*, epoch: int, fence: int, lease_until: float, now: float, redis_up: bool) -> bool:
    """Whether a session may still ack and commit for its device (the fencing check).

    ``fence``: the highest epoch this hub has heard claimed for the device.
    """
    if epoch < fence:
        return False  # a newer claim exists: never again, whatever Redis's state
    if not redis_up:
        return True  # on our own authority until Redis is back (module docstring)
    return now < lease_until


def superseded(session_epoch: int, registered_epoch: int | None, fence: int) -> bool:
    """Whether a new session must not register: a newer one is, or was claimed, already."""
    if session_epoch < fence:
        return True
    return registered_epoch is not None and registered_epoch > session_epoch
