from __future__ import annotations

from hub.metrics import Family, MetricType, render


def test_render_prometheus_text() -> None:
    text = render(
        [
            Family.single("ems_up", "Up.", MetricType.GAUGE, 1),
            Family.labelled(
                "ems_invalid_total",
                "Invalid frames.",
                MetricType.COUNTER,
                "reason",
                {"not_json": 3, "binary": 1},
            ),
            Family.single("ems_lag_seconds", "Lag.", MetricType.GAUGE, 0.25),
            Family("ems_odd", "Odd labels.", MetricType.GAUGE, (({"k": 'a"b\\c'}, 2.0),)),
        ]
    )
    assert text.splitlines() == [
        "# HELP ems_up Up.",
        "# TYPE ems_up gauge",
        "ems_up 1",
        "# HELP ems_invalid_total Invalid frames.",
        "# TYPE ems_invalid_total counter",
        'ems_invalid_total{reason="binary"} 1',
        'ems_invalid_total{reason="not_json"} 3',
        "# HELP ems_lag_seconds Lag.",
        "# TYPE ems_lag_seconds gauge",
        "ems_lag_seconds 0.25",
        "# HELP ems_odd Odd labels.",
        "# TYPE ems_odd gauge",
        'ems_odd{k="a\\"b\\\\c"} 2',
    ]
    assert text.endswith("\n")
