"""The device driver the edge agent uses: a profile plus a unit on a bus.

``await device.read()`` runs the profile's read plan (one transaction per planned
request, on the bus's transport, which serialises them with the other devices
of the bus) and returns a frozen :class:`DeviceReading`, or raises a
:class:`~drivers.errors.DriverError`. Values are decoded only when every request
of the plan succeeded: a reading never mixes old and new registers.

SunSpec devices are discovered on the first read (a profile may read the chain
its vendor's way, ``DeviceProfile.sunspec_map``); the discovered map is kept
until a read fails with an exception response (the device may have been
replaced or reconfigured), then discovered again.

A profile's quirks are kept here, never in the poller: a device whose profile
has a ``settle_s`` gets that much silence before its first request on a newly
opened transport (the poller makes a new :class:`Device` each time it opens the
bus), as its vendor's document asks; one with a ``command_gap_s`` gets that much
silence between the end of one of its requests and the start of the next (a
Growatt asks for 850 ms), within a read and from one read to the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

from drivers.errors import ExceptionCode, ExceptionResponse, ModbusError, NoResponse
from drivers.identity import DeviceIdentity, decode_identity
from drivers.profile import RegisterImage, RegisterMap, Sections, Value, decode_map
from drivers.profiles import DeviceProfile, get_profile, sunspec
from drivers.registers import RegisterType
from drivers.transports.base import Transport

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceReading:
    """One device's decoded values, by protocol section, and when they were read."""

    sections: Mapping[str, Mapping[str, Value]]
    read_at: datetime  # wall clock (UTC) when the last request completed
    duration_s: float  # from the first request to the last answer
    transactions: int

    def section(self, name: str) -> Mapping[str, Value]:
        return self.sections.get(name, MappingProxyType({}))


def _freeze(sections: Sections) -> Mapping[str, Mapping[str, Value]]:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in sections.items()})


class Pacer:
    """At least ``gap_s`` of silence between the end of one request and the next one."""

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self._last_end: float | None = None  # monotonic

    async def wait(self) -> None:
        if self._last_end is not None:
            wait = self._last_end + self.gap_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    def ended(self) -> None:
        self._last_end = time.monotonic()


async def run_plan(
    transport: Transport, reg_map: RegisterMap, unit: int, pacer: Pacer | None = None
) -> RegisterImage:
    """Every request of ``reg_map``'s plan, as a register image, paced by ``pacer``."""
    image: RegisterImage = {}
    for request in reg_map.plan:
        address = reg_map.wire_address(request.address)  # the same unless byte-addressed
        if pacer is not None:
            await pacer.wait()
        try:
            values = await transport.read(request.register_type, address, request.count, unit=unit)
        finally:
            if pacer is not None:
                pacer.ended()
        table = image.setdefault(request.register_type, {})
        for i, value in enumerate(values):
            table[request.address + i] = value
    return image


class Device:
    """A device on a bus: ``read()`` decodes it with its profile."""

    def __init__(
        self,
        transport: Transport,
        *,
        unit: int,
        profile: str | DeviceProfile | RegisterMap,
        name: str = "",
    ) -> None:
        """``profile``: a catalogue name or entry, or a register map (a generic profile)."""
        self.transport = transport
        self.unit = unit
        self.name = name or f"unit {unit}"
        if isinstance(profile, str):
            profile = get_profile(profile)
        if isinstance(profile, RegisterMap):
            self._map: RegisterMap | None = profile
            self._discover = False
            self._sunspec_map: Callable[[sunspec.Chain], RegisterMap] = sunspec.register_map
            self.settle_s = 0.0
            self.command_gap_s = 0.0
            self._identity: RegisterMap | None = None
            self._vendor = ""
        else:
            self._map = profile.register_map
            self._discover = profile.register_map is None
            self._sunspec_map = profile.sunspec_map or sunspec.register_map
            self.settle_s = profile.settle_s
            self.command_gap_s = profile.command_gap_s
            self._identity = profile.identity
            # The generic SunSpec profile's vendor is the alliance, not a maker.
            generic_sunspec = self._discover and not profile.sunspec_manufacturer
            self._vendor = "" if generic_sunspec else profile.vendor
        self._settled = self.settle_s == 0.0
        # Whether read_identity has been tried on this driver (one per connection).
        self.identity_tried = False
        # Kept across reads: the gap also holds from one poll to the next.
        self._pacer = Pacer(self.command_gap_s) if self.command_gap_s else None

    @property
    def register_map(self) -> RegisterMap | None:
        """The map in use (None for a SunSpec device not discovered yet)."""
        return self._map

    async def _read_holding(self, address: int, count: int) -> Sequence[int]:
        return await self.transport.read(RegisterType.HOLDING, address, count, unit=self.unit)

    async def _resolve(self) -> RegisterMap:
        if self._map is None:
            chain = await sunspec.discover(self._read_holding, unit=self.unit)
            logger.info(
                "%s: SunSpec at %d, models %s",
                self.name,
                chain.base,
                [m.model_id for m in chain.models],
            )
            self._map = self._sunspec_map(chain)
            if self._discover:
                self._identity = sunspec.chain_identity(chain)
        return self._map

    async def read(self) -> DeviceReading:
        if not self._settled:
            logger.debug("%s: %.1f s of silence after connecting", self.name, self.settle_s)
            await asyncio.sleep(self.settle_s)
            self._settled = True
        started = time.monotonic()
        before = self.transport.transactions
        reg_map = await self._resolve()
        try:
            image = await run_plan(self.transport, reg_map, self.unit, self._pacer)
        except ExceptionResponse:
            if self._discover:
                self._map = None  # re-discover on the next read
            raise
        sections = decode_map(reg_map, image)
        return DeviceReading(
            sections=_freeze(sections),
            read_at=datetime.now(UTC),
            duration_s=time.monotonic() - started,
            transactions=self.transport.transactions - before,
        )

    async def read_identity(self) -> DeviceIdentity:
        """The device's maker, model, serial number and firmware (drivers/identity.py).

        Read with the device's pacing, after :meth:`read` (a SunSpec device's common
        model is known once its chain is discovered); raises what :meth:`read`
        raises. A device whose profile names no identity registers gives only the
        catalogue's vendor (none for a SunSpec or generic one: its maker varies).
        """
        self.identity_tried = True
        if self._discover and self._map is None:
            await self._resolve()
        identity = DeviceIdentity()
        if self._identity is not None:
            image = await run_plan(self.transport, self._identity, self.unit, self._pacer)
            identity = decode_identity(self._identity, image)
        return identity.with_manufacturer(self._vendor)


# A gateway's answers for a unit id behind which there is no device.
_GATEWAY_NOBODY: Final = frozenset(
    {ExceptionCode.GATEWAY_PATH_UNAVAILABLE, ExceptionCode.GATEWAY_TARGET_FAILED}
)


async def scan(
    transport: Transport,
    units: Iterable[int],
    *,
    register_type: RegisterType = RegisterType.HOLDING,
    address: int = 0,
) -> tuple[int, ...]:
    """Unit ids that answer on the bus (for ``ems edge scan``).

    Any answer counts, an exception response included (the device is there, the
    register is not); silence, garbage and other units' frames do not, nor does a
    gateway's "path unavailable" or "target device failed to respond" (MAP
    V1.1b3, 7: exception 0x0B "usually means that the device is not present"): a
    Victron GX answers 0x0A for every unit id that has no service.
    """
    found = []
    for unit in units:
        try:
            await transport.read(register_type, address, 1, unit=unit)
        except ExceptionResponse as err:
            if err.code not in _GATEWAY_NOBODY:
                found.append(unit)
        except NoResponse:
            continue
        except ModbusError as err:
            logger.debug("scan: %s", err)
            continue
        else:
            found.append(unit)
    return tuple(found)
