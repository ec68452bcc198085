"""Prometheus exposition: metric families, a hub's registry, the text format.

prometheus_client renders the hub's counters only at scrape time:
:class:`SnapshotCollector` is a custom collector that turns a snapshot of the
counters (hub/metrics.py, ``HubMetrics.collect``) into metric families, and
:func:`hub_registry` is one hub's own ``CollectorRegistry`` (never the
process-wide default, so several hubs in one process stay apart) carrying it
beside the process and garbage-collector collectors operators expect
(``process_resident_memory_bytes``, ``process_open_fds``,
``process_cpu_seconds_total``, ``python_gc_*``).

The exposition is the Prometheus text format, version 0.0.4.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4


class MetricType(enum.StrEnum):
    COUNTER = "counter"
    GAUGE = "gauge"


def _family(
    name: str, help_text: str, kind: MetricType, labels: Iterable[str]
) -> CounterMetricFamily | GaugeMetricFamily:
    if kind is MetricType.COUNTER:
        # Every counter's name ends in _total: prometheus_client strips it from the
        # family and writes it back on the samples and the TYPE line.
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r}: a counter's name ends in _total")
        return CounterMetricFamily(name, help_text, labels=list(labels))
    return GaugeMetricFamily(name, help_text, labels=list(labels))


def single(name: str, help_text: str, kind: MetricType, value: float) -> Metric:
    """A family of one unlabelled sample."""
    family = _family(name, help_text, kind, ())
    family.add_metric([], value)
    return family


def labelled(
    name: str, help_text: str, kind: MetricType, label: str, values: Mapping[str, float]
) -> Metric:
    """A family with one label, a sample per value of it, sorted by that value."""
    family = _family(name, help_text, kind, (label,))
    for key, value in sorted(values.items()):
        family.add_metric([str(key)], value)
    return family


def multi_labelled(
    name: str,
    help_text: str,
    kind: MetricType,
    labels: tuple[str, ...],
    samples: Iterable[tuple[tuple[str, ...], float]],
) -> Metric:
    """A family with several labels: ``samples`` are (label values, value) pairs."""
    family = _family(name, help_text, kind, labels)
    for values, value in samples:
        family.add_metric(list(values), value)
    return family


class SnapshotCollector:
    """A prometheus_client collector: the families ``snapshot`` builds at each scrape."""

    def __init__(self, snapshot: Callable[[], Iterable[Metric]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return list(self._snapshot())


def hub_registry(snapshot: Callable[[], Iterable[Metric]]) -> CollectorRegistry:
    """One hub's registry: its own families first, then the process and GC collectors."""
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(snapshot))
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (version 0.0.4)."""
    return generate_latest(registry)
