"""Every SunSpec model we support, encoded and decoded through one discovered map."""

from __future__ import annotations

import pytest

from drivers.profile import RegisterImage, decode_map, encode_map
from drivers.profiles import sunspec
from drivers.registers import RegisterType
from tests.drivers.precision import mismatches

SECTIONS: dict[str, dict[str, object]] = {
    "inverter": {
        "ac_power_w": 3120.4,
        "ac_voltage_v": 231.27,
        "ac_current_a": 13.504,
        "ac_frequency_hz": 50.013,
        "dc_power_w": 3230.0,
        "energy_total_wh": 8123400.0,
        "temperature_c": 41.53,
        "state": "throttled",
    },
    "grid": {
        "power_w": -850.4,
        "voltage_v": 230.84,
        "current_a": 3.91,
        "frequency_hz": 49.98,
        "power_factor": 0.98,
        "import_energy_wh": 1523000.0,
        "export_energy_wh": 2210000.0,
        "phase_voltage_v": [230.8, 231.1, 229.9],
        "phase_power_w": [-300.0, -250.0, -300.0],
    },
    "battery": {
        "soc_pct": 76.54,
        "soh_pct": 98.0,
        "voltage_v": 51.93,
        "current_a": -23.1,
        "power_w": -1200.0,
        "cell_voltage_min_v": 3.241,
        "cell_voltage_max_v": 3.262,
        "state": "charging",
    },
    "extra": {
        "mppt1_current_a": 8.5,
        "mppt1_voltage_v": 380.2,
        "mppt1_power_w": 3230.0,
        "mppt1_energy_wh": 9100000.0,
        "mppt2_current_a": 2.0,
        "mppt2_voltage_v": 300.0,
        "mppt2_power_w": 600.0,
        "mppt2_energy_wh": 100000.0,
        "bms_cycle_count": 312.0,
        "storage_max_charge_w": 5000.0,
    },
}


@pytest.mark.parametrize(
    "models",
    [
        (1, 101, 160, 201, 802),
        (1, 102, 124, 202),
        (1, 103, 124, 203),
        (1, 111, 160, 204, 802),
        (1, 112),
        (1, 113, 802),
    ],
)
def test_models_round_trip(models: tuple[int, ...]) -> None:
    chain = sunspec.layout(models, mppt_modules=2)
    reg_map = sunspec.register_map(chain)
    image = encode_map(reg_map, SECTIONS)
    # The image is a complete SunSpec device: marker, chain, end.
    holding = image[RegisterType.HOLDING]
    assert (holding[40000], holding[40001]) == sunspec.MARKER
    assert (holding[chain.end], holding[chain.end + 1]) == (0xFFFF, 0)
    decoded = decode_map(reg_map, image)
    assert mismatches(reg_map, SECTIONS, decoded) == []
    if 160 in models:
        assert decoded["solar"]["pv_power_w"] == 3830.0
        assert decoded["solar"]["energy_total_wh"] == 9200000.0


async def test_discovery_walks_what_layout_lays_out() -> None:
    chain = sunspec.layout((1, 113, 160, 203, 802), mppt_modules=3, base=50000)
    image: RegisterImage = encode_map(sunspec.register_map(chain), SECTIONS)
    holding = image[RegisterType.HOLDING]

    async def read(address: int, count: int) -> list[int]:
        return [holding.get(a, 0) for a in range(address, address + count)]

    found = await sunspec.discover(read, unit=1, bases=(50000,))
    assert found == chain


def test_only_the_first_model_feeding_a_field_keeps_it() -> None:
    reg_map = sunspec.register_map(sunspec.layout((1, 124, 802)))
    soc = [p.name for p in reg_map.points if p.target and str(p.target) == "battery.soc_pct"]
    assert soc == ["1.124.ChaState"]


def test_unimplemented_values_are_left_out() -> None:
    reg_map = sunspec.register_map(sunspec.layout((1, 103)))
    image = encode_map(reg_map, {"inverter": {"ac_power_w": 100.0}})
    decoded = decode_map(reg_map, image)
    assert decoded == {"inverter": {"ac_power_w": 100.0}}
