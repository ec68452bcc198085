"""A supported device, as the catalogue lists it: its map, its role and its quirks.

:class:`DeviceProfile` is what a profile name in the edge config (``profile =
"huawei_sun2000"``) stands for: the register map to read (None when the device
describes itself, as SunSpec devices do), the role it usually takes, the
transports it speaks, and the quirks its vendor's document warns about, kept
here so that the poller never knows one device from another:

- ``settle_s``: silence after the connection opens before the first request
  (a device that drops requests sent too early after a connect);
- ``command_gap_s``: silence between the end of one request and the start of
  the next one to the same device (a device that ignores commands sent too soon
  after its last answer);
- ``single_client``: the device serves one Modbus TCP client at a time, so the
  agent must be the only one (docs/devices.md says how to share it);
- ``default_unit`` / ``units``: the unit id it answers at by default, and every
  id a scan should try for it (a gateway's services at fixed ids).

A SunSpec device names its maker in the common model (``Mn``): a profile with
``sunspec_manufacturer`` is the one ``ems edge scan`` proposes for that maker's
devices (its vendor quirks: fixed layout, signs), narrowed by ``sunspec_models``
when one maker's devices differ (an inverter's first model is 101-103 or
111-113, a meter's 201-204 or 211-214).

:class:`Signature` lists a few registers whose values only make sense for the
device, for ``ems edge scan`` to name what answers at a unit id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from drivers.bus import BusType
from drivers.profile import RegisterMap
from drivers.registers import DataType, RegisterType, WordOrder, decode_value, register_count
from telemetry.roles import Role

if TYPE_CHECKING:  # sunspec imports this module
    from drivers.profiles.sunspec import Chain

__all__ = ["BOTH_TRANSPORTS", "Check", "DeviceProfile", "Signature"]

BOTH_TRANSPORTS = frozenset({BusType.RTU, BusType.TCP})


@dataclass(frozen=True)
class Check:
    """One register (or register pair) whose physical value must lie in ``low..high``;
    or, for a string (:meth:`text`), ``length`` registers whose text starts with ``prefix``.
    """

    register_type: RegisterType
    address: int
    data_type: DataType
    low: float
    high: float
    scale: float = 1.0
    word_order: WordOrder = WordOrder.ABCD
    length: int = 0  # registers, for a string
    prefix: str = ""  # what a string must start with

    def __post_init__(self) -> None:
        if (self.data_type is DataType.STRING) != bool(self.prefix):
            raise ValueError("a string check needs a prefix, and only a string check has one")

    @classmethod
    def text(cls, register_type: RegisterType, address: int, length: int, prefix: str) -> Check:
        """A string of ``length`` registers from ``address`` that starts with ``prefix``."""
        return cls(register_type, address, DataType.STRING, 0, 0, length=length, prefix=prefix)

    @property
    def count(self) -> int:
        """Registers the check reads."""
        return register_count(self.data_type, self.length)

    def accepts(self, words: Sequence[int]) -> bool:
        raw = decode_value(self.data_type, tuple(words), self.word_order)
        if isinstance(raw, str):
            return raw.startswith(self.prefix)
        if not isinstance(raw, int | float):
            return False
        value = raw * self.scale
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Signature:
    """The registers that mark a device (all checks must read and fit)."""

    description: str
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class DeviceProfile:
    """One entry of the device catalogue (``ems devices``, docs/devices.md)."""

    name: str  # the config's ``profile`` value
    vendor: str
    models: str  # the models it covers, as the vendor names them
    role: Role  # the section its values mainly fill
    register_map: RegisterMap | None  # None: the device describes itself (SunSpec)
    source: str  # the vendor document (title, version, table)
    transports: frozenset[BusType] = BOTH_TRANSPORTS
    default_unit: int = 1
    units: tuple[int, ...] = ()  # unit ids a scan should try besides the default
    settle_s: float = 0.0
    command_gap_s: float = 0.0
    single_client: bool = False
    signature: Signature | None = None
    sunspec_manufacturer: str = ""  # the common model's Mn that names this profile's devices
    sunspec_models: tuple[int, ...] = ()  # the model after the common one; () for any
    # For a discovered device (register_map None): the map of its discovered chain,
    # where the vendor reads some models its own way; None: sunspec.register_map.
    sunspec_map: Callable[[Chain], RegisterMap] | None = None
    # The chain its vendor's map documents, shown by the catalogue (None: a typical one).
    sunspec_example: Chain | None = None
    # Where the device reports its model, serial number, firmware (drivers/identity.py);
    # None: it reports none, or (a discovered SunSpec device) its common model does.
    identity: RegisterMap | None = None
    config_name: str = "device"  # the name ``ems edge scan`` gives it in config lines
    notes: tuple[str, ...] = ()  # quirks and advice, for the catalogue

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"profile name {self.name!r}: lower-case letters, digits and _")
        if self.settle_s < 0:
            raise ValueError(f"profile {self.name}: settle_s must be >= 0")
        if self.command_gap_s < 0:
            raise ValueError(f"profile {self.name}: command_gap_s must be >= 0")

    @property
    def sections(self) -> tuple[str, ...]:
        """The protocol sections its map fills (``extra`` included), in map order."""
        if self.register_map is None:
            return ()
        seen: dict[str, None] = {}
        for point in self.register_map.points:
            if point.target is not None:
                seen.setdefault(point.target.section.value, None)
        return tuple(seen)
