"""A register map written in TOML (``profile = "generic"``, or shipped as a catalogue entry).

Format::

    name = "my-meter"              # optional, defaults to the file name
    source = "Acme PM3 manual, table 4"
    max_count = 125                # optional: registers per request (device limit)
    max_gap = 16                   # optional: unused registers a request may bridge
    na_markers = false             # optional: SunSpec-style "not implemented" values
    byte_tables = [0x1200]         # optional: tables whose addresses count bytes (JK-PB);
                                   # points at base + offset / 2, sent to base + offset

    [[point]]
    name = "Total power"
    address = 52                   # PDU address, 0-based (register 30053 -> 52)
    register_type = "input"        # holding | input | coil | discrete
    data_type = "float32"          # int16 uint16 int32 uint32 float32 acc32 sunssf enum16
                                   # bitfield16 bitfield32 string bit
    word_order = "ABCD"            # ABCD (high word first) | CDAB | BADC | DCBA
    scale = 1.0                    # value = raw * scale * 10**sf + offset
    offset = 0.0
    target = "grid.power_w"        # section.field, section.field[i], or extra.name
    # optional:
    scale_factor = "W_SF"          # name of a data_type = "sunssf" point of this map
    shift = 0                      # a bit field: value = (raw >> shift) & mask
    mask = 0x000F
    states = { 0 = "off", 4 = "mppt" }  # code -> state name, for inverter.state / battery.state
    constant = 7                   # a point without target: what a simulator serves there
    length = 0                     # registers, for a string point (served, never read)

    [[hole]]                       # optional, repeatable: addresses the device refuses
    register_type = "input"        # to read (exception 02); no request touches them,
    first = 0x0100                 # whatever max_gap allows. Inclusive, PDU addresses.
    last = 0x0107

    [device]                       # optional: the catalogue entry (generic_device.py)

A point needs a ``target`` unless another point names it as its ``scale_factor``
or it carries a ``constant`` (a documented register a simulated device answers).

Validated here, once: a mistake is a :class:`~drivers.errors.ProfileError` naming
the key (``point[2].data_type``), before anything talks to a device. Targets must
be fields of the protocol (telemetry's models): a typo cannot silently feed
nothing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers.errors import ProfileError
from drivers.planner import Hole
from drivers.profile import Point, RegisterMap, Section, Target, target
from drivers.profiles.device_profile import DeviceProfile
from drivers.profiles.generic_device import DeviceSpec, device_profile
from drivers.registers import DataType, EncodingError, RegisterType, WordOrder, encode_value
from telemetry import SECTION_MODELS

__all__ = ["load_device_profile", "load_generic", "parse_device_profile", "parse_generic"]

_LIST_FIELDS = {("grid", "phase_voltage_v"), ("grid", "phase_power_w")}
_STATE_FIELDS = {("inverter", "state"), ("battery", "state")}
_SF_RANGE = range(-10, 11)
_INTEGER_TYPES = {
    DataType.INT16,
    DataType.UINT16,
    DataType.INT32,
    DataType.UINT32,
    DataType.ACC32,
    DataType.ENUM16,
    DataType.BITFIELD16,
    DataType.BITFIELD32,
}


def _check_target(tgt: Target) -> None:
    if tgt.section is Section.EXTRA:
        if tgt.index is not None:
            raise ValueError("extra values are single numbers, without an index")
        return
    model = SECTION_MODELS[tgt.section.value]
    if tgt.field not in model.model_fields:
        known = ", ".join(model.model_fields)
        raise ValueError(f"{tgt.section.value} has no field {tgt.field!r} (fields: {known})")
    is_list = (tgt.section.value, tgt.field) in _LIST_FIELDS
    if is_list and (tgt.index is None or not 0 <= tgt.index < 3):
        raise ValueError(f"{tgt.field} is per phase: write {tgt.field}[0] to [2]")
    if not is_list and tgt.index is not None:
        raise ValueError(f"{tgt.field} is a single value, without an index")


class _PointSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64)]
    address: Annotated[int, Field(ge=0, le=0xFFFF, strict=True)]
    register_type: RegisterType
    data_type: DataType
    word_order: WordOrder = WordOrder.ABCD
    scale: float = 1.0
    offset: float = 0.0
    length: Annotated[int, Field(ge=0, le=125, strict=True)] = 0
    target: str | None = None
    scale_factor: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    shift: Annotated[int, Field(ge=0, le=31, strict=True)] = 0
    mask: Annotated[int, Field(ge=1, le=0xFFFF_FFFF, strict=True)] | None = None
    states: dict[str, Annotated[str, Field(min_length=1, max_length=32)]] = {}
    constant: int | float | str | None = None

    @field_validator("target")
    @classmethod
    def _valid_target(cls, value: str | None) -> str | None:
        if value is not None:
            _check_target(target(value))
        return value

    @field_validator("scale")
    @classmethod
    def _nonzero_scale(cls, value: float) -> float:
        if value == 0:
            raise ValueError("must not be 0 (the encoder divides by it)")
        return value

    @field_validator("states")
    @classmethod
    def _integer_codes(cls, value: dict[str, str]) -> dict[str, str]:
        for code in value:
            try:
                int(code, 0)
            except ValueError:
                raise ValueError(f"code {code!r} is not an integer") from None
        return value


class _HoleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    register_type: RegisterType
    first: Annotated[int, Field(ge=0, le=0xFFFF, strict=True)]
    last: Annotated[int, Field(ge=0, le=0xFFFF, strict=True)]

    @model_validator(mode="after")
    def _ordered(self) -> _HoleSpec:
        if self.last < self.first:
            raise ValueError("last must not be below first")
        return self


class _MapSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    source: str = "user-written register map"
    max_count: Annotated[int, Field(ge=1, le=125, strict=True)] = 125
    max_gap: Annotated[int, Field(ge=0, le=125, strict=True)] = 16
    na_markers: bool = False
    byte_tables: list[Annotated[int, Field(ge=0, le=0xFFFF, strict=True)]] = []
    point: Annotated[list[_PointSpec], Field(min_length=1)]
    hole: list[_HoleSpec] = []
    device: DeviceSpec | None = None


def _key(loc: Sequence[int | str]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else part
    return key or "(file)"


def _point_error(p: _PointSpec, scale_factors: set[str], sf_points: set[str]) -> tuple[str, str]:
    """The first mistake of a point that its own fields cannot show: (key, reason), or ("", "")."""
    tgt = None if p.target is None else target(p.target)
    if p.register_type.is_bit != (p.data_type is DataType.BIT):
        return "data_type", "coils and discrete inputs take data_type = 'bit', registers do not"
    if tgt is None:
        if p.constant is None and p.name not in scale_factors:
            return "target", "required, unless the point is a scale_factor or carries a constant"
    elif p.data_type is DataType.STRING:
        return "data_type", "strings cannot feed a number (a string point has no target)"
    elif p.constant is not None:
        return "constant", "only a point without target carries a constant"
    if p.data_type is DataType.STRING and p.length == 0:
        return "length", "a string point needs its length in registers"
    if p.scale_factor is not None and p.scale_factor not in sf_points:
        return "scale_factor", f"{p.scale_factor!r} is not a data_type = 'sunssf' point"
    if (p.mask is not None or p.shift) and p.data_type not in _INTEGER_TYPES:
        return "mask", "bit fields are read from integer registers"
    is_state = tgt is not None and (tgt.section.value, tgt.field) in _STATE_FIELDS
    if p.states and not is_state:
        return "states", "states feed inverter.state or battery.state only"
    if is_state and not p.states:
        return "target", f"{p.target} is a state name: give the point its states"
    if p.states and p.data_type not in _INTEGER_TYPES:
        return "states", "state codes are read from integer registers"
    if p.data_type is DataType.SUNSSF and p.constant is not None and p.constant not in _SF_RANGE:
        return "constant", "a SunSpec scale factor is -10 to 10"
    if p.constant is not None:
        try:
            encode_value(p.data_type, p.constant, p.word_order, p.length)
        except (EncodingError, ValueError) as err:
            return "constant", str(err)
    return "", ""


def _points(spec: _MapSpec, source: str) -> list[Point]:
    scale_factors = {p.scale_factor for p in spec.point if p.scale_factor is not None}
    sf_points = {p.name for p in spec.point if p.data_type is DataType.SUNSSF}
    points = []
    for i, p in enumerate(spec.point):
        key, reason = _point_error(p, scale_factors, sf_points)
        if key:
            raise ProfileError(f"point[{i}].{key}", reason, source=source)
        points.append(
            Point(
                name=p.name,
                address=p.address,
                register_type=p.register_type,
                data_type=p.data_type,
                target=None if p.target is None else target(p.target),
                word_order=p.word_order,
                scale=p.scale,
                offset=p.offset,
                scale_factor=p.scale_factor,
                length=p.length,
                states=tuple(sorted((int(c, 0), n) for c, n in p.states.items())),
                constant=p.constant,
                shift=p.shift,
                mask=p.mask,
            )
        )
    return points


def _validate(data: dict[str, Any], source: str) -> _MapSpec:
    try:
        return _MapSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise ProfileError(_key(first["loc"]), first["msg"], source=source) from err


def _register_map(spec: _MapSpec, source: str) -> RegisterMap:
    points = _points(spec, source)
    holes = tuple(Hole(h.register_type, h.first, h.last) for h in spec.hole)
    for j, hole in enumerate(holes):
        for point in points:
            if hole.touches(point.register_type, point.address, point.count):
                raise ProfileError(f"hole[{j}]", f"covers point {point.name!r}", source=source)
    try:
        reg_map = RegisterMap(
            name=spec.name or source,
            source=spec.source,
            points=tuple(points),
            max_count=spec.max_count,
            max_gap=spec.max_gap,
            na_markers=spec.na_markers,
            holes=holes,
            byte_tables=tuple(sorted(spec.byte_tables)),
        )
        reg_map.plan  # noqa: B018 - a point too long for one request fails here, not at poll time
    except ValueError as err:
        raise ProfileError("point", str(err), source=source) from err
    return reg_map


def parse_generic(data: dict[str, Any], *, source: str = "profile") -> RegisterMap:
    """A register map from parsed TOML; errors name the key."""
    return _register_map(_validate(data, source), source)


def parse_device_profile(data: dict[str, Any], *, name: str, source: str) -> DeviceProfile:
    """The catalogue entry ``name`` from a parsed TOML map with a ``[device]`` table."""
    spec = _validate(data, source)
    if spec.device is None:
        raise ProfileError("device", "a shipped map needs a [device] table", source=source)
    if spec.name is not None and spec.name != name:
        raise ProfileError("name", f"must be the profile name {name!r}", source=source)
    reg_map = _register_map(spec.model_copy(update={"name": name}), source)
    try:
        return device_profile(name, spec.device, reg_map)
    except ValueError as err:
        raise ProfileError("name", str(err), source=source) from err


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ProfileError("profile_file", f"cannot read {path}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ProfileError("profile_file", f"{path}: invalid TOML: {err}") from err


def load_generic(path: str | Path) -> RegisterMap:
    """Read and validate a generic register map file."""
    path = Path(path)
    return parse_generic(_read(path), source=path.name)


def load_device_profile(path: str | Path) -> DeviceProfile:
    """Read a TOML map with a ``[device]`` table: the catalogue entry named after the file."""
    path = Path(path)
    return parse_device_profile(_read(path), name=path.stem, source=path.name)
