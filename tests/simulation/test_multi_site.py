"""``ems sim --site multi``: several devices per role, read back over real Modbus TCP.

Each device answers its share of the plant; composed as the edge agent does,
the devices' totals are the plant's own values within register resolution.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.bus import BusConfig, BusType
from drivers.device import Device
from drivers.profile import RegisterMap
from drivers.transports import Transport, open_transport
from edge.compose import Member, compose_site
from edge.config import parse_config
from simulation.layout import config_lines, encode_layout
from simulation.modbus_server import DeviceServer, DeviceSpec
from simulation.multi_site import EV_SHARE, HEAT_PUMP_SHARE, LAYOUT
from simulation.plant import Plant, Sections
from simulation.sites import site_layout
from tests.drivers.precision import mismatches, resolution

NOON = datetime(2026, 6, 21, 9, 30, tzinfo=UTC)


def _sections(scenario: str = "sunny") -> Sections:
    plant = Plant(scenario, seed=3, start=NOON)
    for _ in range(6):  # half an hour: every energy counter is past its first Wh
        plant.step(300.0)
    return plant.state.sections()


async def _transport(sections: Sections) -> AsyncIterator[Transport]:
    images = encode_layout(LAYOUT, sections)
    specs = [
        DeviceSpec.for_map(d.unit, images[d.unit], d.served, d.undefined) for d in LAYOUT.devices
    ]
    async with DeviceServer(specs, tcp=("127.0.0.1", 0)) as server:
        config = BusConfig("lan", BusType.TCP, host="127.0.0.1", port=server.tcp_port)
        async with open_transport(config) as transport:
            yield transport


MAPS: dict[str, RegisterMap] = {}  # each device's map, as its reader discovered it


def _tolerance(section: str, field: str) -> float:
    """Half a register step of each counted device giving the field, added up."""
    total = 0.0
    for device in LAYOUT.devices:
        if device.total is False or device.role.value != section:
            continue
        reg_map = MAPS[device.name]
        for point in reg_map.needed:
            target = point.target
            if target is not None and (target.section.value, target.field) == (section, field):
                total += resolution(reg_map, point.name)
    return total + 1e-3  # float32 registers: far below a milliunit at these magnitudes


def _power_tolerance(decoded: dict[str, dict[str, dict[str, object]]]) -> float:
    """A Seplos derives its power from pack voltage (10 mV) and current (10 mA) registers."""
    total = 0.0
    for name in ("stack_a", "stack_b"):
        battery = decoded[name]["battery"]
        volts, amps = battery["voltage_v"], battery["current_a"]
        assert isinstance(volts, float)
        assert isinstance(amps, float)
        total += abs(amps) * 0.005 + abs(volts) * 0.005
    return total


async def _read_all(sections: Sections) -> dict[str, dict[str, dict[str, object]]]:
    decoded: dict[str, dict[str, dict[str, object]]] = {}
    async for transport in _transport(sections):
        for device in LAYOUT.devices:
            reader = Device(transport, unit=device.unit, profile=device.profile)
            reading = await reader.read()
            assert reader.register_map is not None
            values = {k: dict(v) for k, v in reading.sections.items()}
            assert mismatches(reader.register_map, device.measures(sections), values) == [], (
                device.name
            )
            # After the first read (SunSpec discovers its models), one plan per poll.
            again = await reader.read()
            assert again.transactions == len(reader.register_map.plan), device.name
            decoded[device.name] = values
            MAPS[device.name] = reader.register_map
    return decoded


def test_the_site_is_listed_with_distinct_units() -> None:
    assert site_layout("multi") is LAYOUT
    assert [(d.unit, d.name, d.profile, d.total) for d in LAYOUT.devices] == [
        (1, "inverter_east", "sunspec", True),
        (2, "inverter_west", "sunspec", True),
        (10, "meter_main", "eastron_sdm630", None),
        (11, "heat_pump", "eastron_sdm120", False),
        (12, "ev_charger", "eastron_sdm120", False),
        (20, "stack_a", "seplos_v3", True),
        (21, "stack_b", "seplos_v3", True),
    ]


def test_the_printed_config_is_one_the_agent_accepts() -> None:
    lines = config_lines(LAYOUT, host="127.0.0.1", port=5020)
    head = 'device_id = "site"\n[hub]\nurl = "ws://hub"\n[buffer]\npath = "buffer.db"\n'
    config = parse_config(head + lines, base_dir=Path("/site"))
    assert config.per_device
    assert [(d.name, d.role.value, d.total) for d in config.devices] == [
        (d.name, d.role.value, d.total is not False) for d in LAYOUT.devices
    ]


@pytest.mark.parametrize("scenario", ["sunny", "night"])
async def test_the_devices_add_up_to_the_plant(scenario: str) -> None:
    sections = _sections(scenario)
    decoded = await _read_all(sections)
    composed = compose_site(
        [Member(d.name, d.role, d.total is not False, decoded[d.name]) for d in LAYOUT.devices]
    )
    assert composed.rejected == ()
    assert set(composed.devices) == {d.name for d in LAYOUT.devices}
    totals, plant = composed.sections, sections
    # Float32 registers: the totals are the plant's within a few float32 steps.
    for section, field in (
        ("inverter", "ac_power_w"),
        ("inverter", "dc_power_w"),
        ("inverter", "ac_current_a"),
        ("battery", "current_a"),
        ("grid", "power_w"),
        ("grid", "import_energy_wh"),
    ):
        want = plant[section][field]
        assert isinstance(want, float)
        got = totals[section][field]
        assert got == pytest.approx(want, rel=1e-6, abs=_tolerance(section, field)), (
            section,
            field,
        )
    assert totals["battery"]["power_w"] == pytest.approx(
        plant["battery"]["power_w"], abs=_power_tolerance(decoded)
    )
    assert totals["inverter"]["energy_total_wh"] == pytest.approx(
        plant["inverter"]["energy_total_wh"], abs=_tolerance("inverter", "energy_total_wh")
    )
    # Stacks in parallel: the battery's state of charge, its bus voltage, its extreme cells
    # (Seplos: 0.1 % SOC, 10 mV pack, 1 mV cells; a mean or an extreme is within half a step).
    assert totals["battery"]["soc_pct"] == pytest.approx(
        plant["battery"]["soc_pct"], abs=0.05 + 1e-9
    )
    assert totals["battery"]["voltage_v"] == pytest.approx(plant["battery"]["voltage_v"], abs=0.005)
    assert totals["battery"]["cell_voltage_min_v"] == pytest.approx(
        plant["battery"]["cell_voltage_min_v"], abs=0.0005 + 1e-9
    )
    # The sub-meters are beside the totals, not in them.
    house = plant["extra"]["house_power_w"]
    assert isinstance(house, float)
    heat_pump = composed.devices["heat_pump"]
    assert heat_pump["total"] is False
    assert heat_pump["grid"]["power_w"] == pytest.approx(HEAT_PUMP_SHARE * house, rel=1e-5)
    ev = composed.devices["ev_charger"]["grid"]["power_w"]
    assert ev == pytest.approx(EV_SHARE * house, rel=1e-5)
    assert totals["grid"]["power_w"] == composed.devices["meter_main"]["grid"]["power_w"]
