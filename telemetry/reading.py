"""A reading as it travels on the wire (docs/protocol.md, "A reading").

Every field carries its physical range here, once, so the hub's gatekeeper,
the edge's sampler and the simulators all agree on what "valid" means. Units
are in the names; signs follow docs/protocol.md ("A reading": signs).

Unknown keys are ignored (docs/protocol.md: "Unknown keys are ignored"); NaN and
Infinity are refused everywhere (``allow_inf_nan=False``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

# docs/protocol.md, "A reading": powers within +-10 MW; beyond is invalid.
MAX_POWER_W: Final = 10_000_000.0
# A reading before this instant cannot come from a synced clock (docs/protocol.md, `ts`).
EARLIEST_TS: Final = datetime(2020, 1, 1, tzinfo=UTC)
# docs/protocol.md, `ts`: "more than 5 minutes ahead of the hub's clock is invalid".
MAX_CLOCK_AHEAD: Final = timedelta(minutes=5)
MAX_SEQ: Final = 2**63 - 1  # stored as BIGINT
_TOO_EARLY: Final = "is before 2020-01-01: the sender's clock is not synced"
_TOO_LATE: Final = "is more than 5 minutes ahead of the hub's clock"

# Strict: a number is a JSON number, never a string ("123.5") nor a boolean
# (docs/protocol.md, "A reading": wrong types are invalid). Integers are numbers.
Power = Annotated[float, Field(ge=-MAX_POWER_W, le=MAX_POWER_W, strict=True)]
NonNegativePower = Annotated[float, Field(ge=0.0, le=MAX_POWER_W, strict=True)]
# DC strings reach 1,500 V; nothing we read legitimately exceeds 2 kV.
Voltage = Annotated[float, Field(ge=0.0, le=2_000.0, strict=True)]
Current = Annotated[float, Field(ge=-10_000.0, le=10_000.0, strict=True)]
Frequency = Annotated[float, Field(ge=40.0, le=70.0, strict=True)]
# 1e15 Wh is a terawatt for a century: any larger counter is garbage.
Energy = Annotated[float, Field(ge=0.0, le=1e15, strict=True)]
Percent = Annotated[float, Field(ge=0.0, le=100.0, strict=True)]
Temperature = Annotated[float, Field(ge=-60.0, le=150.0, strict=True)]
PowerFactor = Annotated[float, Field(ge=-1.0, le=1.0, strict=True)]
CellVoltage = Annotated[float, Field(ge=0.0, le=5.0, strict=True)]
StateName = Annotated[str, Field(min_length=1, max_length=32, strict=True)]
# docs/protocol.md, "A reading": names of `extra` are 1 to 64 characters of
# A-Z a-z 0-9 _ . - (what every register map uses), so a name is safe to log and
# to show as it is.
EXTRA_NAME_PATTERN: Final = r"^[A-Za-z0-9_.\-]{1,64}$"
ExtraName = Annotated[str, Field(pattern=EXTRA_NAME_PATTERN, strict=True)]
ExtraValue = Annotated[float, Field(ge=-1e15, le=1e15, strict=True)]
# docs/protocol.md, "Energy": Wh over one reading's span. 1e9 Wh is a
# gigawatt-hour, a large plant's day, far beyond one reading of one site.
MAX_ENERGY_INCREMENT_WH: Final = 1e9
EnergyIncrement = Annotated[float, Field(ge=0.0, le=MAX_ENERGY_INCREMENT_WH, strict=True)]
# A span longer than a year is a clock error, not a measurement.
MAX_ENERGY_SPAN_S: Final = 366 * 86_400.0
# RFC 3339 date-time: pydantic alone would also take an epoch number, or digits in a string.
RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    def has_a_value(self) -> bool:
        """Whether any field is set to something (unknown keys and nulls are not values)."""
        # The fields the sender named, not every field: this runs per section per reading.
        values = self.__dict__
        for name in self.__pydantic_fields_set__:  # noqa: SIM110 - any() costs twice this
            if values[name] is not None:
                return True
        return False


class Inverter(_Section):
    ac_power_w: Power | None = None
    ac_voltage_v: Voltage | None = None
    ac_current_a: Current | None = None
    ac_frequency_hz: Frequency | None = None
    dc_power_w: Power | None = None
    energy_total_wh: Energy | None = None
    temperature_c: Temperature | None = None
    state: StateName | None = None


class Grid(_Section):
    power_w: Power | None = None
    voltage_v: Voltage | None = None
    current_a: Current | None = None
    frequency_hz: Frequency | None = None
    power_factor: PowerFactor | None = None
    import_energy_wh: Energy | None = None
    export_energy_wh: Energy | None = None
    phase_voltage_v: Annotated[list[Voltage], Field(max_length=3, strict=True)] | None = None
    phase_power_w: Annotated[list[Power], Field(max_length=3, strict=True)] | None = None


class Solar(_Section):
    pv_power_w: NonNegativePower | None = None
    pv_voltage_v: Voltage | None = None
    pv_current_a: Current | None = None
    energy_today_wh: Energy | None = None
    energy_total_wh: Energy | None = None


class Battery(_Section):
    soc_pct: Percent | None = None
    soh_pct: Percent | None = None
    power_w: Power | None = None
    voltage_v: Voltage | None = None
    current_a: Current | None = None
    temperature_c: Temperature | None = None
    cell_voltage_min_v: CellVoltage | None = None
    cell_voltage_max_v: CellVoltage | None = None
    state: StateName | None = None


SECTION_MODELS: Final[dict[str, type[_Section]]] = {
    "inverter": Inverter,
    "grid": Grid,
    "solar": Solar,
    "battery": Battery,
}


def _numeric_fields() -> tuple[tuple[str, str], ...]:
    """(section, field) of every scalar number a reading can carry.

    Derived from the models so storage columns and bucket averages never
    drift from the wire schema.
    """
    fields: list[tuple[str, str]] = []
    for section, model in SECTION_MODELS.items():
        for name, info in model.model_fields.items():
            # `Power | None` keeps its Annotated[float, ...] member inside the union.
            members = [
                (get_origin(arg) and get_args(arg)[0]) or arg for arg in get_args(info.annotation)
            ]
            if float in members:
                fields.append((section, name))
    return tuple(fields)


NUMERIC_FIELDS: Final = _numeric_fields()

# docs/protocol.md, "Several devices per role": at most this many devices beside the
# totals (the health frame's bound), named like `extra` entries (the config's names).
MAX_DEVICES: Final = 64
DeviceName = Annotated[str, Field(pattern=EXTRA_NAME_PATTERN, strict=True)]
Extra = Annotated[dict[ExtraName, ExtraValue], Field(max_length=256, strict=True)]


class DeviceValues(BaseModel):
    """One device's own values, beside the site's totals (docs/protocol.md, "devices").

    ``total``: whether the device counts toward its role's section (false for a
    sub-meter, whose load the main meter already measures).
    """

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    role: Literal["inverter", "grid", "solar", "battery"]
    total: Annotated[bool, Field(strict=True)] = True
    inverter: Inverter | None = None
    grid: Grid | None = None
    solar: Solar | None = None
    battery: Battery | None = None
    extra: Extra | None = None

    @model_validator(mode="after")
    def _has_a_value(self) -> DeviceValues:
        # The same rule as a reading's: a section present holds a value.
        parts = [p for p in (self.inverter, self.grid, self.solar, self.battery) if p is not None]
        if any(not part.has_a_value() for part in parts):
            raise ValueError("a section needs at least one value")
        if not parts and not self.extra:
            raise ValueError("a device needs at least one section or an extra value")
        return self


class EnergyIncrements(BaseModel):
    """Energy over (previous reading's ts, this ts] of the device (docs/protocol.md, "Energy").

    The edge turns its meters' counters (and, where a device has none, its
    powers) into these increments, so the hub's rollups are plain sums, each
    reading counted once by the storage's (device_id, ts) key. Every quantity
    is optional: absent means unknown, which is not zero.
    """

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    # None: unknown (the edge's first reading after a reboot). 0 is taken too: the
    # edge rounds to the millisecond, and refusing the reading would lose all of it.
    span_s: Annotated[float, Field(ge=0.0, le=MAX_ENERGY_SPAN_S, strict=True)] | None = None
    # False when part of the span was not measured (a device failing, the agent down).
    complete: Annotated[bool, Field(strict=True)]
    pv_wh: EnergyIncrement | None = None
    import_wh: EnergyIncrement | None = None
    export_wh: EnergyIncrement | None = None
    charge_wh: EnergyIncrement | None = None
    discharge_wh: EnergyIncrement | None = None
    house_wh: EnergyIncrement | None = None


# The quantities of EnergyIncrements, in storage and answer order.
ENERGY_QUANTITIES: Final = (
    "pv_wh",
    "import_wh",
    "export_wh",
    "charge_wh",
    "discharge_wh",
    "house_wh",
)
assert tuple(EnergyIncrements.model_fields)[2:] == ENERGY_QUANTITIES


# Reading._has_a_section names the sections one by one.
assert tuple(SECTION_MODELS) == ("inverter", "grid", "solar", "battery")


class Reading(BaseModel):
    """One measurement instant of one device (docs/protocol.md, "A reading")."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, frozen=True)

    seq: Annotated[int, Field(ge=0, le=MAX_SEQ, strict=True)] | None = None
    ts: datetime
    inverter: Inverter | None = None
    grid: Grid | None = None
    solar: Solar | None = None
    battery: Battery | None = None
    extra: Extra | None = None
    # A documented extension (docs/protocol.md, "Several devices per role"): readers
    # that do not know it ignore it, as every unknown key.
    devices: Annotated[dict[DeviceName, DeviceValues], Field(max_length=MAX_DEVICES)] | None = None
    # A documented extension (docs/protocol.md, "Energy"); not a section:
    # a reading still needs one of inverter, grid, solar, battery.
    energy: EnergyIncrements | None = None

    @field_validator("ts", mode="wrap")
    @classmethod
    def _ts_is_plausible(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> datetime:
        # One wrapping validator, not a "before" and an "after": this runs for every reading.
        if isinstance(value, str):
            if RFC3339.fullmatch(value) is None:
                raise ValueError("must be an RFC 3339 date-time such as 2026-11-26T05:30:00Z")
        elif not isinstance(value, datetime):
            raise ValueError("must be an RFC 3339 date-time string")
        parsed: datetime = handler(value)
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValueError("must carry a UTC offset (RFC 3339)")
        try:
            parsed = parsed.astimezone(UTC)
        except OverflowError:
            # Year 1 or 9999 shifted by its offset leaves what a datetime can hold.
            raise ValueError(_TOO_EARLY if parsed.year < 2020 else _TOO_LATE) from None
        if parsed < EARLIEST_TS:
            raise ValueError(_TOO_EARLY)
        context = info.context if isinstance(info.context, dict) else {}
        now = context.get("now")
        if not isinstance(now, datetime):
            now = datetime.now(UTC)
        if parsed > now + MAX_CLOCK_AHEAD:
            raise ValueError(_TOO_LATE)
        return parsed

    @model_validator(mode="after")
    def _has_a_section(self) -> Reading:
        # Spelled out rather than a loop over SECTION_MODELS: this runs for every reading.
        inverter, grid, solar, battery = self.inverter, self.grid, self.solar, self.battery
        if inverter is None and grid is None and solar is None and battery is None:
            raise ValueError("a reading needs at least one of inverter, grid, solar, battery")
        # docs/protocol.md: a section holds at least one value; `"grid": {}` is not a reading.
        if inverter is not None and not inverter.has_a_value():
            raise ValueError("section inverter needs at least one value")
        if grid is not None and not grid.has_a_value():
            raise ValueError("section grid needs at least one value")
        if solar is not None and not solar.has_a_value():
            raise ValueError("section solar needs at least one value")
        if battery is not None and not battery.has_a_value():
            raise ValueError("section battery needs at least one value")
        return self

    def to_wire(self) -> dict[str, Any]:
        """The reading as a JSON-ready dict: absent fields left out, ts in RFC 3339 UTC."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["ts"] = format_ts(self.ts)
        return data


def format_ts(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` and the microseconds the value has."""
    value = value.astimezone(UTC)
    if value.microsecond:
        text = value.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0")
    else:
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
    return text + "Z"
