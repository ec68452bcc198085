"""What answered at a unit id: a SunSpec device's own name, else the profile whose registers fit.

For ``ems edge scan``. A SunSpec device says who it is: the common model
(SunSpec Information Model Reference, model 1) carries the manufacturer
``Mn`` and the model ``Md`` as strings right after the "SunS" marker. A
catalogue entry whose ``sunspec_manufacturer`` is that ``Mn`` (and whose
``sunspec_models``, if any, holds the model after the common one) is proposed
for it; any other SunSpec device is read with ``sunspec``. Other
devices do not, so each catalogue entry may carry a signature
(:class:`~drivers.profiles.device_profile.Signature`): a few registers it
documents whose values only make sense for that device (a rated voltage class,
a mode code, a plausible mains frequency). A unit matches when every check reads
and falls in its range; the first profile that matches, in catalogue order, wins
(a family lists its most specific model first). A check that is refused
(exception 02), malformed or silent is simply no match: identification never
fails a scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from drivers.errors import DriverError, ExceptionResponse
from drivers.profiles import PROFILES, sunspec
from drivers.profiles.device_profile import Check, Signature
from drivers.registers import RegisterType
from drivers.transports import Transport

__all__ = ["SIGNATURES", "Identity", "identify", "signatures"]

_HOLDING = RegisterType.HOLDING
# SunSpec model 1: ID, L, then Mn (16 registers) and Md (16 registers).
_MN_OFFSET: Final = 4
_MD_OFFSET: Final = 20
_STRING_REGISTERS: Final = 16


def signatures() -> tuple[tuple[str, Signature], ...]:
    """(profile name, signature) of every catalogue entry that has one, in catalogue order."""
    return tuple(
        (profile.name, profile.signature)
        for profile in PROFILES.values()
        if profile.signature is not None
    )


SIGNATURES: Final = signatures()


@dataclass(frozen=True)
class Identity:
    """What answered at ``unit``: a profile (None: nothing matched) and how it was told."""

    unit: int
    profile: str | None  # a catalogue name
    description: str


async def _read(transport: Transport, check: Check, unit: int) -> tuple[int, ...] | None:
    try:
        return await transport.read(check.register_type, check.address, check.count, unit=unit)
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
            return Identity(unit, "sunspec", f"SunSpec device at {base}")
        maker = _string(mn) or "?"
        model = _string(md) or "?"
        description = f'SunSpec device at {base}: "{maker}" model "{model}"'
        first = await _model_after_common(transport, base, unit)
        return Identity(unit, _sunspec_profile(maker, first), description)
    return None


async def _model_after_common(transport: Transport, base: int, unit: int) -> int | None:
    """The ID of the model that follows the common model (its L says where), if it reads."""
    try:
        _, length = await transport.read(_HOLDING, base + 2, 2, unit=unit)
        (model_id,) = await transport.read(_HOLDING, base + 4 + length, 1, unit=unit)
    except (DriverError, ValueError):
        return None
    return model_id


def _sunspec_profile(maker: str, first_model: int | None) -> str:
    """The catalogue entry for a SunSpec device of ``maker``, else the generic ``sunspec``."""
    for profile in PROFILES.values():
        if not profile.sunspec_manufacturer:
            continue
        if profile.sunspec_manufacturer.casefold() != maker.casefold():
            continue
        if not profile.sunspec_models or first_model in profile.sunspec_models:
            return profile.name
    return "sunspec"


def _string(words: Sequence[int]) -> str:
    raw = bytes(byte for word in words for byte in word.to_bytes(2, "big"))
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace").strip()


async def identify(
    transport: Transport,
    unit: int,
    candidates: Sequence[tuple[str, Signature]] = SIGNATURES,
) -> Identity:
    """Who answers at ``unit``: SunSpec first (it names itself), then each signature in turn."""
    found = await _sunspec(transport, unit)
    if found is not None:
        return found
    for name, signature in candidates:
        for check in signature.checks:
            words = await _read(transport, check, unit)
            if words is None or not check.accepts(words):
                break
        else:
            return Identity(unit, name, signature.description)
    return Identity(unit, None, "answers, but matches no profile")
