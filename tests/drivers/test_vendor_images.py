"""Register images typed by hand from the vendors' tables, decoded by our profiles.

The hex words below are written from the documents (addresses, units, word
orders), not produced by our encoder: a mistake shared by the encoder and the
decoder (a wrong address, word order or scale) cannot pass here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from drivers.errors import DiscoveryError, ExceptionCode, ExceptionResponse, ProfileError
from drivers.planner import Hole, ReadRequest
from drivers.profile import RegisterImage, decode_map
from drivers.profiles import sunspec
from drivers.profiles.eastron import SDM120, SDM630
from drivers.profiles.epever import TRACER
from drivers.profiles.seplos import SEPLOS_V3
from drivers.registers import RegisterType

H, IR = RegisterType.HOLDING, RegisterType.INPUT


def _image(table: RegisterType, start: int, words: Sequence[int]) -> RegisterImage:
    return {table: {start + i: w for i, w in enumerate(words)}}


def _sdm630_image() -> RegisterImage:
    # SDM630 input registers 30001..30076 (PDU 0x0000..0x004B), float32 high word first.
    words = [0x0000] * 76
    typed = {
        0x00: (0x4366, 0x8000),  # 30001 phase 1 volts: 230.5
        0x02: (0x4367, 0x4000),  # 30003 phase 2 volts: 231.25
        0x04: (0x4365, 0xC000),  # 30005 phase 3 volts: 229.75
        0x06: (0x4148, 0x0000),  # 30007 phase 1 current: 12.5
        0x0C: (0x4481, 0x6000),  # 30013 phase 1 power: 1035.0
        0x0E: (0xC454, 0x8000),  # 30015 phase 2 power: -850.0
        0x10: (0xC454, 0x8000),  # 30017 phase 3 power: -850.0
        0x2A: (0x4367, 0x4000),  # 30043 average L-N volts: 231.25
        0x30: (0x4148, 0x0000),  # 30049 sum of line currents: 12.5
        0x34: (0xC454, 0x8000),  # 30053 total system power: -850.0 (exporting)
        0x3E: (0x3F7A, 0xE148),  # 30063 total power factor: 0.98
        0x46: (0x4248, 0x147B),  # 30071 frequency: 50.02
        0x48: (0x44BE, 0x6CCD),  # 30073 import kWh: 1523.4
        0x4A: (0x450A, 0x2400),  # 30075 export kWh: 2210.25
    }
    for address, (high, low) in typed.items():
        words[address], words[address + 1] = high, low
    return _image(IR, 0, words)


def test_sdm630_documented_values() -> None:
    sections = decode_map(SDM630, _sdm630_image())
    grid = sections["grid"]
    assert grid["phase_voltage_v"] == [230.5, 231.25, 229.75]
    assert grid["phase_power_w"] == [1035.0, -850.0, -850.0]
    assert grid["voltage_v"] == 231.25
    assert grid["current_a"] == 12.5
    assert grid["power_w"] == -850.0
    assert grid["power_factor"] == pytest.approx(0.98, abs=1e-7)
    assert grid["frequency_hz"] == pytest.approx(50.02, abs=1e-5)
    assert grid["import_energy_wh"] == pytest.approx(1_523_400.0, abs=0.1)
    assert grid["export_energy_wh"] == 2_210_250.0
    assert sections["extra"]["grid_phase_current_l1_a"] == 12.5


def test_sdm120_reads_the_same_addresses_single_phase() -> None:
    sections = decode_map(SDM120, _sdm630_image())
    assert sections["grid"]["voltage_v"] == 230.5  # 30001
    assert sections["grid"]["current_a"] == 12.5  # 30007
    assert sections["grid"]["power_w"] == 1035.0  # 30013
    assert "phase_voltage_v" not in sections["grid"]


def test_epever_tracer_documented_values() -> None:
    # Tracer protocol V2.5: /100, 32-bit values L at the lower address, then H.
    image: RegisterImage = {IR: {a: 0 for a in range(0x3100, 0x3314)}}
    image[IR].update(
        {
            0x3100: 0x0E4C,  # PV voltage 36.60 V
            0x3101: 0x0B54,  # PV current 29.00 A
            0x3102: 0x86A0,  # PV power L \ 0x000186A0 = 100000 -> 1000.00 W
            0x3103: 0x0001,  # PV power H /
            0x3104: 0x0A96,  # battery voltage 27.10 V
            0x3105: 0x0DAC,  # charging current 35.00 A
            0x3106: 0x7ED0,  # charging power L \ 0x00017ED0 = 98000 -> 980.00 W
            0x3107: 0x0001,  # charging power H /
            0x310C: 0x0A96,  # load voltage 27.10 V
            0x310D: 0x0064,  # load current 1.00 A
            0x310E: 0x0A96,  # load power L \ 0x00000A96 = 2710 -> 27.10 W
            0x310F: 0x0000,  # load power H /
            0x3110: 0xFF38,  # battery temperature -2.00 degC (signed)
            0x3111: 0x0ABE,  # equipment temperature 27.50 degC
            0x311A: 0x004B,  # SOC 75 %
            0x3201: 0x0009,  # charging status: D3-D2 = 10 (boost), D0 running
            0x330C: 0x04D2,  # generated today L: 1234 -> 12.34 kWh
            0x330D: 0x0000,
            0x3312: 0xE240,  # total generated L \ 0x0001E240 = 123456 -> 1234.56 kWh
            0x3313: 0x0001,  # total generated H /
        }
    )
    sections = decode_map(TRACER, image)
    assert sections["solar"] == {
        "pv_voltage_v": 36.6,
        "pv_current_a": 29.0,
        "pv_power_w": 1000.0,
        "energy_today_wh": 12_340.0,
        "energy_total_wh": 1_234_560.0,
    }
    extra = sections["extra"]
    assert extra["charger_battery_voltage_v"] == 27.1
    assert extra["charger_battery_current_a"] == 35.0
    assert extra["charger_output_power_w"] == 980.0
    assert extra["charger_load_voltage_v"] == 27.1
    assert extra["charger_load_current_a"] == 1.0
    assert extra["charger_load_power_w"] == 27.1
    assert extra["charger_battery_temperature_c"] == -2.0
    assert extra["charger_temperature_c"] == 27.5
    assert extra["charger_battery_soc_pct"] == 75.0
    assert extra["charger_charging_status"] == 2.0


def test_epever_tracer_word_order_example_of_the_document() -> None:
    # V2.5 note 5: "the value of the array rated power is 3000, data multiple is 100,
    # the data of L register (address 0x3002) is 0x93E0 and the data of H register
    # (address 0x3003) is 0x0004". PV power (0x3102 L, 0x3103 H) is the same kind
    # of value; the document's words there must read 3000 W.
    image: RegisterImage = {IR: {a: 0 for a in range(0x3100, 0x3314)}}
    image[IR][0x3102], image[IR][0x3103] = 0x93E0, 0x0004
    assert decode_map(TRACER, image)["solar"]["pv_power_w"] == 3000.0


def test_epever_tracer_reads_stay_inside_the_vendor_blocks() -> None:
    # Never into 0x3112-0x3119 (a Tracer 3210A answers exception 02 to 0x3100 x 19
    # and more) nor 0x311C (0x311A-0x311D as a block fails); 0x3100 x 18 is what the
    # Victron driver reads, and 0x330E-0x3311 are documented counters.
    assert Hole(IR, 0x3112, 0x3119) in TRACER.holes
    assert Hole(IR, 0x311C, 0x311C) in TRACER.holes
    assert TRACER.plan == (
        ReadRequest(IR, 0x3100, 18),
        ReadRequest(IR, 0x311A, 1),
        ReadRequest(IR, 0x3201, 1),
        ReadRequest(IR, 0x330C, 8),
    )
    # The holes, not max_gap, keep the plan out: bridging any gap costs no request less.
    assert TRACER.minimal_plan == TRACER.plan
    wide = dataclasses.replace(TRACER, max_gap=125)
    assert wide.plan == TRACER.plan


def test_a_point_in_an_unreadable_range_is_a_map_error() -> None:
    with pytest.raises(ProfileError, match="Battery SOC: lies in the unreadable range"):
        dataclasses.replace(TRACER, holes=(*TRACER.holes, Hole(IR, 0x311A, 0x311A)))


def test_meters_and_the_bms_read_across_their_skipped_numbers() -> None:
    # SDM630: the skipped register numbers are read straight across by the widely
    # used drivers (drivers.profiles.eastron); Seplos: the vendor's own example reads
    # include the reserved registers. No holes, one plan as small as the floor.
    for reg_map in (SDM630, SDM120, SEPLOS_V3):
        assert reg_map.holes == ()
        assert reg_map.plan == reg_map.minimal_plan, reg_map.name


def test_seplos_v3_documented_values() -> None:
    pia = [
        0x14B4,  # 0x1000 pack voltage 5300 x 10 mV = 53.00 V
        0xFC18,  # 0x1001 current -1000 x 10 mA = -10.00 A (BMS: < 0 discharging)
        0x6D60,  # 0x1002 remaining 28000 x 10 mAh = 280.00 Ah
        0x6D60,  # 0x1003 total capacity 280.00 Ah
        0x0064,  # 0x1004 total discharge 100 x 10 Ah = 1000 Ah
        0x02FD,  # 0x1005 SOC 765 x 0.1 % = 76.5 %
        0x03D4,  # 0x1006 SOH 980 x 0.1 % = 98.0 %
        0x0138,  # 0x1007 cycles 312
        0x0CB4,  # 0x1008 average cell 3252 mV
        0x0BA5,  # 0x1009 average cell temperature 2981 x 0.1 K -> 25.0 degC
        0x0CBE,  # 0x100A max cell 3262 mV
        0x0CA9,  # 0x100B min cell 3241 mV
        0x0BAF,  # 0x100C max cell temperature 2991 -> 26.0 degC
        0x0B9B,  # 0x100D min cell temperature 2971 -> 24.0 degC
        0x0000,  # 0x100E reserved
        0x0096,  # 0x100F max discharge current 150 A
        0x008C,  # 0x1010 max charge current 140 A
    ]
    pib = [0x0CB4] * 16 + [0x0BA5, 0x0BAF, 0x0B9B, 0x0BA5] + [0] * 4 + [0x0B91, 0x0BCD]
    image: RegisterImage = {IR: {}}
    image[IR].update(_image(IR, 0x1000, pia)[IR])
    image[IR].update(_image(IR, 0x1100, pib)[IR])
    sections = decode_map(SEPLOS_V3, image)
    battery = sections["battery"]
    assert battery["voltage_v"] == 53.0
    assert battery["current_a"] == 10.0  # protocol: discharge positive
    assert battery["power_w"] == 530.0
    assert battery["state"] == "discharging"
    assert battery["soc_pct"] == 76.5
    assert battery["soh_pct"] == 98.0
    assert battery["temperature_c"] == 25.0
    assert battery["cell_voltage_max_v"] == 3.262
    assert battery["cell_voltage_min_v"] == 3.241
    extra = sections["extra"]
    assert extra["bms_cycle_count"] == 312.0
    assert extra["bms_remaining_capacity_ah"] == 280.0
    assert extra["bms_cell_temperature_max_c"] == 26.0
    assert extra["bms_cell_voltage_16_v"] == 3.252
    assert extra["bms_cell_temperature_4_c"] == 25.0
    assert extra["bms_ambient_temperature_c"] == 23.0  # 0x1118: 0x0B91 = 2961
    assert extra["bms_power_temperature_c"] == 29.0  # 0x1119: 0x0BCD = 3021


def test_seplos_v3_worked_example_of_the_document() -> None:
    # V0.3 section 5, "Get PIA" (00 04 10 00 00 12) and "Get PIB" (00 04 11 00 00 1A):
    # the register words of the vendor's example answers, reserved ones included.
    pia = [0x14A1, 0x0000, 0x4E20, 0x4E20, 0x0000, 0x03E8, 0x03E8, 0x0000, 0x0CE4]
    pia += [0x0B80, 0x0CE6, 0x0CE4, 0x0B82, 0x0B7F, 0x0000, 0x00B4, 0x00B4, 0x03E8]
    pib = [0x0CE6, 0x0CE4, 0x0CE5, 0x0CE4, 0x0CE4, 0x0CE5, 0x0CE5, 0x0CE4]
    pib += [0x0CE4, 0x0CE4, 0x0CE5, 0x0CE5, 0x0CE4, 0x0CE5, 0x0CE4, 0x0CE4]
    pib += [0x0B81, 0x0B82, 0x0B7F, 0x0B7F, 0x0AAB, 0x0AAB, 0x0AAB, 0x0AAB, 0x0B91, 0x0B83]
    image: RegisterImage = {IR: {}}
    image[IR].update(_image(IR, 0x1000, pia)[IR])
    image[IR].update(_image(IR, 0x1100, pib)[IR])
    sections = decode_map(SEPLOS_V3, image)
    battery = sections["battery"]
    assert battery["voltage_v"] == 52.81
    assert battery["current_a"] == 0.0
    assert battery["state"] == "idle"
    assert battery["soc_pct"] == 100.0
    assert battery["soh_pct"] == 100.0
    assert battery["temperature_c"] == 21.3  # "2944 - 2731 = 21.3"
    assert battery["cell_voltage_max_v"] == 3.302
    assert battery["cell_voltage_min_v"] == 3.3
    extra = sections["extra"]
    assert extra["bms_full_capacity_ah"] == 200.0
    assert extra["bms_cycle_count"] == 0.0
    assert extra["bms_cell_temperature_max_c"] == 21.5
    assert extra["bms_cell_temperature_min_c"] == 21.2
    assert extra["bms_max_discharge_current_a"] == 180.0
    assert extra["bms_cell_voltage_01_v"] == 3.302
    assert extra["bms_cell_temperature_1_c"] == 21.4
    assert extra["bms_ambient_temperature_c"] == 23.0
    assert extra["bms_power_temperature_c"] == 21.6
    # V0.3 PIA table: "0x1001 Current 05 FA = 15.30 A"; positive is charge for the
    # BMS (its discharge limits, SPA 0x131B-0x1321, are negative), so -15.3 here.
    image[IR][0x1001] = 0x05FA
    assert decode_map(SEPLOS_V3, image)["battery"]["current_a"] == -15.3
    assert decode_map(SEPLOS_V3, image)["battery"]["state"] == "charging"
    # Both blocks in one request each, as the document's own example reads them.
    assert SEPLOS_V3.plan == (ReadRequest(IR, 0x1000, 0x11), ReadRequest(IR, 0x1100, 0x1A))


# SunSpec: marker, common model 1 (L = 66), inverter 103 (L = 50), end marker.
_COMMON = [0x0001, 0x0042, 0x4163, 0x6D65] + [0x0000] * 64  # Mn "Acme", rest unset
_MODEL_103 = [
    0x0067,
    0x0032,  # ID 103, L 50
    0x0546,
    0xFFFF,
    0xFFFF,
    0xFFFF,
    0xFFFE,  # A 1350, AphA..C n/i, A_SF -2 -> 13.50 A
    0xFFFF,
    0xFFFF,
    0xFFFF,  # PPVphAB..CA n/i
    0x0908,
    0xFFFF,
    0xFFFF,
    0xFFFF,  # PhVphA 2312, B, C n/i, V_SF -1 -> 231.2 V
    0x0C30,
    0x0000,  # W 3120, W_SF 0
    0x1389,
    0xFFFE,  # Hz 5001, Hz_SF -2 -> 50.01
    0x8000,
    0x8000,
    0x8000,
    0x8000,
    0x8000,
    0x8000,  # VA, VAr, PF and their sfs n/i
    0x007B,
    0xF408,
    0x0000,  # WH 8123400, WH_SF 0
    0xFFFF,
    0x8000,
    0xFFFF,
    0x8000,  # DCA, DCV n/i (value and sf)
    0x0C9E,
    0x0000,  # DCW 3230, DCW_SF 0
    0x019F,
    0x8000,
    0x8000,
    0x8000,
    0xFFFF,  # TmpCab 415, others n/i, Tmp_SF -1 -> 41.5
    0x0004,
    0xFFFF,  # St 4 = MPPT, StVnd n/i
    0x0000,
    0x0000,
    0x0000,
    0x0000,  # Evt1, Evt2
    *([0xFFFF] * 8),  # EvtVnd1..4 n/i
]
_SUNSPEC = [0x5375, 0x6E53, *_COMMON, *_MODEL_103, 0xFFFF, 0x0000]


def _reader(image: dict[int, int]) -> sunspec.ReadHolding:
    async def read(address: int, count: int) -> Sequence[int]:
        if address not in image:
            raise ExceptionResponse(ExceptionCode.ILLEGAL_DATA_ADDRESS, unit=1)
        return [image[a] for a in range(address, address + count)]

    return read


@pytest.mark.parametrize("base", [40000, 0, 50000])
async def test_sunspec_discovery_and_model_103(base: int) -> None:
    image = {base + i: w for i, w in enumerate(_SUNSPEC)}
    chain = await sunspec.discover(_reader(image), unit=1)
    assert chain.base == base
    assert [(m.model_id, m.address - base, m.length) for m in chain.models] == [
        (1, 2, 66),
        (103, 70, 50),
    ]
    reg_map = sunspec.register_map(chain)
    assert [(r.address - base, r.count) for r in reg_map.plan] == [
        (72, 37)
    ]  # A (offset 2) .. St (offset 38)
    sections = decode_map(reg_map, {H: image})
    assert sections == {
        "inverter": {
            "ac_current_a": 13.5,
            "ac_voltage_v": 231.2,
            "ac_power_w": 3120.0,
            "ac_frequency_hz": 50.01,
            "energy_total_wh": 8_123_400.0,
            "dc_power_w": 3230.0,
            "temperature_c": 41.5,
            "state": "mppt",
        }
    }


async def test_sunspec_without_marker_is_a_discovery_error() -> None:
    image = {40000 + i: w for i, w in enumerate([0x1234, 0x5678, *_MODEL_103])}
    with pytest.raises(DiscoveryError, match="no 'SunS' marker"):
        await sunspec.discover(_reader(image), unit=1)


async def test_sunspec_chain_without_end_is_a_discovery_error() -> None:
    # A chain whose lengths point back into zeros never reaches 0xFFFF.
    image = {a: 0 for a in range(40000, 40400)}
    image[40000], image[40001] = 0x5375, 0x6E53
    with pytest.raises(DiscoveryError, match="does not end"):
        await sunspec.discover(_reader(image), unit=1)


def test_sunspec_unknown_model_length_is_skipped() -> None:
    chain = sunspec.Chain(40000, (sunspec.ModelHeader(103, 40002, 48),))
    reg_map = sunspec.register_map(chain)
    assert all(p.target is None for p in reg_map.points)


# Storage 124 (L = 24) and battery 802 (L = 62) after common model 1, typed from
# json/model_124.json and json/model_802.json (offsets count from the ID register).
_MODEL_124 = [
    0x007C,
    0x0018,  # ID 124, L 24
    0x1388,  # 2 WChaMax 5000, WChaMax_SF 0 -> 5000 W
    0xFFFF,
    0xFFFF,  # 3 WChaGra, 4 WDisChaGra n/i
    0x0000,  # 5 StorCtl_Mod (bitfield16)
    0xFFFF,
    0xFFFF,  # 6 VAChaMax, 7 MinRsvPct n/i
    0x02FD,  # 8 ChaState 765, ChaState_SF -1 -> 76.5 %
    0xFFFF,  # 9 StorAval n/i
    0x0212,  # 10 InBatV 530, InBatV_SF -1 -> 53.0 V
    0x0003,  # 11 ChaSt 3 = DISCHARGING
    0x8000,
    0x8000,  # 12 OutWRte, 13 InWRte n/i (int16)
    0xFFFF,
    0xFFFF,
    0xFFFF,
    0xFFFF,  # 14-16 InOutWRte_WinTms/RvrtTms/RmpTms, 17 ChaGriSet n/i
    0x0000,  # 18 WChaMax_SF 0
    0x8000,
    0x8000,
    0x8000,  # 19 WChaDisChaGra_SF, 20 VAChaMax_SF, 21 MinRsvPct_SF n/i
    0xFFFF,  # 22 ChaState_SF -1
    0x8000,  # 23 StorAval_SF n/i
    0xFFFF,  # 24 InBatV_SF -1
    0x8000,  # 25 InOutWRte_SF n/i
]
_MODEL_802 = [
    0x0322,
    0x003E,  # ID 802, L 62
    0x0118,  # 2 AHRtg 280 Ah
    0x3800,  # 3 WHRtg 14336 Wh
    *([0xFFFF] * 7),  # 4-10 WChaRteMax .. SoCRsvMin n/i
    0x02FD,  # 11 SoC 765, SoC_SF -1 -> 76.5 %
    0xFFFF,  # 12 DoD n/i
    0x03D4,  # 13 SoH 980, SoH_SF -1 -> 98.0 %
    0x0000,
    0x0138,  # 14-15 NCyc (uint32, high word first) 312
    0x0003,  # 16 ChaSt 3 = DISCHARGING
    *([0xFFFF] * 4),  # 17 LocRemCtl, 18 Hb, 19 CtrlHb, 20 AlmRst n/i
    0x0004,  # 21 Typ 4 = LITHIUM_ION
    0x0003,  # 22 State 3 = CONNECTED
    0xFFFF,  # 23 StateVnd n/i
    0xFFFF,
    0xFFFF,  # 24-25 WarrDt n/i
    0x0000,
    0x0000,
    0x0000,
    0x0000,  # 26-29 Evt1, Evt2: no events
    *([0xFFFF] * 4),  # 30-33 EvtVnd1, EvtVnd2 n/i
    0x14B4,  # 34 V 5300, V_SF -2 -> 53.00 V
    0xFFFF,
    0xFFFF,  # 35 VMax, 36 VMin n/i
    0x0CBE,  # 37 CellVMax 3262, CellV_SF -3 -> 3.262 V
    0xFFFF,
    0xFFFF,  # 38 CellVMaxStr, 39 CellVMaxMod n/i
    0x0CA9,  # 40 CellVMin 3241 -> 3.241 V
    0xFFFF,
    0xFFFF,
    0xFFFF,  # 41 CellVMinStr, 42 CellVMinMod, 43 CellVAvg n/i
    0x03E8,  # 44 A 1000, A_SF -2 -> 10.00 A
    0xFFFF,
    0xFFFF,  # 45 AChaMax, 46 ADisChaMax n/i
    0x0212,  # 47 W 530, W_SF 0 -> 530 W
    0xFFFF,  # 48 ReqInvState n/i
    0x8000,  # 49 ReqW n/i (int16)
    0xFFFF,
    0xFFFF,  # 50 SetOp, 51 SetInvState n/i
    0x0000,
    0x0000,  # 52 AHRtg_SF 0, 53 WHRtg_SF 0
    0x8000,
    0x8000,  # 54 WChaDisChaMax_SF, 55 DisChaRte_SF n/i
    0xFFFF,  # 56 SoC_SF -1
    0x8000,  # 57 DoD_SF n/i
    0xFFFF,  # 58 SoH_SF -1
    0xFFFE,  # 59 V_SF -2
    0xFFFD,  # 60 CellV_SF -3
    0xFFFE,  # 61 A_SF -2
    0x8000,  # 62 AMax_SF n/i
    0x0000,  # 63 W_SF 0
]


async def test_sunspec_storage_124_and_battery_802() -> None:
    words = [0x5375, 0x6E53, *_COMMON, *_MODEL_124, *_MODEL_802, 0xFFFF, 0x0000]
    image = {40000 + i: w for i, w in enumerate(words)}
    chain = await sunspec.discover(_reader(image), unit=1)
    assert [(m.model_id, m.address - 40000, m.length) for m in chain.models] == [
        (1, 2, 66),
        (124, 70, 24),
        (802, 96, 62),
    ]
    sections = decode_map(sunspec.register_map(chain), {H: image})
    # 124 comes first in the chain, so SoC, voltage and state come from 124.
    assert sections == {
        "battery": {
            "soc_pct": 76.5,
            "voltage_v": 53.0,
            "state": "discharging",
            "soh_pct": 98.0,
            "cell_voltage_max_v": 3.262,
            "cell_voltage_min_v": 3.241,
            "current_a": 10.0,
            "power_w": 530.0,
        },
        "extra": {
            "storage_max_charge_w": 5000.0,
            "battery_rated_ah": 280.0,
            "battery_rated_wh": 14336.0,
            "bms_cycle_count": 312.0,
        },
    }
