"""SunSpec devices: discovery, model definitions and the register map they yield.

Sources: SunSpec Information Model Specification 1.0 (discovery, 4.1 unimplemented
values, 4.2 scale factors) and the SunSpec model definitions (github.com/sunspec/
models, json/model_<id>.json). Offsets below are those of the JSON files: they
count from the model's ID register, so offset 0 is ID and 1 is L.

Discovery: the holding registers at 40000, 0 or 50000 hold "SunS" (0x5375
0x6E53); the first model's header (ID, L) follows at base + 2, the next model at
+ 2 + L, until ID 0xFFFF. A read at a base that the device refuses (illegal
address) just moves on to the next base.

A discovered chain becomes an ordinary :class:`RegisterMap` (the same one the
simulator encodes with), so planning and decoding are shared with every other
profile. Model 103's values map to the ``inverter`` section, 201-204 and 211-214 to ``grid``,
124 and 802 to ``battery`` and 160 to ``solar``; only the first model that feeds a
field keeps the target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from drivers.errors import DiscoveryError, ExceptionResponse
from drivers.identity import IdentityField, identity_map, text_point
from drivers.profile import Point, RegisterMap, Sections, Target, target
from drivers.profiles.device_profile import DeviceProfile
from drivers.registers import DataType, RegisterType
from telemetry.roles import Role

SOURCE: Final = "SunSpec Information Model Specification 1.0; sunspec/models json"
BASE_ADDRESSES: Final = (40000, 0, 50000)
MARKER: Final = (0x5375, 0x6E53)  # "SunS"
END_ID: Final = 0xFFFF
MAX_MODELS: Final = 64  # a chain longer than this is a broken image, not a device

U16, S16, SF, E16 = DataType.UINT16, DataType.INT16, DataType.SUNSSF, DataType.ENUM16
ACC, U32, F32, STR, B32 = (
    DataType.ACC32,
    DataType.UINT32,
    DataType.FLOAT32,
    DataType.STRING,
    DataType.BITFIELD32,
)

# Model 103 "St" (operating state) -> protocol inverter.state.
INVERTER_STATES: Final = (
    (1, "off"),
    (2, "sleeping"),
    (3, "starting"),
    (4, "mppt"),
    (5, "throttled"),
    (6, "shutting_down"),
    (7, "fault"),
    (8, "standby"),
)
# Models 124 and 802 "ChaSt" (charge status) -> protocol battery.state.
CHARGE_STATES: Final = (
    (1, "off"),
    (2, "empty"),
    (3, "discharging"),
    (4, "charging"),
    (5, "full"),
    (6, "idle"),  # SunSpec HOLDING: "idle", as the BMS profiles say
    (7, "testing"),
)


@dataclass(frozen=True)
class Row:
    """A point of a model definition: offset from the ID register, type, sf, target."""

    name: str
    offset: int
    data_type: DataType
    sf: str | None = None
    path: str | None = None
    scale: float = 1.0
    length: int = 0
    states: tuple[tuple[int, str], ...] = ()
    constant: int | str | None = None  # written by the encoder (sunssf, strings)


@dataclass(frozen=True)
class ModelDef:
    model_id: int
    length: int  # L: registers after the header
    rows: tuple[Row, ...]


def _header(model_id: int, length: int) -> tuple[Row, ...]:
    return (Row("ID", 0, U16, constant=model_id), Row("L", 1, U16, constant=length))


# json/model_1.json: Common.
COMMON: Final = ModelDef(
    1,
    66,
    (
        *_header(1, 66),
        Row("Mn", 2, STR, length=16, constant="EMS Switchboard"),
        Row("Md", 18, STR, length=16, constant="SimInverter"),
        Row("Opt", 34, STR, length=8, constant=""),
        Row("Vr", 42, STR, length=8, constant="1.0"),
        Row("SN", 50, STR, length=16, constant="SIM-0001"),
        Row("DA", 66, U16, constant=1),
        Row("Pad", 67, U16, constant=0x8000),
    ),
)


def common_model(
    length: int, *, maker: str, model: str, options: str = "", version: str = "", serial: str = ""
) -> ModelDef:
    """Model 1 with a vendor's strings; ``length`` 65 for devices that leave out the pad
    (SolarEdge, Fronius: "65 = Length of block"), 66 as model_1.json has it."""
    constants: dict[str, int | str] = {"L": length, "Mn": maker, "Md": model, "Opt": options}
    constants |= {"Vr": version, "SN": serial}
    rows = tuple(
        dataclasses.replace(row, constant=constants.get(row.name, row.constant))
        for row in COMMON.rows
        if row.offset <= length + 1
    )
    return ModelDef(1, length, rows)


def _inverter_int(model_id: int) -> ModelDef:
    """json/model_101.json, 102, 103: single, split and three phase, integer + sf."""
    return ModelDef(
        model_id,
        50,
        (
            *_header(model_id, 50),
            Row("A", 2, U16, "A_SF", "inverter.ac_current_a"),
            Row("AphA", 3, U16, "A_SF"),
            Row("AphB", 4, U16, "A_SF"),
            Row("AphC", 5, U16, "A_SF"),
            Row("A_SF", 6, SF, constant=-2),
            Row("PPVphAB", 7, U16, "V_SF"),
            Row("PPVphBC", 8, U16, "V_SF"),
            Row("PPVphCA", 9, U16, "V_SF"),
            Row("PhVphA", 10, U16, "V_SF", "inverter.ac_voltage_v"),
            Row("PhVphB", 11, U16, "V_SF"),
            Row("PhVphC", 12, U16, "V_SF"),
            Row("V_SF", 13, SF, constant=-1),
            Row("W", 14, S16, "W_SF", "inverter.ac_power_w"),
            Row("W_SF", 15, SF, constant=0),
            Row("Hz", 16, U16, "Hz_SF", "inverter.ac_frequency_hz"),
            Row("Hz_SF", 17, SF, constant=-2),
            Row("VA", 18, S16, "VA_SF"),
            Row("VA_SF", 19, SF, constant=0),
            Row("VAr", 20, S16, "VAr_SF"),
            Row("VAr_SF", 21, SF, constant=0),
            Row("PF", 22, S16, "PF_SF"),
            Row("PF_SF", 23, SF, constant=0),
            Row("WH", 24, ACC, "WH_SF", "inverter.energy_total_wh"),
            Row("WH_SF", 26, SF, constant=0),
            Row("DCA", 27, U16, "DCA_SF", "extra.inverter_dc_current_a"),
            Row("DCA_SF", 28, SF, constant=-2),
            Row("DCV", 29, U16, "DCV_SF", "extra.inverter_dc_voltage_v"),
            Row("DCV_SF", 30, SF, constant=-1),
            Row("DCW", 31, S16, "DCW_SF", "inverter.dc_power_w"),
            Row("DCW_SF", 32, SF, constant=0),
            Row("TmpCab", 33, S16, "Tmp_SF", "inverter.temperature_c"),
            Row("TmpSnk", 34, S16, "Tmp_SF"),
            Row("TmpTrns", 35, S16, "Tmp_SF"),
            Row("TmpOt", 36, S16, "Tmp_SF"),
            Row("Tmp_SF", 37, SF, constant=-1),
            Row("St", 38, E16, path="inverter.state", states=INVERTER_STATES),
            Row("StVnd", 39, E16),
            Row("Evt1", 40, B32, constant=0),
            Row("Evt2", 42, B32, constant=0),
            Row("EvtVnd1", 44, B32),
            Row("EvtVnd2", 46, B32),
            Row("EvtVnd3", 48, B32),
            Row("EvtVnd4", 50, B32),
        ),
    )


def _inverter_float(model_id: int) -> ModelDef:
    """json/model_111.json, 112, 113: the same inverter with float32 values."""
    return ModelDef(
        model_id,
        60,
        (
            *_header(model_id, 60),
            Row("A", 2, F32, path="inverter.ac_current_a"),
            Row("AphA", 4, F32),
            Row("AphB", 6, F32),
            Row("AphC", 8, F32),
            Row("PPVphAB", 10, F32),
            Row("PPVphBC", 12, F32),
            Row("PPVphCA", 14, F32),
            Row("PhVphA", 16, F32, path="inverter.ac_voltage_v"),
            Row("PhVphB", 18, F32),
            Row("PhVphC", 20, F32),
            Row("W", 22, F32, path="inverter.ac_power_w"),
            Row("Hz", 24, F32, path="inverter.ac_frequency_hz"),
            Row("VA", 26, F32),
            Row("VAr", 28, F32),
            Row("PF", 30, F32),
            Row("WH", 32, F32, path="inverter.energy_total_wh"),
            Row("DCA", 34, F32, path="extra.inverter_dc_current_a"),
            Row("DCV", 36, F32, path="extra.inverter_dc_voltage_v"),
            Row("DCW", 38, F32, path="inverter.dc_power_w"),
            Row("TmpCab", 40, F32, path="inverter.temperature_c"),
            Row("TmpSnk", 42, F32),
            Row("TmpTrns", 44, F32),
            Row("TmpOt", 46, F32),
            Row("St", 48, E16, path="inverter.state", states=INVERTER_STATES),
            Row("StVnd", 49, E16),
            Row("Evt1", 50, B32, constant=0),
            Row("Evt2", 52, B32, constant=0),
            Row("EvtVnd1", 54, B32),
            Row("EvtVnd2", 56, B32),
            Row("EvtVnd3", 58, B32),
            Row("EvtVnd4", 60, B32),
        ),
    )


# json/model_124.json: Storage (basic storage controls).
STORAGE: Final = ModelDef(
    124,
    24,
    (
        *_header(124, 24),
        Row("WChaMax", 2, U16, "WChaMax_SF", "extra.storage_max_charge_w"),
        Row("WChaGra", 3, U16, "WChaDisChaGra_SF"),
        Row("WDisChaGra", 4, U16, "WChaDisChaGra_SF"),
        Row("StorCtl_Mod", 5, DataType.BITFIELD16, constant=0),
        Row("VAChaMax", 6, U16, "VAChaMax_SF"),
        Row("MinRsvPct", 7, U16, "MinRsvPct_SF"),
        Row("ChaState", 8, U16, "ChaState_SF", "battery.soc_pct"),
        Row("StorAval", 9, U16, "StorAval_SF"),
        Row("InBatV", 10, U16, "InBatV_SF", "battery.voltage_v"),
        Row("ChaSt", 11, E16, path="battery.state", states=CHARGE_STATES),
        Row("OutWRte", 12, S16, "InOutWRte_SF"),
        Row("InWRte", 13, S16, "InOutWRte_SF"),
        Row("InOutWRte_WinTms", 14, U16),
        Row("InOutWRte_RvrtTms", 15, U16),
        Row("InOutWRte_RmpTms", 16, U16),
        Row("ChaGriSet", 17, E16),
        Row("WChaMax_SF", 18, SF, constant=0),
        Row("WChaDisChaGra_SF", 19, SF, constant=0),
        Row("VAChaMax_SF", 20, SF, constant=0),
        Row("MinRsvPct_SF", 21, SF, constant=0),
        Row("ChaState_SF", 22, SF, constant=-1),
        Row("StorAval_SF", 23, SF, constant=-1),
        Row("InBatV_SF", 24, SF, constant=-1),
        Row("InOutWRte_SF", 25, SF, constant=0),
    ),
)


def _meter(model_id: int) -> ModelDef:
    """json/model_201.json .. 204: AC meters, integer + sf; W positive = import.

    The JSON states no sign for W ("Total Real Power"); import-positive is the
    metering convention of the IEC quadrants its varh points are named after
    (Q1/Q2 "Imported", Q3/Q4 "Exported"). Some vendors invert it in the field.
    """
    rows = [
        *_header(model_id, 105),
        Row("A", 2, S16, "A_SF", "grid.current_a"),
        *(Row(f"Aph{p}", 3 + i, S16, "A_SF") for i, p in enumerate("ABC")),
        Row("A_SF", 6, SF, constant=-2),
        Row("PhV", 7, S16, "V_SF", "grid.voltage_v"),
        *(
            Row(f"PhVph{p}", 8 + i, S16, "V_SF", f"grid.phase_voltage_v[{i}]")
            for i, p in enumerate("ABC")
        ),
        Row("PPV", 11, S16, "V_SF"),
        # Line-to-line voltages: "PPVphAB".. in model_201.json, "PhVphAB".. in 202-204.
        *(
            Row(f"{'PPVph' if model_id == 201 else 'PhVph'}{p}", 12 + i, S16, "V_SF")
            for i, p in enumerate(("AB", "BC", "CA"))
        ),
        Row("V_SF", 15, SF, constant=-1),
        Row("Hz", 16, S16, "Hz_SF", "grid.frequency_hz"),
        Row("Hz_SF", 17, SF, constant=-2),
        Row("W", 18, S16, "W_SF", "grid.power_w"),
        *(
            Row(f"Wph{p}", 19 + i, S16, "W_SF", f"grid.phase_power_w[{i}]")
            for i, p in enumerate("ABC")
        ),
        Row("W_SF", 22, SF, constant=0),
        *(Row(f"VA{s}", 23 + i, S16, "VA_SF") for i, s in enumerate(("", "phA", "phB", "phC"))),
        Row("VA_SF", 27, SF, constant=0),
        *(Row(f"VAR{s}", 28 + i, S16, "VAR_SF") for i, s in enumerate(("", "phA", "phB", "phC"))),
        Row("VAR_SF", 32, SF, constant=0),
        # PF is in percent ("Pct"): -100..100.
        Row("PF", 33, S16, "PF_SF", "grid.power_factor", scale=0.01),
        *(Row(f"PFph{p}", 34 + i, S16, "PF_SF") for i, p in enumerate("ABC")),
        Row("PF_SF", 37, SF, constant=0),
        Row("TotWhExp", 38, ACC, "TotWh_SF", "grid.export_energy_wh"),
        *(Row(f"TotWhExpPh{p}", 40 + 2 * i, ACC, "TotWh_SF") for i, p in enumerate("ABC")),
        Row("TotWhImp", 46, ACC, "TotWh_SF", "grid.import_energy_wh"),
        *(Row(f"TotWhImpPh{p}", 48 + 2 * i, ACC, "TotWh_SF") for i, p in enumerate("ABC")),
        Row("TotWh_SF", 54, SF, constant=0),
    ]
    # 55..104: VAh and varh accumulators with their sfs; 105: Evt. Not mapped.
    vah = [f"TotVAh{d}{ph}" for d in ("Exp", "Imp") for ph in ("", "PhA", "PhB", "PhC")]
    for i, name in enumerate(vah):
        rows.append(Row(name, 55 + 2 * i, ACC, "TotVAh_SF"))
    rows.append(Row("TotVAh_SF", 71, SF, constant=0))
    varh = [
        f"TotVArh{d}{q}{ph}"
        for d, q in (("Imp", "Q1"), ("Imp", "Q2"), ("Exp", "Q3"), ("Exp", "Q4"))
        for ph in ("", "PhA", "PhB", "PhC")
    ]
    for i, name in enumerate(varh):
        rows.append(Row(name, 72 + 2 * i, ACC, "TotVArh_SF"))
    rows.append(Row("TotVArh_SF", 104, SF, constant=0))
    rows.append(Row("Evt", 105, B32, constant=0))
    return ModelDef(model_id, 105, tuple(rows))


def _meter_float(model_id: int) -> ModelDef:
    """json/model_211.json .. 214: the same AC meters with float32 values (L = 124)."""
    names: tuple[str, ...] = ("A", "AphA", "AphB", "AphC", "PhV", "PhVphA", "PhVphB", "PhVphC")
    names += ("PPV",)
    names += ("PPVphAB", "PPVphBC", "PPVphCA", "Hz", "W", "WphA", "WphB", "WphC")
    names += ("VA", "VAphA", "VAphB", "VAphC", "VAR", "VARphA", "VARphB", "VARphC")
    names += ("PF", "PFphA", "PFphB", "PFphC")
    paths = {
        "A": "grid.current_a",
        "PhV": "grid.voltage_v",
        **{f"PhVph{p}": f"grid.phase_voltage_v[{i}]" for i, p in enumerate("ABC")},
        "Hz": "grid.frequency_hz",
        "W": "grid.power_w",
        **{f"Wph{p}": f"grid.phase_power_w[{i}]" for i, p in enumerate("ABC")},
        "PF": "grid.power_factor",
        "TotWhExp": "grid.export_energy_wh",
        "TotWhImp": "grid.import_energy_wh",
    }
    counters = [f"TotWh{d}{ph}" for d in ("Exp", "Imp") for ph in ("", "PhA", "PhB", "PhC")]
    counters += [f"TotVAh{d}{ph}" for d in ("Exp", "Imp") for ph in ("", "PhA", "PhB", "PhC")]
    counters += [
        f"TotVArh{d}{q}{ph}"
        for d, q in (("Imp", "Q1"), ("Imp", "Q2"), ("Exp", "Q3"), ("Exp", "Q4"))
        for ph in ("", "PhA", "PhB", "PhC")
    ]
    rows = [*_header(model_id, 124)]
    for i, name in enumerate((*names, *counters)):
        # PF is in percent here too ("Pct"), like the integer meters.
        scale = 0.01 if name == "PF" else 1.0
        rows.append(Row(name, 2 + 2 * i, F32, path=paths.get(name), scale=scale))
    rows.append(Row("Evt", 124, B32, constant=0))
    return ModelDef(model_id, 124, tuple(rows))


# json/model_802.json: Battery base model. The JSON gives A and W no sign ("flowing
# to/from the battery bank"); we read them discharge-positive, the convention of
# SunSpec's DER models, which no model text here confirms for 802.
BATTERY: Final = ModelDef(
    802,
    62,
    (
        *_header(802, 62),
        Row("AHRtg", 2, U16, "AHRtg_SF", "extra.battery_rated_ah"),
        Row("WHRtg", 3, U16, "WHRtg_SF", "extra.battery_rated_wh"),
        Row("WChaRteMax", 4, U16, "WChaDisChaMax_SF"),
        Row("WDisChaRteMax", 5, U16, "WChaDisChaMax_SF"),
        Row("DisChaRte", 6, U16, "DisChaRte_SF"),
        *(Row(n, 7 + i, U16, "SoC_SF") for i, n in enumerate(("SoCMax", "SoCMin", "SocRsvMax"))),
        Row("SoCRsvMin", 10, U16, "SoC_SF"),
        Row("SoC", 11, U16, "SoC_SF", "battery.soc_pct"),
        Row("DoD", 12, U16, "DoD_SF"),
        Row("SoH", 13, U16, "SoH_SF", "battery.soh_pct"),
        Row("NCyc", 14, U32, path="extra.bms_cycle_count"),
        Row("ChaSt", 16, E16, path="battery.state", states=CHARGE_STATES),
        Row("LocRemCtl", 17, E16),
        # Hb, CtrlHb and AlmRst are uint16 in model_802.json (not enums).
        *(Row(n, 18 + i, U16) for i, n in enumerate(("Hb", "CtrlHb", "AlmRst"))),
        Row("Typ", 21, E16),
        Row("State", 22, E16),
        Row("StateVnd", 23, E16),
        Row("WarrDt", 24, U32),
        *(Row(n, 26 + 2 * i, B32) for i, n in enumerate(("Evt1", "Evt2", "EvtVnd1", "EvtVnd2"))),
        Row("V", 34, U16, "V_SF", "battery.voltage_v"),
        Row("VMax", 35, U16, "V_SF"),
        Row("VMin", 36, U16, "V_SF"),
        Row("CellVMax", 37, U16, "CellV_SF", "battery.cell_voltage_max_v"),
        Row("CellVMaxStr", 38, U16),
        Row("CellVMaxMod", 39, U16),
        Row("CellVMin", 40, U16, "CellV_SF", "battery.cell_voltage_min_v"),
        Row("CellVMinStr", 41, U16),
        Row("CellVMinMod", 42, U16),
        Row("CellVAvg", 43, U16, "CellV_SF"),
        Row("A", 44, S16, "A_SF", "battery.current_a"),
        Row("AChaMax", 45, U16, "AMax_SF"),
        Row("ADisChaMax", 46, U16, "AMax_SF"),
        Row("W", 47, S16, "W_SF", "battery.power_w"),
        Row("ReqInvState", 48, E16),
        Row("ReqW", 49, S16, "W_SF"),  # model_802.json: int16 W with W_SF
        Row("SetOp", 50, E16),
        Row("SetInvState", 51, E16),
        *(
            Row(n, 52 + i, SF, constant=c)
            for i, (n, c) in enumerate(
                (
                    ("AHRtg_SF", 0),
                    ("WHRtg_SF", 0),
                    ("WChaDisChaMax_SF", 0),
                    ("DisChaRte_SF", 0),
                    ("SoC_SF", -1),
                    ("DoD_SF", -1),
                    ("SoH_SF", -1),
                    ("V_SF", -2),
                    ("CellV_SF", -3),
                    ("A_SF", -2),
                    ("AMax_SF", 0),
                    ("W_SF", 0),
                )
            )
        ),
    ),
)

MPPT_FIXED: Final = 8  # json/model_160.json: registers before the repeating modules
MPPT_MODULE: Final = 20  # registers per module


def mppt(modules: int) -> ModelDef:
    """json/model_160.json: multiple MPPT inverter extension, ``modules`` repeats."""
    length = MPPT_FIXED + MPPT_MODULE * modules
    rows = [
        *_header(160, length),
        Row("DCA_SF", 2, SF, constant=-2),
        Row("DCV_SF", 3, SF, constant=-1),
        Row("DCW_SF", 4, SF, constant=0),
        Row("DCWH_SF", 5, SF, constant=0),
        Row("Evt", 6, B32, constant=0),
        Row("N", 8, U16, constant=modules),
        Row("TmsPer", 9, U16),
    ]
    for m in range(modules):
        base = 2 + MPPT_FIXED + MPPT_MODULE * m
        tag = f"extra.mppt{m + 1}"
        rows += [
            Row(f"module{m + 1}.ID", base, U16, constant=m + 1),
            Row(f"module{m + 1}.IDStr", base + 1, STR, length=8, constant=f"PV{m + 1}"),
            Row(f"module{m + 1}.DCA", base + 9, U16, "DCA_SF", f"{tag}_current_a"),
            Row(f"module{m + 1}.DCV", base + 10, U16, "DCV_SF", f"{tag}_voltage_v"),
            Row(f"module{m + 1}.DCW", base + 11, U16, "DCW_SF", f"{tag}_power_w"),
            Row(f"module{m + 1}.DCWH", base + 12, ACC, "DCWH_SF", f"{tag}_energy_wh"),
            Row(f"module{m + 1}.Tms", base + 14, U32),
            Row(f"module{m + 1}.Tmp", base + 16, S16),
            Row(f"module{m + 1}.DCSt", base + 17, E16),
            Row(f"module{m + 1}.DCEvt", base + 18, B32, constant=0),
        ]
    return ModelDef(160, length, tuple(rows))


MODELS: Final[dict[int, ModelDef]] = {
    1: COMMON,
    101: _inverter_int(101),
    102: _inverter_int(102),
    103: _inverter_int(103),
    111: _inverter_float(111),
    112: _inverter_float(112),
    113: _inverter_float(113),
    124: STORAGE,
    201: _meter(201),
    202: _meter(202),
    203: _meter(203),
    204: _meter(204),
    211: _meter_float(211),
    212: _meter_float(212),
    213: _meter_float(213),
    214: _meter_float(214),
    802: BATTERY,
}


@dataclass(frozen=True)
class ModelHeader:
    """A model found in the chain: its id, the address of its ID register, its L."""

    model_id: int
    address: int
    length: int


@dataclass(frozen=True)
class Chain:
    base: int
    models: tuple[ModelHeader, ...]

    @property
    def end(self) -> int:
        """Address of the end marker (ID 0xFFFF, L 0)."""
        if not self.models:
            return self.base + 2
        last = self.models[-1]
        return last.address + 2 + last.length


def layout(model_ids: Sequence[int], *, base: int = 40000, mppt_modules: int = 1) -> Chain:
    """The chain a device with these models presents (the simulator's side)."""
    address = base + 2
    headers = []
    for model_id in model_ids:
        length = mppt(mppt_modules).length if model_id == 160 else MODELS[model_id].length
        headers.append(ModelHeader(model_id, address, length))
        address += 2 + length
    return Chain(base, tuple(headers))


def _definition(header: ModelHeader) -> ModelDef | None:
    if header.model_id == 160:
        modules, rest = divmod(header.length - MPPT_FIXED, MPPT_MODULE)
        return mppt(modules) if modules >= 0 and rest == 0 else None
    definition = MODELS.get(header.model_id)
    # A length we do not know is a model version we cannot lay out safely.
    if definition is None or definition.length != header.length:
        return None
    return definition


def derive_solar(sections: Sections) -> None:
    """Solar totals from the MPPT modules of model 160 (``extra.mppt<N>_*``)."""
    extra = sections.get("extra", {})
    powers = [v for k, v in extra.items() if k.startswith("mppt") and k.endswith("_power_w")]
    if powers and all(isinstance(p, float) for p in powers):
        solar = sections.setdefault("solar", {})
        solar["pv_power_w"] = round(sum(p for p in powers if isinstance(p, float)), 3)
        if len(powers) == 1:
            for suffix, name in (("_voltage_v", "pv_voltage_v"), ("_current_a", "pv_current_a")):
                value = extra.get(f"mppt1{suffix}")
                if value is not None:
                    solar[name] = value
        energies = [v for k, v in extra.items() if k.endswith("_energy_wh") and k[:4] == "mppt"]
        if energies and all(isinstance(e, float) for e in energies):
            solar["energy_total_wh"] = sum(e for e in energies if isinstance(e, float))


def model_points(
    definition: ModelDef, address: int, prefix: str, taken: set[Target]
) -> list[Point]:
    """The points of a model whose ID register is at ``address``, names prefixed.

    A target already in ``taken`` is not fed again (the first model keeps it);
    the targets used are added to ``taken``. Vendor maps with a fixed layout
    (:mod:`drivers.profiles.solaredge`) build their maps from these too.
    """
    points = []
    for row in definition.rows:
        tgt = None if row.path is None else target(row.path)
        if tgt is not None:
            tgt = None if tgt in taken else tgt
            if tgt is not None:
                taken.add(tgt)
        points.append(
            Point(
                name=prefix + row.name,
                address=address + row.offset,
                register_type=RegisterType.HOLDING,
                data_type=row.data_type,
                target=tgt,
                scale=row.scale,
                scale_factor=None if row.sf is None else prefix + row.sf,
                length=row.length,
                states=row.states,
                constant=row.constant,
            )
        )
    return points


def register_map(chain: Chain) -> RegisterMap:
    """The register map of a discovered (or simulated) chain."""
    points: list[Point] = [
        Point("SunS", chain.base, RegisterType.HOLDING, DataType.STRING, length=2, constant="SunS")
    ]
    taken: set[Target] = set()
    for position, header in enumerate(chain.models):
        definition = _definition(header)
        if definition is None:
            continue
        prefix = f"{position}.{header.model_id}."
        points += model_points(definition, header.address, prefix, taken)
    points.append(Point("end.ID", chain.end, RegisterType.HOLDING, U16, constant=END_ID))
    points.append(Point("end.L", chain.end + 1, RegisterType.HOLDING, U16, constant=0))
    return RegisterMap(
        name="sunspec",
        source=SOURCE,
        points=tuple(points),
        na_markers=True,
        derive=derive_solar,
    )


def common_identity(address: int, *, name: str = "sunspec") -> RegisterMap:
    """The identity in a common model 1 whose ID register is at ``address``.

    json/model_1.json: Mn (manufacturer) at offset 2, Md (model) at 18, both 16
    registers; Vr (version) at 42, 8 registers; SN (serial number) at 50, 16
    registers. Opt (34, 8 registers) lies between and is read across: the four
    take one request of 64 registers, offsets 2-65.
    """
    rows = {row.name: row for row in COMMON.rows}
    fields = (
        (IdentityField.MANUFACTURER, "Mn"),
        (IdentityField.MODEL, "Md"),
        (IdentityField.FIRMWARE_VERSION, "Vr"),
        (IdentityField.SERIAL_NUMBER, "SN"),
    )
    return identity_map(
        name,
        f"{SOURCE}: model_1.json Mn, Md, Vr, SN",
        (
            text_point(field, RegisterType.HOLDING, address + rows[row].offset, rows[row].length)
            for field, row in fields
        ),
    )


def chain_identity(chain: Chain) -> RegisterMap | None:
    """The identity of a discovered chain: its first model, when that is the common
    model 1 (the SunSpec Information Model Specification puts it first)."""
    if not chain.models or chain.models[0].model_id != 1:
        return None
    return common_identity(chain.models[0].address)


ReadHolding = Callable[[int, int], Awaitable[Sequence[int]]]


async def discover(read: ReadHolding, *, unit: int, bases: Iterable[int] = BASE_ADDRESSES) -> Chain:
    """Find the marker and walk the model chain with ``read(address, count)``.

    Communication failures (no response, bad frames) propagate: they are not a
    discovery result. An exception response at a base means "not here".
    """
    for base in bases:
        try:
            words = tuple(await read(base, 2))
        except ExceptionResponse:
            continue
        if words == MARKER:
            break
    else:
        raise DiscoveryError(unit, "no 'SunS' marker at 40000, 0 or 50000")
    headers: list[ModelHeader] = []
    address = base + 2
    while True:
        model_id, length = tuple(await read(address, 2))
        if model_id == END_ID:
            return Chain(base, tuple(headers))
        headers.append(ModelHeader(model_id, address, length))
        address += 2 + length
        if len(headers) > MAX_MODELS or address + 2 > 0x10000:
            raise DiscoveryError(unit, f"model chain does not end (last at {address})")


PROFILES: Final = (
    DeviceProfile(
        name="sunspec",
        vendor="SunSpec",
        models=(
            "any SunSpec device: common model 1, inverters 101-103 and 111-113, "
            "storage 124, MPPT 160, meters 201-204 and 211-214, battery 802"
        ),
        role=Role.INVERTER,
        register_map=None,
        source=SOURCE,
        config_name="inverter",
        notes=("The map is discovered on the device at 40000, 0 or 50000 ('SunS').",),
    ),
)
