"""The hub's counters and their Prometheus text rendering (GET /metrics).

Counters live in plain objects the hot path bumps without awaiting; this
module only turns a snapshot of them into the Prometheus text exposition
format (version 0.0.4): ``# HELP``, ``# TYPE``, then one line per sample.
"""

from __future__ import annotations

import enum
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Door(enum.StrEnum):
    DEVICE = "device"
    DASHBOARD = "dashboard"


class DropReason(enum.StrEnum):
    """Why a valid reading (or a live frame) did not make it somewhere; a metrics label."""

    QUEUE_FULL = "writer_queue_full"  # BatchWriter.offer refused it: not acked, edge re-sends
    REPLACED = "replaced"  # arrived on a socket the ghost protocol had just replaced
    DASHBOARD_SLOW = "dashboard_slow"  # a dashboard's oldest pending frame, dropped


class MetricType(enum.StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"


@dataclass(slots=True)
class HubCounters:
    """Counters the doors bump (the writer and the feeds keep their own)."""

    readings_in: Counter[str] = field(default_factory=Counter)  # label: live | batch
    dropped: Counter[DropReason] = field(default_factory=Counter)
    refused: Counter[tuple[Door, str]] = field(default_factory=Counter)
    replaced: int = 0
    revoked_closed: int = 0
    acks_sent: int = 0  # ack frames
    seqs_acked: int = 0  # seqs inside them
    errors_sent: int = 0
    # Connections closed with 1011 because of an unexpected error in the hub, per door.
    internal_errors: Counter[Door] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family and its samples: label sets -> value."""

    name: str
    help: str
    type: MetricType
    samples: tuple[tuple[Mapping[str, str], float], ...]

    @classmethod
    def single(cls, name: str, help_text: str, kind: MetricType, value: float) -> Family:
        return cls(name, help_text, kind, (({}, value),))

    @classmethod
    def labelled(
        cls,
        name: str,
        help_text: str,
        kind: MetricType,
        label: str,
        values: Mapping[str, float],
    ) -> Family:
        return cls(
            name,
            help_text,
            kind,
            tuple(({label: key}, value) for key, value in sorted(values.items())),
        )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The Prometheus text format of the families, in the given order."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.type.value}")
        for labels, value in family.samples:
            if labels:
                inside = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
                lines.append(f"{family.name}{{{inside}}} {_number(value)}")
            else:
                lines.append(f"{family.name} {_number(value)}")
    return "\n".join(lines) + "\n"
