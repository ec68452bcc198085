"""The ``[device]`` table of a TOML register map: what makes a map a catalogue entry.

A map written in TOML (:mod:`drivers.profiles.generic`) may carry, beside its
points, what the catalogue knows of a coded family
(:class:`~drivers.profiles.device_profile.DeviceProfile`): the vendor, the
models, the role, the transports, the default unit id, the quirks, and the
registers ``ems edge scan`` recognises it by::

    [device]
    vendor = "Carlo Gavazzi"
    models = "EM24-DIN three-phase meter"
    role = "grid"                  # inverter | grid | solar | battery
    transports = ["rtu"]           # rtu, tcp (default: both)
    default_unit = 1               # 1..247
    units = []                     # other ids a scan should try
    settle_s = 0.0                 # silence after connecting before the first request
    single_client = false          # one Modbus TCP client at a time
    config_name = "meter"          # the device name ``ems edge scan`` suggests
    notes = ["..."]                # quirks and advice, for the catalogue
    recognised_by = "..."          # what the scan prints when the signature matches

    [[device.signature]]           # repeatable: every check must read and fit
    register_type = "input"
    address = 0x0000
    data_type = "int32"
    word_order = "CDAB"
    scale = 0.1                    # physical value = raw * scale
    low = 80.0
    high = 300.0

    [[device.identity]]            # repeatable: what the device says it is
    field = "serial_number"        # manufacturer | model | serial_number | firmware_version
    register_type = "holding"
    address = 0xFC00
    data_type = "uint32"           # string (with length), uint16 or uint32
    length = 0                     # registers, for a string

A user's own map (``profile = "generic"``) may carry the table too; it is then
validated and otherwise unused. The maps shipped in ``drivers/profiles/maps``
become catalogue entries under their own profile names.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.bus import BusType
from drivers.identity import IdentityField, identity_map, number_point, text_point
from drivers.profile import Point, RegisterMap
from drivers.profiles.device_profile import Check, DeviceProfile, Signature
from drivers.registers import DataType, RegisterType, WordOrder
from telemetry.roles import Role

__all__ = ["CheckSpec", "DeviceSpec", "IdentitySpec", "device_profile"]


class CheckSpec(BaseModel):
    """One ``[[device.signature]]`` entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    register_type: RegisterType
    address: Annotated[int, Field(ge=0, le=0xFFFF, strict=True)]
    data_type: DataType
    word_order: WordOrder = WordOrder.ABCD
    scale: float = 1.0
    low: float
    high: float

    @model_validator(mode="after")
    def _sound(self) -> CheckSpec:
        if self.high < self.low:
            raise ValueError("high must not be below low")
        if self.data_type in (DataType.STRING, DataType.BIT) or self.register_type.is_bit:
            raise ValueError("a check reads a numeric register (not a string, coil or input bit)")
        return self


class IdentitySpec(BaseModel):
    """One ``[[device.identity]]`` entry: a register the device reports itself in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: IdentityField
    register_type: RegisterType
    address: Annotated[int, Field(ge=0, le=0xFFFF, strict=True)]
    data_type: DataType
    word_order: WordOrder = WordOrder.ABCD
    length: Annotated[int, Field(ge=0, le=32, strict=True)] = 0

    @model_validator(mode="after")
    def _sound(self) -> IdentitySpec:
        if self.register_type.is_bit:
            raise ValueError("an identity is read from registers, not coils or input bits")
        if self.data_type is DataType.STRING:
            if self.length == 0:
                raise ValueError("a string needs its length in registers")
        elif self.data_type not in (DataType.UINT16, DataType.UINT32):
            raise ValueError("an identity is a string, or a number: uint16 or uint32")
        elif self.length:
            raise ValueError("length is for a string only")
        return self

    def point(self) -> Point:
        if self.data_type is DataType.STRING:
            return text_point(self.field, self.register_type, self.address, self.length)
        return number_point(
            self.field, self.register_type, self.address, self.data_type, self.word_order
        )


class DeviceSpec(BaseModel):
    """The ``[device]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vendor: Annotated[str, Field(min_length=1, max_length=64)]
    models: Annotated[str, Field(min_length=1, max_length=200)]
    role: Role
    transports: Annotated[list[BusType], Field(min_length=1)] = [BusType.RTU, BusType.TCP]
    default_unit: Annotated[int, Field(ge=1, le=247, strict=True)] = 1
    units: list[Annotated[int, Field(ge=1, le=247, strict=True)]] = []
    settle_s: Annotated[float, Field(ge=0.0, le=60.0)] = 0.0
    single_client: bool = False
    config_name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")] = "device"
    notes: list[Annotated[str, Field(min_length=1)]] = []
    recognised_by: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    signature: list[CheckSpec] = []
    identity: list[IdentitySpec] = []

    @model_validator(mode="after")
    def _one_register_per_field(self) -> DeviceSpec:
        fields = [entry.field for entry in self.identity]
        if len(set(fields)) != len(fields):
            raise ValueError("identity: each field once")
        return self


def device_profile(name: str, spec: DeviceSpec, reg_map: RegisterMap) -> DeviceProfile:
    """The catalogue entry a TOML map with a ``[device]`` table describes."""
    signature = None
    if spec.signature:
        checks = tuple(
            Check(c.register_type, c.address, c.data_type, c.low, c.high, c.scale, c.word_order)
            for c in spec.signature
        )
        signature = Signature(spec.recognised_by or f"{spec.vendor} {spec.models}", checks)
    identity = None
    if spec.identity:
        identity = identity_map(
            name,
            f"{reg_map.source}: [device] identity",
            (entry.point() for entry in spec.identity),
            max_count=reg_map.max_count,
            holes=reg_map.holes,
            byte_tables=reg_map.byte_tables,
        )
    return DeviceProfile(
        name=name,
        vendor=spec.vendor,
        models=spec.models,
        role=spec.role,
        register_map=reg_map,
        source=reg_map.source,
        transports=frozenset(spec.transports),
        default_unit=spec.default_unit,
        units=tuple(spec.units),
        settle_s=spec.settle_s,
        single_client=spec.single_client,
        signature=signature,
        config_name=spec.config_name,
        notes=tuple(spec.notes),
        identity=identity,
    )
