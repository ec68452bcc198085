"""What the hub knows of the devices behind an agent: health frames, and history notices.

Health (docs/protocol.md, "Device health"): an agent's ``health`` frame gives
ages in seconds; :func:`site_health` turns them into instants with the hub's
clock when the frame arrives, so an edge with an unsynced clock still reports
"failing since 05:30:12". A device's identity (maker, model, serial number,
firmware), when its agent sends one, is kept with it. The hub keeps the latest per device id (in
hub/connections.py), shows it on ``/api/devices`` and ``/metrics``, and
pushes it to dashboards as a ``health`` frame.

History (docs/protocol.md, "History arrived"): a batch is stored, never pushed
live; :class:`HistoryNotice` wraps a connection's ack sink for one batch and,
after each commit, tells the device's dashboards which time range was just
stored, so an open chart fetches it instead of keeping a hole until a reload.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub.batch_writer import AckSink, is_fenced
from telemetry import format_ts
from telemetry.health import HealthFrame, HealthState


@dataclass(frozen=True, slots=True)
class DeviceHealthEntry:
    """One device behind an agent, its times on the hub's clock."""

    name: str
    role: str | None
    state: HealthState
    since: datetime | None  # when it entered its state (None: not tried yet)
    last_ok: datetime | None  # its last good read
    error: str
    # What the device says it is: manufacturer, model, serial_number, firmware_version,
    # those it reported (empty: none, or an agent that does not send them).
    identity: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "state": self.state.value,
            "since": format_ts(self.since) if self.since is not None else None,
            "last_ok": format_ts(self.last_ok) if self.last_ok is not None else None,
            "error": self.error,
            "identity": dict(self.identity) if self.identity else None,
        }


@dataclass(frozen=True, slots=True)
class SiteHealth:
    """An agent's latest health frame, as received."""

    received_at: datetime
    interval_s: float | None
    devices: tuple[DeviceHealthEntry, ...]

    @property
    def failing(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.devices if d.state is HealthState.FAILING)

    def to_json(self) -> dict[str, Any]:
        return {
            "received_at": format_ts(self.received_at),
            "interval_s": self.interval_s,
            "failing": list(self.failing),
            "devices": [device.to_json() for device in self.devices],
        }


def site_health(frame: HealthFrame, now: datetime) -> SiteHealth:
    """The frame's ages as instants: ``now`` is when the hub received it."""
    devices = tuple(
        DeviceHealthEntry(
            name=report.name,
            role=report.role,
            state=report.state,
            since=(
                None
                if report.state is HealthState.UNKNOWN
                else now - timedelta(seconds=report.for_s)
            ),
            last_ok=(
                now - timedelta(seconds=report.last_ok_age_s)
                if report.last_ok_age_s is not None
                else None
            ),
            error=report.error,
            identity=(
                tuple(report.identity.model_dump(exclude_none=True).items())
                if report.identity is not None
                else ()
            ),
        )
        for report in frame.devices
    )
    return SiteHealth(now, frame.interval_s, devices)


def health_frame(device_id: str, health: SiteHealth) -> str:
    """Hub -> dashboard ``health`` frame."""
    return json.dumps(
        {"type": "health", "device_id": device_id, **health.to_json()}, separators=(",", ":")
    )


def history_frame(device_id: str, start: datetime, end: datetime) -> str:
    """Hub -> dashboard ``history`` frame: readings with ``start <= ts <= end`` were stored."""
    frame = {"type": "history", "device_id": device_id}
    frame |= {"start": format_ts(start), "end": format_ts(end)}
    return json.dumps(frame, separators=(",", ":"))


class HistoryNotice:
    """An :class:`AckSink` for one batch: acks go on to ``inner``, stored ranges to ``notify``."""

    __slots__ = ("_inner", "_notify", "_ts_by_seq")

    def __init__(
        self,
        inner: AckSink,
        readings: Iterable[tuple[int, datetime]],
        notify: Callable[[datetime, datetime], None],
    ) -> None:
        self._inner = inner
        self._ts_by_seq = dict(readings)
        self._notify = notify

    def fenced(self) -> bool:
        """As its connection's replies (hub/batch_writer.py, ``Fenceable``)."""
        return is_fenced(self._inner)

    def committed(self, seqs: list[int]) -> None:
        self._inner.committed(seqs)
        # pop: a seq acked twice (a re-sent reading) is announced once.
        times = [ts for seq in seqs if (ts := self._ts_by_seq.pop(seq, None)) is not None]
        if times:
            self._notify(min(times), max(times))
