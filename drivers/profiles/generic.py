"""A register map written by the user in TOML (``profile = "generic"``).

Format::

    name = "my-meter"              # optional, defaults to the file name
    source = "Acme PM3 manual, table 4"
    max_count = 125                # optional: registers per request (device limit)
    max_gap = 16                   # optional: unused registers a request may bridge
    na_markers = false             # optional: SunSpec-style "not implemented" values

    [[point]]
    name = "Total power"
    address = 52                   # PDU address, 0-based (register 30053 -> 52)
    register_type = "input"        # holding | input | coil | discrete
    data_type = "float32"          # int16 uint16 int32 uint32 float32 acc32 string ...
    word_order = "ABCD"            # ABCD (high word first) | CDAB | BADC | DCBA
    scale = 1.0                    # value = raw * scale + offset
    offset = 0.0
    target = "grid.power_w"        # section.field, section.field[i], or extra.name

    [[hole]]                       # optional, repeatable: addresses the device refuses
    register_type = "input"        # to read (exception 02); no request touches them,
    first = 0x0100                 # whatever max_gap allows. Inclusive, PDU addresses.
    last = 0x0107

Validated here, once: a mistake is a :class:`~drivers.errors.ProfileError` naming
the key (``point[2].data_type``), before anything talks to a device. Targets must
be fields of the protocol (telemetry's models): a typo cannot silently feed
nothing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers.errors import ProfileError
from drivers.planner import Hole
from drivers.profile import Point, RegisterMap, Section, Target, target
from drivers.registers import DataType, RegisterType, WordOrder
from telemetry import SECTION_MODELS

_LIST_FIELDS = {("grid", "phase_voltage_v"), ("grid", "phase_power_w")}
_STRING_FIELDS = {("inverter", "state"), ("battery", "state")}


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
    if (tgt.section.value, tgt.field) in _STRING_FIELDS:
        raise ValueError(f"{tgt.field} is a state name, not a register value")


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
    target: str

    @field_validator("target")
    @classmethod
    def _valid_target(cls, value: str) -> str:
        _check_target(target(value))
        return value

    @field_validator("scale")
    @classmethod
    def _nonzero_scale(cls, value: float) -> float:
        if value == 0:
            raise ValueError("must not be 0 (the encoder divides by it)")
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
    point: Annotated[list[_PointSpec], Field(min_length=1)]
    hole: list[_HoleSpec] = []


def _key(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += f".{part}" if key else part
    return key or "(file)"


def parse_generic(data: dict[str, Any], *, source: str = "profile") -> RegisterMap:
    """A register map from parsed TOML; errors name the key."""
    try:
        spec = _MapSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        raise ProfileError(_key(first["loc"]), first["msg"], source=source) from err
    points = []
    for i, p in enumerate(spec.point):
        if p.data_type is DataType.STRING:
            raise ProfileError(
                f"point[{i}].data_type", "strings cannot feed a number", source=source
            )
        if p.register_type.is_bit != (p.data_type is DataType.BIT):
            raise ProfileError(
                f"point[{i}].data_type",
                "coils and discrete inputs take data_type = 'bit', registers do not",
                source=source,
            )
        points.append(
            Point(
                name=p.name,
                address=p.address,
                register_type=p.register_type,
                data_type=p.data_type,
                target=target(p.target),
                word_order=p.word_order,
                scale=p.scale,
                offset=p.offset,
                length=p.length,
            )
        )
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
        )
        reg_map.plan  # noqa: B018 - a point too long for one request fails here, not at poll time
    except ValueError as err:
        raise ProfileError("point", str(err), source=source) from err
    return reg_map


def load_generic(path: str | Path) -> RegisterMap:
    """Read and validate a generic register map file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ProfileError("profile_file", f"cannot read {path}: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise ProfileError("profile_file", f"{path}: invalid TOML: {err}") from err
    return parse_generic(data, source=path.name)
