"""Victron GX register maps: hand-made images in the register list's own terms.

Each image is typed from the "Field list" of CCGX-Modbus-TCP-register-list Rev 53:
the raw word is the value times the scalefactor (840 "Battery Voltage (System)",
scalefactor 10: 53.1 V is 531), signed types in two's complement, and the signs
its remarks give ("Positive: battery being charged").
"""

from __future__ import annotations

from drivers.bus import BusType
from drivers.planner import Hole
from drivers.profile import RegisterImage, RegisterMap, decode_map
from drivers.profiles import get_profile
from drivers.profiles.victron import BATTERY, SOLARCHARGER, SYSTEM, VEBUS
from drivers.registers import RegisterType


def _image(reg_map: RegisterMap, words: dict[int, int]) -> RegisterImage:
    """Every point of ``reg_map`` 0 (the GX's "not available") but those in ``words``."""
    table = {p.address: 0 for p in reg_map.points}
    table.update({address: word & 0xFFFF for address, word in words.items()})
    return {RegisterType.HOLDING: table}


def test_the_system_service_exporting_while_the_battery_discharges() -> None:
    words = {
        # Grid L1-L3 (int16 W, "Power supplied by Grid to system"): exporting on L1.
        820: -1387,
        821: 118,
        822: 118,
        817: 131,  # AC Consumption L1-L3
        818: 131,
        819: 131,
        840: 531,  # 53.1 V
        841: -283,  # -28.3 A: "Negative: battery being discharged"
        842: -1500,
        843: 55,
        844: 2,  # 2=discharging
        850: 3084,  # PV - DC-coupled power
        809: 250,  # 250 W of AC-coupled PV on the output, L2
    }
    sections = decode_map(SYSTEM, _image(SYSTEM, words))
    assert sections["grid"] == {"phase_power_w": [-1387.0, 118.0, 118.0], "power_w": -1151.0}
    # The protocol's signs: > 0 discharging.
    assert sections["battery"] == {
        "voltage_v": 53.1,
        "current_a": 28.3,
        "power_w": 1500.0,
        "soc_pct": 55.0,
        "state": "discharging",
    }
    assert sections["solar"] == {"pv_power_w": 3334.0}
    assert sections["extra"]["ac_consumption_w"] == 393.0


def test_a_can_bus_bms_charging() -> None:
    words = {
        258: 1500,  # "Battery power", charging
        259: 5310,  # scalefactor 100: 53.10 V
        261: 283,  # 28.3 A, "Positive: battery being charged"
        262: 211,  # 21.1 degC
        265: 1232,  # scalefactor -10: -123.2 Ah consumed
        266: 551,  # 55.1 %
        304: 980,  # 98.0 %
        309: 2744,  # 274.4 Ah
        1290: 332,  # 3.32 V
        1291: 334,
    }
    sections = decode_map(BATTERY, _image(BATTERY, words))
    assert sections["battery"] == {
        "power_w": -1500.0,
        "voltage_v": 53.1,
        "current_a": -28.3,
        "temperature_c": 21.1,
        "soc_pct": 55.1,
        "soh_pct": 98.0,
        "cell_voltage_min_v": 3.32,
        "cell_voltage_max_v": 3.34,
    }
    assert sections["extra"]["bms_consumed_ah"] == -123.2
    assert sections["extra"]["bms_capacity_ah"] == 274.4
    # "Not supported by CAN.Bus BMS batteries": 0, as the GX reads it.
    assert sections["extra"]["bms_charged_energy_wh"] == 0.0


def test_a_multi_feeding_its_loads_and_the_grid() -> None:
    words = {
        3: 2303,  # 230.3 V in
        6: -60,  # -6.0 A: "Negative: current flowing from Multi to mains"
        9: 5001,
        12: -139,  # scalefactor 0.1: -1390 W
        15: 2303,
        18: 7,  # 0.7 A out
        21: 5001,
        23: 15,  # 150 W to the loads
        26: 5310,
        27: -298,  # "Negative: [...] from the dc system to the Multi": discharging
        28: 1,
        30: 551,
        31: 9,  # 9=Inverting
        61: 211,
    }
    sections = decode_map(VEBUS, _image(VEBUS, words))
    # Output 150 W less input -1390 W: the Multi adds 1540 W to AC.
    assert sections["inverter"] == {
        "ac_voltage_v": 230.3,
        "ac_current_a": 0.7,
        "ac_frequency_hz": 50.01,
        "state": "inverting",
        "ac_power_w": 1540.0,
    }
    assert sections["battery"] == {"voltage_v": 53.1, "soc_pct": 55.1, "temperature_c": 21.1}
    assert sections["extra"]["vebus_dc_current_a"] == 29.8  # > 0: drawn from the battery
    assert sections["extra"]["vebus_in_current_l1_a"] == -6.0


def test_an_mppt_in_bulk() -> None:
    words = {
        771: 5310,
        772: 581,  # 58.1 A into the battery
        775: 3,  # 3=Bulk
        776: 9420,  # 94.20 V
        777: 336,  # 33.6 A
        784: 16,  # scalefactor 10: 1.6 kWh
        789: 31609,  # scalefactor 10: 3160.9 W
        790: 16,
    }
    sections = decode_map(SOLARCHARGER, _image(SOLARCHARGER, words))
    assert sections["solar"] == {
        "pv_voltage_v": 94.2,
        "pv_current_a": 33.6,
        "energy_today_wh": 1600.0,
        "pv_power_w": 3160.9,
    }
    assert sections["extra"]["charger_battery_current_a"] == 58.1
    assert sections["extra"]["charger_state_code"] == 3.0


def test_read_plans() -> None:
    # System: 808-822, 840-844 and 850, around older firmware's reserved gaps;
    # battery: 258-309 and the BMS block at 1290; vebus 3-61; solarcharger 771-790.
    counts = {m.name: (len(m.plan), len(m.minimal_plan)) for m in (SYSTEM, BATTERY, VEBUS)}
    counts[SOLARCHARGER.name] = (len(SOLARCHARGER.plan), len(SOLARCHARGER.minimal_plan))
    assert counts == {
        "victron_system": (3, 3),
        "victron_battery": (2, 2),
        "victron_vebus": (1, 1),
        "victron_solarcharger": (1, 1),
    }
    assert Hole(RegisterType.HOLDING, 827, 839) in SYSTEM.holes
    for reg_map in (SYSTEM, BATTERY, VEBUS, SOLARCHARGER):
        assert all(r.register_type is RegisterType.HOLDING for r in reg_map.plan)
        assert all(r.count <= 125 for r in reg_map.plan)


def test_catalogue_unit_ids_per_service() -> None:
    units = {
        name: get_profile(name).default_unit
        for name in ("victron_system", "victron_vebus", "victron_battery", "victron_solarcharger")
    }
    # Sheet "Unit ID mapping": 100 system, 227 Cerbo VE.Bus, 225 CAN-bus BMS,
    # 226 Cerbo VE.Direct port 1.
    assert units == {
        "victron_system": 100,
        "victron_vebus": 227,
        "victron_battery": 225,
        "victron_solarcharger": 226,
    }
    assert 246 in get_profile("victron_vebus").units  # CCGX VE.Bus port
    for name in units:
        assert get_profile(name).transports == frozenset({BusType.TCP})
