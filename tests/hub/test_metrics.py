from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from prometheus_client.metrics_core import Metric

from hub.batch_writer import BatchWriter
from hub.cluster.link import ClusterLink
from hub.cluster.settings import ClusterSettings
from hub.connections import ConnectionManager
from hub.exposition import MetricType, hub_registry, labelled, multi_labelled, render, single
from hub.guess_budget import GuessBudget
from hub.limits import Closure, ConnectionGate, ConnectionLimits, GateCounters, Refusal
from hub.metrics import Door, DropReason, HubCounters, HubMetrics
from hub.storage.sqlite import SqliteStorage
from telemetry import FrameProblem
from tests.support.hub import parse_metrics

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def families() -> list[Metric]:
    return [
        single("ems_up", "Up.", MetricType.GAUGE, 1),
        labelled(
            "ems_invalid_total",
            "Invalid frames.",
            MetricType.COUNTER,
            "reason",
            {"not_json": 3, "binary": 1},
        ),
        single("ems_lag_seconds", "Lag.", MetricType.GAUGE, 0.25),
        multi_labelled(
            "ems_odd", "Odd labels.", MetricType.GAUGE, ("k", "door"), [(('a"b\\c', "x"), 2.0)]
        ),
    ]


def test_render_prometheus_text() -> None:
    registry = hub_registry(families)
    text = render(registry).decode()
    ours = [line for line in text.splitlines() if "ems_" in line]
    assert ours == [
        "# HELP ems_up Up.",
        "# TYPE ems_up gauge",
        "ems_up 1.0",
        "# HELP ems_invalid_total Invalid frames.",
        "# TYPE ems_invalid_total counter",
        'ems_invalid_total{reason="binary"} 1.0',
        'ems_invalid_total{reason="not_json"} 3.0',
        "# HELP ems_lag_seconds Lag.",
        "# TYPE ems_lag_seconds gauge",
        "ems_lag_seconds 0.25",
        "# HELP ems_odd Odd labels.",
        "# TYPE ems_odd gauge",
        'ems_odd{door="x",k="a\\"b\\\\c"} 2.0',
    ]
    assert text.startswith("# HELP ems_up Up.\n")  # ours first, then the process's
    assert text.endswith("\n")


def test_the_registry_carries_the_process_and_gc_collectors() -> None:
    samples = parse_metrics(render(hub_registry(list)).decode())
    assert samples["process_resident_memory_bytes"] > 0
    assert samples["process_open_fds"] > 0
    assert samples["process_cpu_seconds_total"] > 0
    assert 'python_gc_collections_total{generation="0"}' in samples


def test_each_scrape_takes_a_fresh_snapshot() -> None:
    count = {"n": 0}

    def snapshot() -> list[Metric]:
        count["n"] += 1
        return [single("ems_scrapes_total", "Scrapes.", MetricType.COUNTER, count["n"])]

    registry = hub_registry(snapshot)
    assert parse_metrics(render(registry).decode())["ems_scrapes_total"] == 1
    assert parse_metrics(render(registry).decode())["ems_scrapes_total"] == 2


def test_a_counter_must_end_in_total() -> None:
    # prometheus_client would add _total to the samples: a renamed metric.
    with pytest.raises(ValueError, match="_total"):
        single("ems_acks_sent", "Acks.", MetricType.COUNTER, 1)


def test_hub_metrics_exposes_what_it_owns_and_what_is_registered() -> None:
    metrics = HubMetrics()
    gate = ConnectionGate(ConnectionLimits(), metrics.gate)
    guesses = GuessBudget(counts=metrics.guesses)
    metrics.attach_parts(gate=gate, guesses=guesses, connections=ConnectionManager())
    # Its own counters, as the doors, the gatekeeper and the feeds bump them...
    metrics.doors.readings_in["live"] += 3
    metrics.doors.refused[(Door.DEVICE, "bad_token")] += 1
    metrics.doors.dropped[DropReason.QUEUE_FULL] += 2
    metrics.feeds.dropped += 5
    metrics.invalid[FrameProblem.NOT_JSON] += 4
    # ...and by the parts it handed its counters to.
    gate.counters.refused[Refusal.PENDING_FULL] += 6
    guesses.failed("192.0.2.7", 0.0)

    samples = parse_metrics(metrics.render().decode())

    assert samples['ems_readings_in_total{path="live"}'] == 3
    assert samples['ems_refused_total{door="device",reason="bad_token"}'] == 1
    assert samples['ems_dropped_total{reason="writer_queue_full"}'] == 2
    assert samples['ems_dropped_total{reason="dashboard_slow"}'] == 5
    assert samples['ems_invalid_total{reason="not_json"}'] == 4
    assert samples['ems_connections_refused_total{reason="pending_full"}'] == 6
    assert samples["ems_viewer_tokens_wrong_total"] == 1
    assert samples["ems_viewer_guess_addresses"] == 1
    assert samples['ems_connections{door="device"}'] == 0
    # No writer and no cluster link registered yet: none of their families.
    assert not [name for name in samples if name.startswith(("ems_writer_", "ems_cluster_"))]


# The labels a scrape shows of each Counter held by HubMetrics' counter objects.
LABELS: dict[tuple[type, str], list[object]] = {
    (HubCounters, "readings_in"): ["live", "batch"],
    (HubCounters, "dropped"): list(DropReason),
    (HubCounters, "refused"): [(Door.DEVICE, "bad_token")],
    (HubCounters, "internal_errors"): list(Door),
    (GateCounters, "refused"): list(Refusal),
    (GateCounters, "closed"): list(Closure),
}


def bump_all(counters: DataclassInstance) -> None:
    """Add 7 to every count of one of HubMetrics' counter objects."""
    for item in dataclasses.fields(counters):
        value = getattr(counters, item.name)
        if isinstance(value, Counter):
            for label in LABELS[(type(counters), item.name)]:
                value[label] += 7
        else:
            setattr(counters, item.name, value + 7)


def test_every_counter_shown_is_one_hub_metrics_created(tmp_path: Path) -> None:
    metrics = HubMetrics()
    # The parts, each given the counters HubMetrics created, as hub/app.py and
    # hub/runtime.py hand them; a BatchWriter and a ClusterLink not started.
    manager = ConnectionManager(metrics.sockets)
    metrics.attach_parts(
        gate=ConnectionGate(ConnectionLimits(), metrics.gate),
        guesses=GuessBudget(counts=metrics.guesses),
        connections=manager,
    )
    metrics.attach_writer(BatchWriter(SqliteStorage(tmp_path / "hub.db"), counters=metrics.writer))
    link = ClusterLink(ClusterSettings("redis://127.0.0.1:1", "a"), manager, metrics.cluster)
    metrics.attach_cluster(link)
    untouched = parse_metrics(metrics.render().decode())
    shown = [name for name in untouched if name.startswith("ems_") and "_total" in name]
    assert len(shown) > 40
    assert all(untouched[name] == 0 for name in shown)

    owned: tuple[DataclassInstance, ...] = (
        metrics.doors,
        metrics.feeds,
        metrics.gate,
        metrics.guesses,
        metrics.sockets,
        metrics.writer,
        metrics.cluster,
    )
    for one in owned:
        bump_all(one)
    for problem in FrameProblem:
        metrics.invalid[problem] += 7
    samples = parse_metrics(metrics.render().decode())

    assert [name for name in shown if samples[name] == 0] == []
