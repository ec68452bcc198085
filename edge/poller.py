"""Bus pollers: one task per bus, its devices read one after another.

A bus carries one transaction at a time (RS485 is half duplex; a TCP gateway
serialises too), so a bus's devices are read in turn, once per sampling
interval, each with its profile's read plan (drivers/device.py). Buses run in
parallel, one task each.

A bus that is lost (the gateway or the simulator stopped, a USB adapter
unplugged) is opened again every couple of seconds, jittered, however long the
outage: a refused TCP connect or a missing serial port costs nothing to try,
and a device that comes back is read again within a few seconds instead of
after a backoff grown through the outage. Once the bus opens, its devices are
read at once: their failures were the bus's, not theirs.

Once per connection, after its first good read, a device's identity (maker,
model, serial number, firmware: drivers/identity.py) is read at the end of the
cycle, still holding the bus (the gateway's arbiter) and with the device's own
pacing, so no reading of that cycle waits for it. A device that refuses it or
answers garbage just has no identity; its polling goes on.

A device whose read fails is marked failing and skipped until its backoff
(capped, jittered: edge/health.py) has passed; the other devices of the bus
keep their cadence. Each read is also bounded in time, so a device that hangs
past its transport's timeout cannot stall the bus either.

The only module of the agent that talks to the drivers: it opens their
transports and maps their errors to a device's health.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from drivers.bus import BusConfig
from drivers.device import Device, DeviceReading
from drivers.errors import DriverError, NotConnected
from drivers.profile import RegisterMap
from drivers.profiles import GENERIC, fixed_map
from drivers.transports import Transport, open_transport
from edge.config import DeviceConfig
from edge.gateway_bus import BusArbiter
from edge.health import DeviceHealth, DeviceState, Transition, Values
from telemetry.backoff import Backoff, BackoffPolicy

__all__ = ["BusPoller", "PolledDevice", "make_device"]

logger = logging.getLogger(__name__)

DEVICE_BACKOFF: Final = BackoffPolicy(1.0, 60.0)
# Reopening a lost bus: 0.5 s, 1 s, then 1.25-2.5 s (equal jitter) for as long as it lasts.
BUS_REOPEN_BACKOFF: Final = BackoffPolicy(0.5, 2.5)
# While a bus stays down, its "unavailable" warning is repeated at most this often.
BUS_DOWN_LOG_EVERY_S: Final = 60.0


def make_device(transport: Transport, device: DeviceConfig) -> Device:
    """A driver for a configured device (a generic profile's map is loaded from its file)."""
    profile: str | RegisterMap = device.profile
    if device.profile == GENERIC:
        loaded = fixed_map(GENERIC, device.profile_file)
        assert loaded is not None  # a generic map always comes from its file
        profile = loaded
    return Device(transport, unit=device.unit, profile=profile, name=device.name)


def _bus_reason(err: NotConnected) -> str:
    reason = err.reason
    return reason.removeprefix("bus unreachable: ")


def _plain(reading: DeviceReading) -> Values:
    return MappingProxyType({k: MappingProxyType(dict(v)) for k, v in reading.sections.items()})


@dataclass(slots=True)
class PolledDevice:
    config: DeviceConfig
    health: DeviceHealth


class BusPoller:
    """Polls the devices of one bus every ``interval_s`` until cancelled.

    The bus is opened here, and opened again after it was lost (a USB adapter
    unplugged, a gateway restarted): then every device of the bus is failing
    until the bus opens again, retried with backoff.
    """

    def __init__(
        self,
        bus: BusConfig,
        devices: Sequence[PolledDevice],
        *,
        interval_s: float,
        read_timeout_s: float,
        bus_backoff: BackoffPolicy = BUS_REOPEN_BACKOFF,
        on_transition: Callable[[Transition], None] = lambda transition: None,
        on_identity: Callable[[PolledDevice], None] = lambda device: None,
        open_bus: Callable[[], Transport] | None = None,
        clock: Callable[[], float] = time.monotonic,
        arbiter: BusArbiter | None = None,
    ) -> None:
        """``arbiter``: shares the bus with the gateway between cycles (edge/gateway_bus.py)."""
        self.bus = bus
        self.devices = tuple(devices)
        self.interval_s = interval_s
        self.read_timeout_s = read_timeout_s
        self._bus_backoff = Backoff(bus_backoff)
        self._on_transition = on_transition
        self._on_identity = on_identity  # a device's identity was read and differs
        self._open_bus = open_bus or (lambda: open_transport(bus))
        self._clock = clock
        self.arbiter = arbiter or BusArbiter(clock)
        self.cycles = 0
        self._down_logged_at: float | None = None

    @property
    def endpoint(self) -> str:
        return self.bus.endpoint

    async def run(self) -> None:
        while True:
            try:
                async with self._open_bus() as transport:
                    logger.info("bus %s open", self.bus.name, extra={"bus": self.bus.name})
                    self._down_logged_at = None
                    now = self._clock()
                    for device in self.devices:
                        # Failures while the bus was down were the bus's: no device
                        # waits out a backoff grown through the outage.
                        device.health.next_attempt_mono = min(device.health.next_attempt_mono, now)
                    drivers = [make_device(transport, d.config) for d in self.devices]
                    await self._poll_forever(drivers)
            except NotConnected as err:
                await self._bus_down(err)

    async def _bus_down(self, err: NotConnected) -> None:
        """Every device of the bus is unreachable; wait a short, jittered delay to reopen.

        The error names the bus, not the request of whichever device met it first.
        """
        now = self._clock()
        error = f"bus {self.bus.name} unreachable ({self.endpoint}): {_bus_reason(err)}"
        for device in self.devices:
            self._report(device.health.failed(error, now), device)
        delay = self._bus_backoff.next_delay()
        fields = {"bus": self.bus.name, "error": error, "delay_s": round(delay, 3)}
        if self._down_logged_at is None or now - self._down_logged_at >= BUS_DOWN_LOG_EVERY_S:
            self._down_logged_at = now
            logger.warning("%s; opening it again every few seconds", error, extra=fields)
        else:
            logger.debug("%s; opening it again in %.1f s", error, delay, extra=fields)
        await asyncio.sleep(delay)

    async def _poll_forever(self, drivers: Sequence[Device]) -> None:
        next_cycle = self._clock()
        while True:
            async with self.arbiter.poll():
                await self.poll_once(drivers)
            self.cycles += 1
            # Fixed cadence; a cycle longer than the interval starts the next one
            # at once instead of bursting to catch up.
            next_cycle = max(next_cycle + self.interval_s, self._clock())
            self.arbiter.next_poll_at = next_cycle
            await asyncio.sleep(max(0.0, next_cycle - self._clock()))

    async def poll_once(self, drivers: Sequence[Device]) -> None:
        """Read every device of the bus that is due, one after another.

        Raises :class:`NotConnected` when the bus itself is gone.
        """
        for device, driver in zip(self.devices, drivers, strict=True):
            if device.health.due(self._clock()):
                await self._read(device, driver)
        for device, driver in zip(self.devices, drivers, strict=True):
            if not driver.identity_tried and device.health.state is DeviceState.OK:
                await self._identify(device, driver)

    async def _identify(self, device: PolledDevice, driver: Device) -> None:
        """Read the device's identity; a failure leaves what was known before."""
        fields = {"device": device.config.name, "bus": self.bus.name}
        try:
            async with asyncio.timeout(self.read_timeout_s):
                identity = await driver.read_identity()
        except NotConnected:
            raise
        except (DriverError, TimeoutError) as err:
            reason = str(err) or "no answer in time"
            logger.info(
                "device %s: identity not read: %s",
                device.config.name,
                reason,
                extra={**fields, "error": reason},
            )
            return
        if identity != device.health.identity:
            device.health.identity = identity
            self._on_identity(device)
        logger.info(
            "device %s: %s",
            device.config.name,
            ", ".join(f"{k} {v}" for k, v in identity.as_dict().items()) or "no identity",
            extra={**fields, **identity.as_dict()},
        )

    async def _read(self, device: PolledDevice, driver: Device) -> None:
        try:
            async with asyncio.timeout(self.read_timeout_s):
                reading = await driver.read()
        except NotConnected:
            raise
        except DriverError as err:
            self._report(device.health.failed(str(err), self._clock()), device)
            logger.debug(
                "%s: read failed: %s",
                device.config.name,
                err,
                extra={"device": device.config.name, "error": str(err)},
            )
            return
        except TimeoutError:
            error = f"no complete read within {self.read_timeout_s:.1f} s"
            self._report(device.health.failed(error, self._clock()), device)
            return
        self._bus_backoff.reset()
        self._report(device.health.succeeded(_plain(reading), self._clock()), device)

    def _report(self, transition: Transition | None, device: PolledDevice) -> None:
        if transition is None:
            return
        fields = {
            "device": device.config.name,
            "bus": self.bus.name,
            "unit": device.config.unit,
            "state": transition.state.value,
        }
        if transition.error:
            logger.warning(
                "device %s (bus %s, unit %d) failing: %s; retrying with backoff",
                device.config.name,
                self.bus.name,
                device.config.unit,
                transition.error,
                extra={**fields, "error": transition.error},
            )
        elif transition.previous is DeviceState.FAILING:
            logger.info(
                "device %s (bus %s) reads again", device.config.name, self.bus.name, extra=fields
            )
        else:
            logger.info("device %s (bus %s) reads", device.config.name, self.bus.name, extra=fields)
        self._on_transition(transition)
