"""Home Assistant's topics and discovery configs from plain values (telemetry/homeassistant.py)."""

from __future__ import annotations

import json

import pytest

from telemetry import SECTION_MODELS
from telemetry.homeassistant import (
    ChangeGate,
    HaDevice,
    StateClass,
    Topics,
    ValueFilter,
    discovery_config,
    entity_name,
    flatten,
    kind_of,
    object_id,
    state_text,
)
from telemetry.mqtt_link import parse_broker_url
from tests.support.mqtt import discovery_problems, energy_dashboard_ready

DEVICE = HaDevice("ems_site_meter", "site meter", manufacturer="Eastron", model="SDM630")


def config_of(key: str, value: float | str) -> tuple[str, dict[str, object]]:
    topics = Topics()
    unique_id = object_id("ems", "site", "meter", key)
    text = discovery_config(
        key=key,
        value=value,
        unique_id=unique_id,
        state_topic=topics.device_state("site", "meter", key),
        device=DEVICE,
        availability=(topics.edge_status("site"),),
        expire_after_s=30,
    )
    return topics.discovery(unique_id), json.loads(text)


def test_every_field_of_the_protocol_makes_a_config_home_assistant_accepts() -> None:
    for section, model in SECTION_MODELS.items():
        for field in model.model_fields:
            value: float | str = "running" if field == "state" else 1.0
            for key, flat in flatten(
                {section: {field: [value] * 3 if "phase" in field else value}}
            ):
                topic, payload = config_of(key, flat)
                assert discovery_problems(topic, payload) == [], (key, payload)


@pytest.mark.parametrize(
    "key",
    [
        "grid.import_energy_wh",
        "grid.export_energy_wh",
        "inverter.energy_total_wh",
        "solar.energy_total_wh",
        "solar.energy_today_wh",
        "extra.battery_charge_total_wh",
        "extra.battery_discharge_total_wh",
    ],
)
def test_energy_counters_are_what_the_energy_dashboard_takes(key: str) -> None:
    topic, payload = config_of(key, 12345.0)
    assert discovery_problems(topic, payload) == []
    assert energy_dashboard_ready(payload)
    assert payload["state_class"] == "total_increasing"
    assert payload["unit_of_measurement"] == "Wh"


def test_kinds_follow_the_unit_in_the_name() -> None:
    assert kind_of("grid.power_w", 1.0) == kind_of("extra.pv1_power_w", 1.0)
    assert kind_of("grid.power_w", 1.0).device_class == "power"
    assert kind_of("battery.soc_pct", 50.0).device_class == "battery"
    assert kind_of("battery.soh_pct", 99.0).device_class is None
    assert kind_of("battery.soh_pct", 99.0).unit == "%"
    assert kind_of("extra.bms_remaining_capacity_ah", 1.0).unit == "Ah"
    assert kind_of("extra.grid_reactive_power_var", 1.0).device_class == "reactive_power"
    assert kind_of("extra.battery_rated_wh", 1.0).state_class is StateClass.MEASUREMENT
    assert kind_of("extra.battery_rated_wh", 1.0).device_class == "energy_storage"
    assert kind_of("grid.power_factor", 0.9).unit is None
    assert kind_of("extra.bms_cycle_count", 3.0).device_class is None
    text = kind_of("battery.state", "charging")
    assert (text.device_class, text.unit, text.state_class) == (None, None, None)


def test_flatten_names_phases_and_skips_what_is_not_a_value() -> None:
    entry = {
        "role": "grid",
        "total": False,
        "grid": {"power_w": -12, "phase_voltage_v": [230.1, 231.0], "ok": True},
        "battery": {"state": "idle", "soc_pct": float("nan")},
    }
    assert dict(flatten(entry)) == {
        "grid.power_w": -12.0,
        "grid.phase_voltage_l1_v": 230.1,
        "grid.phase_voltage_l2_v": 231.0,
        "battery.state": "idle",
    }


def test_state_payloads_are_plain_numbers_or_text() -> None:
    assert state_text(230.5) == "230.5"
    assert state_text(-0.0) == "-0.0"
    assert state_text(1e15) == "1000000000000000.0"
    assert state_text("charging") == "charging"


def test_names_drop_the_unit() -> None:
    assert entity_name("grid.import_energy_wh") == "Grid import energy"
    assert entity_name("extra.pv1_power_w") == "Pv1 power"
    assert entity_name("battery.soc_pct") == "Battery soc"


def test_topics_and_ids_hold_no_wildcards_nor_foreign_characters() -> None:
    topics = Topics(base="home/ems", discovery_prefix="ha")
    assert topics.device_state("site.1", "my+dev", "grid.power_w") == (
        "home/ems/site.1/device/my_dev/grid/power_w"
    )
    assert topics.site_state("s", "extra.x") == "home/ems/s/site/extra/x"
    assert topics.discovery("ems_site.1_a/b") == "ha/sensor/ems_site_1_a_b/config"
    assert topics.ha_status == "ha/status"
    assert topics.site_status("hub-1", "s/1") == "home/ems/hub/hub-1/site/s_1/status"
    assert object_id("ems", "site.1", "grid.power_w") == "ems_site_1_grid_power_w"


def test_filters_take_sections_names_and_patterns() -> None:
    every = ValueFilter()
    assert every.allows("grid.power_w")
    only = ValueFilter(include=("grid.*", "*_wh"), exclude=("grid.phase_*", "soc_pct"))
    assert only.allows("grid.power_w")
    assert only.allows("solar.energy_total_wh")
    assert not only.allows("grid.phase_voltage_l1_v")
    assert not only.allows("battery.voltage_v")
    assert not ValueFilter(exclude=("soc_pct",)).allows("battery.soc_pct")


def test_the_device_map_says_only_what_is_known() -> None:
    assert HaDevice("id", "name").payload() == {"identifiers": ["id"], "name": "name"}
    full = HaDevice("id", "n", "SMA", "Sunny Boy", "123", "hub").payload()
    assert full["serial_number"] == "123"
    assert full["via_device"] == "hub"


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user"),
    [
        ("mqtt://127.0.0.1", "127.0.0.1", 1883, False, None),
        ("mqtts://broker.lan", "broker.lan", 8883, True, None),
        ("mqtt://ha@broker:1884", "broker", 1884, False, "ha"),
    ],
)
def test_broker_urls(url: str, host: str, port: int, tls: bool, user: str | None) -> None:
    parsed = parse_broker_url(url)
    assert (parsed.host, parsed.port, parsed.tls, parsed.username) == (host, port, tls, user)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("tcp://broker", "must start with mqtt://"),
        ("mqtt://", "names no host"),
        ("mqtt://u:p@broker", "holds a password"),
        ("mqtt://broker/topic", "nothing after the port"),
        ("mqtt://broker:99999", "not a broker URL"),
    ],
)
def test_bad_broker_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_broker_url(url)


def test_an_unchanged_value_is_repeated_only_before_it_would_expire() -> None:
    gate = ChangeGate(refresh_s=10.0)
    assert gate.should_send("t", "1.0", 0.0)
    assert not gate.should_send("t", "1.0", 1.0)
    assert gate.should_send("t", "2.0", 2.0)  # changed
    assert not gate.should_send("t", "2.0", 11.9)
    assert gate.should_send("t", "2.0", 12.0)  # due: 10 s since it was last sent
    assert gate.should_send("u", "2.0", 12.0)  # each topic on its own
    gate.forget()
    assert gate.should_send("t", "2.0", 12.5)  # a new connection: everything again
