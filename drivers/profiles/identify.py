"""What answered at a unit id: a SunSpec device's own name, else the profile whose registers fit.

For ``ems edge scan``. A SunSpec device says who it is: the common model
(SunSpec Information Model Reference, model 1) carries the manufacturer
``Mn`` and the model ``Md`` as strings right after the "SunS" marker. Other
devices do not, so each fixed profile lists a :class:`Signature`: a few
registers it documents whose values only make sense for that device (a rated
voltage class, a mode code, a plausible mains frequency). A unit matches when
every check reads and falls in its range; the first profile that matches
wins. A check that is refused (exception 02), malformed or silent is simply
no match: identification never fails a scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from drivers.errors import DriverError, ExceptionResponse
from drivers.profiles import ProfileName, sunspec
from drivers.registers import DataType, RegisterType, WordOrder, decode_value, register_count
from drivers.transports import Transport

__all__ = ["SIGNATURES", "Check", "Identity", "Signature", "identify"]

_HOLDING, _INPUT = RegisterType.HOLDING, RegisterType.INPUT
# SunSpec model 1: ID, L, then Mn (16 registers) and Md (16 registers).
_MN_OFFSET: Final = 4
_MD_OFFSET: Final = 20
_STRING_REGISTERS: Final = 16


@dataclass(frozen=True)
class Check:
    """One register (or register pair) whose physical value must lie in ``low..high``."""

    register_type: RegisterType
    address: int
    data_type: DataType
    low: float
    high: float
    scale: float = 1.0
    word_order: WordOrder = WordOrder.ABCD

    def accepts(self, words: Sequence[int]) -> bool:
        raw = decode_value(self.data_type, tuple(words), self.word_order)
        if not isinstance(raw, int | float):
            return False
        value = raw * self.scale
        return self.low <= value <= self.high


@dataclass(frozen=True)
class Signature:
    """The registers that mark a device of ``profile`` (all must fit)."""

    profile: ProfileName
    description: str
    checks: tuple[Check, ...]


U16, F32 = DataType.UINT16, DataType.FLOAT32

SIGNATURES: Final = (
    # EPEver V2.5 rated data: 0x3000 PV array rated voltage (V x 100), 0x3004 rated
    # battery voltage (a 12/24/36/48 V class), 0x3008 charging mode (0 connect/
    # disconnect, 1 PWM, 2 MPPT).
    Signature(
        ProfileName.EPEVER_TRACER,
        "EPEver Tracer charge controller (rated data 0x3000-0x3008)",
        (
            Check(_INPUT, 0x3000, U16, 10.0, 250.0, scale=0.01),
            Check(_INPUT, 0x3004, U16, 12.0, 48.0, scale=0.01),
            Check(_INPUT, 0x3008, U16, 0, 2),
        ),
    ),
    # Seplos V3 BMS: 0x1000 pack voltage (V x 100), 0x1005 SOC and 0x1006 SOH
    # (% x 10), 0x100A highest cell voltage (V x 1000): a 4S..16S lithium pack.
    Signature(
        ProfileName.SEPLOS_V3,
        "Seplos V3 BMS (pack voltage, SOC, SOH, cell voltage at 0x1000)",
        (
            Check(_INPUT, 0x1000, U16, 8.0, 64.0, scale=0.01),
            Check(_INPUT, 0x1005, U16, 0.0, 100.0, scale=0.1),
            Check(_INPUT, 0x1006, U16, 0.0, 100.0, scale=0.1),
            Check(_INPUT, 0x100A, U16, 2.0, 4.5, scale=0.001),
        ),
    ),
    # Eastron input registers (float32): 30001 phase 1 voltage, 30071 frequency. The
    # three-phase SDM630 also has a live phase 2 voltage at 30003; the SDM120 does not.
    Signature(
        ProfileName.EASTRON_SDM630,
        "Eastron SDM630 three-phase meter (voltages 30001/30003, frequency 30071)",
        (
            Check(_INPUT, 0x0000, F32, 80.0, 300.0),
            Check(_INPUT, 0x0002, F32, 80.0, 300.0),
            Check(_INPUT, 0x0046, F32, 45.0, 65.0),
        ),
    ),
    Signature(
        ProfileName.EASTRON_SDM120,
        "Eastron SDM120 single-phase meter (voltage 30001, frequency 30071)",
        (
            Check(_INPUT, 0x0000, F32, 80.0, 300.0),
            Check(_INPUT, 0x0046, F32, 45.0, 65.0),
        ),
    ),
)


@dataclass(frozen=True)
class Identity:
    """What answered at ``unit``: a profile (None: nothing matched) and how it was told."""

    unit: int
    profile: ProfileName | None
    description: str


async def _read(transport: Transport, check: Check, unit: int) -> tuple[int, ...] | None:
    count = register_count(check.data_type, 0)
    try:
        return await transport.read(check.register_type, check.address, count, unit=unit)
    except DriverError:
        return None


async def _sunspec(transport: Transport, unit: int) -> Identity | None:
    for base in sunspec.BASE_ADDRESSES:
        try:
            marker = await transport.read(_HOLDING, base, 2, unit=unit)
        except ExceptionResponse:
            continue
        except DriverError:
            return None
        if tuple(marker) != sunspec.MARKER:
            continue
        try:
            mn = await transport.read(_HOLDING, base + _MN_OFFSET, _STRING_REGISTERS, unit=unit)
            md = await transport.read(_HOLDING, base + _MD_OFFSET, _STRING_REGISTERS, unit=unit)
        except DriverError:
            return Identity(unit, ProfileName.SUNSPEC, f"SunSpec device at {base}")
        maker = _string(mn) or "?"
        model = _string(md) or "?"
        return Identity(
            unit, ProfileName.SUNSPEC, f'SunSpec device at {base}: "{maker}" model "{model}"'
        )
    return None


def _string(words: Sequence[int]) -> str:
    raw = bytes(byte for word in words for byte in word.to_bytes(2, "big"))
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()


async def identify(
    transport: Transport, unit: int, signatures: Sequence[Signature] = SIGNATURES
) -> Identity:
    """Who answers at ``unit``: SunSpec first (it names itself), then each signature in turn."""
    found = await _sunspec(transport, unit)
    if found is not None:
        return found
    for signature in signatures:
        for check in signature.checks:
            words = await _read(transport, check, unit)
            if words is None or not check.accepts(words):
                break
        else:
            return Identity(unit, signature.profile, signature.description)
    return Identity(unit, None, "answers, but matches no profile")
