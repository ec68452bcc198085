"""The edge agent: pollers, sampler, outbox writer and uplink in one TaskGroup.

::

    bus pollers ──> device health ──> sampler ──> writer ──> outbox (SQLite)
      (one task per bus)               (clock guard)   │           │
                                                       └─ live ──> uplink <── acks ── hub

Shutdown (SIGTERM, or :meth:`Agent.stop`): the pollers and the sampler stop,
the writer commits what it holds, the uplink gets a short grace to send it
and collect acks, then closes the socket (1000) and deletes what was acked.
Everything unacked stays in the outbox for the next start. The whole of it is
bounded by ``shutdown_deadline_s``, whatever state the agent is in (a poll
waiting on a silent device, a handshake with a hub that never answers, a
write in progress): each step gets what remains of that budget, a task that
ignores cancellation is cancelled again (CPython gh-86296) until the deadline,
and the writer's last write is never cut in half (edge/outbox_writer.py). ``ems edge
run`` adds a hard stop behind it (edge/cli.py). Under systemd the
agent reports ``READY=1`` once running and ``WATCHDOG=1`` while the sampler
ticks (edge/sdnotify.py).

Exceptions::

    AgentError           the agent cannot start (a profile file, the buffer); one line
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from drivers.errors import ProfileError
from drivers.profiles import GENERIC, fixed_map
from edge.clock import ClockGuard, ClockSource, SystemClock, boot_id
from edge.config import EdgeConfig, Role, tls_context
from edge.energy import EnergyTracker, energy_settings
from edge.gateway import Gateway, GatewayError, Target
from edge.gateway_bus import SharedBus
from edge.gateway_cache import RegisterCache
from edge.health import DeviceHealth, Transition, health_frame
from edge.hubtime import HubClock
from edge.memory import trim_periodically
from edge.mqtt_config import MqttPasswordError, link_settings
from edge.mqtt_publish import EdgeMqtt
from edge.outbox import Outbox, OutboxError
from edge.outbox_writer import OutboxWriter
from edge.poller import BUS_REOPEN_BACKOFF, DEVICE_BACKOFF, BusPoller, PolledDevice
from edge.sampler import Sampler, SiteDevice
from edge.sdnotify import Notifier
from edge.uplink import Uplink, UplinkSettings
from telemetry.backoff import BackoffPolicy
from telemetry.mqtt_link import LinkSettings

__all__ = ["Agent", "AgentError", "AgentOptions"]

logger = logging.getLogger(__name__)


class AgentError(Exception):
    """The agent cannot start; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class AgentOptions:
    """Timings a test or a benchmark may shorten; the defaults suit a Pi."""

    uplink: UplinkSettings = field(default_factory=UplinkSettings)
    flush_interval_s: float = 0.5
    device_backoff: BackoffPolicy = DEVICE_BACKOFF
    bus_reopen_backoff: BackoffPolicy = BUS_REOPEN_BACKOFF
    shutdown_grace_s: float = 2.0  # for the last readings to be sent and acked
    shutdown_deadline_s: float = 8.0  # the whole shutdown, from stop() (systemd allows 20 s)
    clock_settle_s: float = 5.0


async def _cancel(tasks: list[asyncio.Task[None]], *, deadline: float) -> None:
    """Cancel tasks and wait until they are done, cancelling again while they run.

    Python 3.11's ``asyncio.wait_for`` (used inside pymodbus; no longer in our
    code, edge/uplink.py) can swallow a cancellation that lands as its inner
    future completes (CPython gh-86296, fixed in 3.12): one ``cancel()`` is not
    always enough, so it is repeated,
    every 0.2 s, until ``deadline`` (the loop's time); then the stragglers are
    named in the log and left (the hard stop of edge/cli.py ends them).
    """
    loop = asyncio.get_running_loop()
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            logger.error(
                "still running at the shutdown deadline: %s",
                ", ".join(sorted(task.get_name() for task in pending)),
                extra={"tasks": sorted(task.get_name() for task in pending)},
            )
            return
        _, pending = await asyncio.wait(pending, timeout=min(0.2, left))


def _check_profiles(config: EdgeConfig) -> None:
    """Load generic profile files now: a broken one is a start-up error, not a failing device."""
    for index, device in enumerate(config.devices):
        if device.profile == GENERIC:
            try:
                fixed_map(GENERIC, device.profile_file)
            except (ProfileError, OSError) as err:
                raise AgentError(f"config error: device[{index}].profile_file: {err}") from err


class Agent:
    def __init__(
        self,
        config: EdgeConfig,
        *,
        token: str,
        clock: ClockSource | None = None,
        options: AgentOptions | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self._token = token
        self.clock = clock or SystemClock()
        self.options = options or AgentOptions()
        self.notifier = notifier or Notifier()
        self._stop = asyncio.Event()
        self._transitions: deque[Transition] = deque(maxlen=1000)
        self._transition_event = asyncio.Event()
        self.health = {
            device.name: DeviceHealth(device.name, self.options.device_backoff)
            for device in config.devices
        }
        self.sampler: Sampler | None = None
        self.uplink: Uplink | None = None
        self.writer: OutboxWriter | None = None
        self.mqtt: EdgeMqtt | None = None  # Home Assistant over MQTT, when [mqtt] is set
        self._mqtt_link: LinkSettings | None = None
        self.running = asyncio.Event()
        # [gateway] (docs/gateway.md): the buses shared with its clients, and the server.
        self.shared_buses: dict[str, SharedBus] = {}
        self.gateway: Gateway | None = None
        if config.gateway is not None:
            cache = RegisterCache()
            self.shared_buses = {
                bus.name: SharedBus(bus, config.devices_on(bus.name), cache) for bus in config.buses
            }
            targets = {
                config.gateway.units[d.name]: Target(
                    d.name, d.unit, self.shared_buses[d.bus], self.health[d.name]
                )
                for d in config.devices
            }
            self.gateway = Gateway(config.gateway, targets, cache)

    def stop(self) -> None:
        """Begin a clean shutdown (safe to call from a signal handler)."""
        self._stop.set()

    def _on_transition(self, transition: Transition) -> None:
        self._transitions.append(transition)
        self._transition_event.set()
        if self.uplink is not None:
            self.uplink.health_changed()

    def _on_identity(self, device: PolledDevice) -> None:
        # The hub hears of it at once: the frame of the device's first good read went
        # before its identity was read (edge/poller.py, at the end of that cycle).
        if self.uplink is not None:
            self.uplink.health_changed()

    def health_frame(self) -> str:
        """The devices' health as the hub is told it (docs/protocol.md, "Device health")."""
        roles = {device.name: device.role.value for device in self.config.devices}
        # The pollers time their reads with time.monotonic (edge/poller.py).
        frame = health_frame(
            ((health, roles[name]) for name, health in self.health.items()),
            time.monotonic(),
            self.config.interval_s,
            self.config.timezone,
        )
        return frame.wire()

    async def run(self) -> None:
        _check_profiles(self.config)
        if self.config.mqtt is not None:
            try:
                self._mqtt_link = link_settings(self.config.mqtt)
            except MqttPasswordError as err:
                raise AgentError(f"config error: {err.key}: {err.reason}") from err
        config = self.config
        boot = boot_id()
        try:
            async with Outbox.open(config.buffer.path, max_bytes=config.buffer.max_bytes) as outbox:
                await outbox.drop_unstampable(boot=boot)
                parked = await outbox.unpark()
                if parked:
                    logger.warning(
                        "%d readings the hub had failed on are offered again",
                        parked,
                        extra={"count": parked},
                    )
                await self._run_with(outbox, boot)
        except (OutboxError, GatewayError) as err:
            raise AgentError(str(err)) from err
        logger.info("agent stopped")

    async def _run_with(self, outbox: Outbox, boot: str) -> None:
        config, options = self.config, self.options
        # Energy goes on from the last reading kept (docs/protocol.md, "Energy").
        energy = EnergyTracker(
            energy_settings(config),
            boot=boot,
            record=await outbox.energy_record(),
            time_scale=config.energy.time_scale,
            totals=outbox.committed_totals,
        )
        hub_clock = HubClock() if config.clock.hub_fallback else None
        uplink = Uplink(
            outbox,
            url=config.device_url,
            token=self._token,
            tls=tls_context(config.hub),
            settings=options.uplink,
            health=self.health_frame,
            hub_clock=hub_clock,
            monotonic=lambda: self.clock.sample().mono,
        )
        writer = OutboxWriter(
            outbox,
            boot=boot,
            on_committed=uplink.offer,
            on_restamped=uplink.rescan,
            flush_interval_s=options.flush_interval_s,
        )
        roles = {device.name: device.role for device in config.devices}
        devices: dict[Role, DeviceHealth] | list[SiteDevice] = (
            [SiteDevice(d.name, d.role, d.total, self.health[d.name]) for d in config.devices]
            if config.per_device
            else {roles[name]: health for name, health in self.health.items()}
        )
        sampler = Sampler(
            devices,
            interval_s=config.interval_s,
            # A value may be one full poll cycle old, plus a read that ran to its timeout.
            max_age_s=2 * config.interval_s + max(bus.timeout_s for bus in config.buses) * 2,
            clock=self.clock,
            guard=ClockGuard(
                require_sync=config.clock.require_sync,
                jump_tolerance_s=config.clock.jump_tolerance_s,
                settle_s=options.clock_settle_s,
            ),
            sink=writer.put,
            hub_clock=hub_clock,
            energy=energy,
        )
        self.uplink, self.writer, self.sampler = uplink, writer, sampler
        if config.mqtt is not None and self._mqtt_link is not None:
            self.mqtt = EdgeMqtt(
                site=config.device_id,
                config=config.mqtt,
                link=self._mqtt_link,
                devices=config.devices,
                health=self.health,
                interval_s=config.interval_s,
                max_age_s=sampler.max_age_s,
                monotonic=lambda: self.clock.sample().mono,
                # Committed totals only: a total published never goes down (edge/outbox.py).
                site_energy=lambda: outbox.committed_totals,
            )
        pollers = [
            BusPoller(
                bus,
                [PolledDevice(d, self.health[d.name]) for d in config.devices_on(bus.name)],
                interval_s=config.interval_s,
                # A safety net over the transport's own timeouts: a plan of ten
                # requests, each timing out once and retried (drivers/bus.py).
                read_timeout_s=bus.timeout_s * 20 + 1.0,
                bus_backoff=options.bus_reopen_backoff,
                on_transition=self._on_transition,
                on_identity=self._on_identity,
                **self._shared_kwargs(bus.name),
            )
            for bus in config.buses
            if config.devices_on(bus.name)
        ]
        if self.gateway is not None:
            await self.gateway.listen()  # a port in use stops the start here, in one line
        async with asyncio.TaskGroup() as tasks:
            producers = [
                tasks.create_task(poller.run(), name=f"poller[{poller.bus.name}]")
                for poller in pollers
            ]
            producers.append(tasks.create_task(sampler.run(), name="sampler"))
            if self.gateway is not None:
                producers.append(tasks.create_task(self.gateway.run(), name="gateway"))
            writer_task = tasks.create_task(writer.run(), name="outbox.writer")
            uplink_task = tasks.create_task(uplink.run(), name="uplink")
            helpers = [
                tasks.create_task(self._record_health(outbox), name="health.recorder"),
                tasks.create_task(self._watchdog(sampler), name="sd_notify.watchdog"),
                # Catch-ups after hub restarts leave freed heap behind (edge/memory.py).
                tasks.create_task(trim_periodically(), name="memory.trim"),
            ]
            if self.mqtt is not None:
                # Queues only: a broker down or slow never holds up the rest (edge/mqtt_publish.py).
                helpers.append(tasks.create_task(self.mqtt.run(), name="mqtt"))
            self.notifier.ready(f"polling {len(config.devices)} devices")
            self.running.set()
            logger.info(
                "agent %s running: %d devices on %d buses, to %s",
                config.device_id,
                len(config.devices),
                len(pollers),
                config.device_url,
                extra={
                    "device_id": config.device_id,
                    "devices": len(config.devices),
                    "buses": len(pollers),
                    "url": config.device_url,
                },
            )
            await self._stop.wait()
            await self._shut_down(producers, writer_task, [uplink_task, *helpers])
        await self._write_transitions(outbox)

    def _shared_kwargs(self, bus: str) -> dict[str, Any]:
        """A poller's bus, shared with the gateway when there is one."""
        shared = self.shared_buses.get(bus)
        return {} if shared is None else {"open_bus": shared.open, "arbiter": shared.arbiter}

    async def _shut_down(
        self,
        producers: list[asyncio.Task[None]],
        writer_task: asyncio.Task[None],
        others: list[asyncio.Task[None]],
    ) -> None:
        """Stop within ``shutdown_deadline_s``, keeping every reading taken (module docstring)."""
        assert self.writer is not None
        assert self.uplink is not None
        writer, uplink, options = self.writer, self.uplink, self.options
        loop = asyncio.get_running_loop()
        deadline = loop.time() + options.shutdown_deadline_s
        logger.info("stopping: flushing the buffer")
        self.notifier.stopping()
        # Stop taking readings first; the writer's write under way goes on to its end.
        await _cancel([*producers, writer_task], deadline=deadline - options.shutdown_grace_s)
        try:
            async with asyncio.timeout_at(deadline - 1.0):
                await writer.flush()  # after the write under way, in order
        except OutboxError as err:
            logger.error(
                "could not write the last %d readings: %s",
                writer.pending,
                err,
                extra={"count": writer.pending, "error": str(err)},
            )
        except TimeoutError:
            logger.error(
                "could not write the last %d readings in time: the buffer is too slow",
                writer.pending,
                extra={"count": writer.pending},
            )
        await uplink.drain(max(0.0, min(options.shutdown_grace_s, deadline - 1.0 - loop.time())))
        await _cancel(others, deadline=deadline - 0.5)
        # The acks collected last (a cancelled delete loop may have left some).
        try:
            async with asyncio.timeout_at(deadline):
                await uplink.flush_acked()
        except TimeoutError:
            logger.warning("acked readings not deleted in time: the hub stores them once again")

    async def _record_health(self, outbox: Outbox) -> None:
        while True:
            await self._transition_event.wait()
            self._transition_event.clear()
            await self._write_transitions(outbox)

    async def _write_transitions(self, outbox: Outbox) -> None:
        while self._transitions:
            transition = self._transitions.popleft()
            try:
                await outbox.record_health(
                    transition.device,
                    transition.state.value,
                    transition.error,
                    at=datetime.now(UTC),
                )
            except OutboxError as err:
                logger.warning(
                    "could not record the health of %s: %s",
                    transition.device,
                    err,
                    extra={"device": transition.device, "error": str(err)},
                )

    async def _watchdog(self, sampler: Sampler) -> None:
        interval = self.notifier.watchdog_interval_s
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            # Only a live agent pets the watchdog: the sampler must have ticked lately.
            age = self.clock.sample().mono - sampler.last_tick_mono
            if age <= 3 * self.config.interval_s + interval:
                self.notifier.watchdog()
            else:
                logger.error("sampler stalled: not petting the systemd watchdog")
