"""The simple publisher: plant readings to the hub's device door.

A device publisher at its simplest, with a plant:

    export DEVICE_ID="ems_001" API_TOKEN="..."      # HUB_URL defaults to ws://127.0.0.1:8000
    python -m simulation.client [--interval 1] [--seq] [--devices N] [--scenario sunny]

It connects to ``HUB_URL + /ws/device/{DEVICE_ID}`` with ``Authorization: Bearer
<API_TOKEN>`` and sends one reading (docs/protocol.md, "A reading") per ``--interval``
seconds, built from a simulated plant's sections and validated with
``telemetry.Reading`` before it leaves; ``ts`` is the wall clock in UTC. The plant
runs ``--speed`` times faster than the wall clock.

- ``seq``: none by default (the hub stores but never acks such readings,
  docs/protocol.md). With ``--seq``, a counter starting at the wall clock in
  milliseconds, so it keeps increasing across restarts (docs/protocol.md, ``seq``)
  while fewer than 1,000 readings a second are sent. Acks and errors from the hub are logged.
- No buffer: readings due while disconnected are not sent (the edge agent is the
  part that never loses a reading; this is a load and demo tool).
- Each reading carries ``energy`` (docs/protocol.md, "Energy"), from the plant's
  counters and powers through the agent's own integrator
  (telemetry/energy_increments.py), on the plant's clock: at ``--speed 60`` a
  reading a second carries a simulated minute of energy, over ``span_s`` of 1 s
  of wall time. The energy of a reading that was not sent is not sent.
- Reconnects after a capped exponential delay with jitter, logged with the delay;
  the attempt count resets once a connection is open.
- SIGINT / SIGTERM: closes with 1000 and exits 0.
- ``--devices N``: N publishers in one process (one TaskGroup, one named task
  each) for device ids ``DEVICE_ID-0001`` .. ``DEVICE_ID-N``, each with its own
  plant seed (``--seed + i``), their first connects spread over one interval.
  Tokens: ``API_TOKEN`` for all, or per device from ``--tokens FILE`` (lines of
  ``DEVICE_ID TOKEN``, as ``ems hub token add`` prints them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from simulation.plant import Plant, Scenario
from telemetry import AckFrame, ErrorFrame, Reading, is_valid_device_id
from telemetry.backoff import Backoff, BackoffPolicy
from telemetry.energy_increments import EnergyIntegrator, EnergySettings

logger = logging.getLogger(__name__)

DEFAULT_HUB_URL: Final = "ws://127.0.0.1:8000"
# What a failed connection attempt or a dropped connection raises; all are retried.
RETRYABLE: Final = (OSError, TimeoutError, WebSocketException)
# Reconnects: 0.5 s doubling to 30 s, equal jitter (telemetry/backoff.py): a fleet restarted
# together spreads out, no client hammers the hub.
RECONNECT_BACKOFF: Final = BackoffPolicy(0.5, 30.0)


class ConfigError(Exception):
    """The command line or the environment cannot run a publisher; carries the one-line reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PublisherConfig:
    hub_url: str
    device_id: str
    token: str
    interval_s: float = 1.0
    send_seq: bool = False
    scenario: Scenario = Scenario.SUNNY
    seed: int = 0
    speed: float = 1.0
    backoff: BackoffPolicy = RECONNECT_BACKOFF
    start_delay_s: float = 0.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 2.0

    @property
    def url(self) -> str:
        return f"{self.hub_url.rstrip('/')}/ws/device/{self.device_id}"


@dataclass(slots=True)
class PublisherStats:
    """Counters of one publisher's life, logged when it stops."""

    connections: int = 0
    failures: int = 0
    sent: int = 0
    acked: int = 0
    errors: int = 0


class Publisher:
    """One simulated device sending plant readings to the hub until ``stop`` is set."""

    def __init__(self, config: PublisherConfig) -> None:
        self.config = config
        self.stats = PublisherStats()
        self._plant = Plant(config.scenario, seed=config.seed, start=datetime.now(UTC))
        self._plant_clock = time.monotonic()
        self._seq = time.time_ns() // 1_000_000
        # On the plant's clock: five readings' worth of plant time, at least 10 s, as the agent.
        gap = max(5 * config.interval_s * config.speed, 10.0)
        self._energy = EnergyIntegrator(EnergySettings(max_gap_s=gap))
        self._last_ts: datetime | None = None
        # Jitter differs per device, reproducibly.
        self._backoff = Backoff(
            config.backoff, random.Random(f"backoff:{config.device_id}:{config.seed}")
        )

    async def run(self, stop: asyncio.Event) -> PublisherStats:
        config = self.config
        if config.start_delay_s > 0 and await _wait(stop, config.start_delay_s):
            return self.stats
        while not stop.is_set():
            failure = "connection ended"
            try:
                failure = await self._connect_and_publish(stop)
            except* RETRYABLE as group:
                failure = _describe(group)
            if stop.is_set():
                break
            delay = self._backoff.next_delay()
            self.stats.failures += 1
            logger.warning(
                "publisher[%s]: %s; reconnecting in %.2f s (attempt %d)",
                config.device_id,
                failure,
                delay,
                self._backoff.failures,
            )
            if await _wait(stop, delay):
                break
        logger.info(
            "publisher[%s]: stopped after %d readings (%d acked, %d rejected), %d connections",
            config.device_id,
            self.stats.sent,
            self.stats.acked,
            self.stats.errors,
            self.stats.connections,
        )
        return self.stats

    async def _connect_and_publish(self, stop: asyncio.Event) -> str:
        """One connection's life: why it ended if the hub ended it; raises if it failed."""
        config = self.config
        name = f"publisher[{config.device_id}]"
        async with connect(
            config.url,
            additional_headers={"Authorization": f"Bearer {config.token}"},
            open_timeout=config.open_timeout_s,
            close_timeout=config.close_timeout_s,
        ) as ws:
            self.stats.connections += 1
            self._backoff.reset()
            logger.info("%s: connected to %s", name, config.url)
            # Set when the session must end: stop requested, or the hub closed.
            ended = asyncio.Event()
            async with asyncio.TaskGroup() as tasks:
                relay = tasks.create_task(_relay(stop, ended), name=f"{name}.stop")
                receiver = tasks.create_task(self._receive_loop(ws, ended), name=f"{name}.receive")
                tasks.create_task(self._send_loop(ws, ended), name=f"{name}.send")
                # The sender ends by itself once `ended` is set; if it fails instead, the
                # group cancels this wait and raises its error.
                await ended.wait()
                relay.cancel()
                receiver.cancel()
            return f"hub closed the connection ({ws.close_code} {ws.close_reason or ''})".rstrip()

    async def _send_loop(self, ws: ClientConnection, ended: asyncio.Event) -> None:
        """Send one reading per interval until ``ended``; a dropped connection raises."""
        interval = self.config.interval_s
        next_at = time.monotonic()
        while not ended.is_set():
            frame = self.next_frame()
            if frame is not None:
                await ws.send(frame)
                self.stats.sent += 1
            next_at += interval
            # Keep the cadence without catching up on missed ticks (after a stall).
            next_at = max(next_at, time.monotonic())
            if await _wait(ended, next_at - time.monotonic()):
                return

    async def _receive_loop(self, ws: ClientConnection, ended: asyncio.Event) -> None:
        """Log what the hub says; sets ``ended`` when the connection closes."""
        try:
            await self._receive_frames(ws)
        finally:
            ended.set()

    async def _receive_frames(self, ws: ClientConnection) -> None:
        device_id = self.config.device_id
        async for message in ws:
            try:
                data = json.loads(message)
            except json.JSONDecodeError:
                logger.warning("publisher[%s]: hub sent a non-JSON frame", device_id)
                continue
            kind = data.get("type") if isinstance(data, dict) else None
            try:
                if kind == "ack":
                    ack = AckFrame.model_validate(data)
                    self.stats.acked += sum(b - a + 1 for a, b in ack.ranges)
                    logger.debug("publisher[%s]: acked %s", device_id, ack.ranges)
                elif kind == "error":
                    error = ErrorFrame.model_validate(data)
                    self.stats.errors += 1
                    logger.warning(
                        "publisher[%s]: hub rejected seq %s: %s", device_id, error.seq, error.reason
                    )
                else:
                    logger.debug("publisher[%s]: ignoring frame of type %r", device_id, kind)
            except ValidationError as err:
                logger.warning("publisher[%s]: malformed %s frame: %s", device_id, kind, err)

    def next_frame(self) -> str | None:
        """Advance the plant to now and encode its reading; ``None`` if it is invalid (logged)."""
        now_monotonic = time.monotonic()
        dt_s = (now_monotonic - self._plant_clock) * self.config.speed
        if dt_s > 0:
            self._plant.step(dt_s)
            self._plant_clock = now_monotonic
        state = self._plant.state
        sections = state.sections()
        ts = datetime.now(UTC)
        payload: dict[str, object] = {"ts": ts, **sections}
        if self.config.send_seq:
            payload["seq"] = self._seq
        try:
            reading = Reading.model_validate(payload)
        except ValidationError as err:
            # A plant bug, not a network problem: skip this reading, keep the connection.
            logger.error("publisher[%s]: plant reading is invalid: %s", self.config.device_id, err)
            return None
        if self.config.send_seq:
            self._seq += 1
        wire = reading.to_wire()
        increments = self._energy.step(state.time.timestamp(), sections)
        if increments is not None and self._last_ts is not None:
            energy = increments.wire()
            energy["span_s"] = round((ts - self._last_ts).total_seconds(), 3)  # wall time
            wire["energy"] = energy
        self._last_ts = ts
        return json.dumps(wire, separators=(",", ":"))


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()


async def _wait(stop: asyncio.Event, delay_s: float) -> bool:
    """Sleep ``delay_s`` unless ``stop`` is set first; whether it was."""
    if delay_s > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay_s)
    return stop.is_set()


def _describe(group: BaseExceptionGroup[BaseException]) -> str:
    """One line for the log: the first leaf exception, with the hub's answer if any."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    if isinstance(leaf, InvalidStatus):
        return f"hub refused the connection with HTTP {leaf.response.status_code}"
    if isinstance(leaf, ConnectionClosed):
        frame = leaf.rcvd
        if frame is not None:
            return f"hub closed the connection ({frame.code} {frame.reason!r})".rstrip()
        return "connection lost"
    return f"{type(leaf).__name__}: {leaf}"


async def run_publishers(configs: Sequence[PublisherConfig], stop: asyncio.Event) -> None:
    """Run every publisher in one TaskGroup until ``stop`` is set."""
    async with asyncio.TaskGroup() as tasks:
        for config in configs:
            tasks.create_task(Publisher(config).run(stop), name=f"publisher[{config.device_id}]")


def read_tokens(path: Path) -> dict[str, str]:
    """``DEVICE_ID TOKEN`` per line; blank lines and ``#`` comments skipped."""
    tokens: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 2:
            raise ConfigError(f"{path}:{number}: expected 'DEVICE_ID TOKEN'")
        tokens[parts[0]] = parts[1]
    return tokens


def build_configs(args: argparse.Namespace, env: Mapping[str, str]) -> list[PublisherConfig]:
    """Publisher configs from the command line and the environment (``ConfigError`` if unusable)."""
    device_id = env.get("DEVICE_ID", "").strip()
    if not device_id:
        raise ConfigError("DEVICE_ID is not set")
    hub_url = env.get("HUB_URL", "").strip() or DEFAULT_HUB_URL
    if not hub_url.startswith(("ws://", "wss://")):
        raise ConfigError(f"HUB_URL must start with ws:// or wss://, got {hub_url!r}")
    try:
        scenario = Scenario.parse(args.scenario)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if args.devices is None:
        device_ids = [device_id]
    else:
        device_ids = [f"{device_id}-{n:04d}" for n in range(1, args.devices + 1)]
    tokens = read_tokens(args.tokens) if args.tokens is not None else {}
    shared_token = env.get("API_TOKEN", "").strip()
    configs: list[PublisherConfig] = []
    for index, name in enumerate(device_ids):
        if not is_valid_device_id(name):
            raise ConfigError(f"device id {name!r} is not 1-64 characters of A-Z a-z 0-9 _ - .")
        token = tokens.get(name, shared_token)
        if not token:
            raise ConfigError(f"no token for {name}: set API_TOKEN or list it in --tokens")
        configs.append(
            PublisherConfig(
                hub_url=hub_url,
                device_id=name,
                token=token,
                interval_s=args.interval,
                send_seq=args.seq,
                scenario=scenario,
                seed=args.seed + index,
                speed=args.speed,
                start_delay_s=args.interval * index / len(device_ids),
            )
        )
    return configs


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulation.client",
        description="Send simulated plant readings to the hub's device door "
        "(env: DEVICE_ID, API_TOKEN, HUB_URL).",
    )
    p.add_argument("--interval", type=_positive, default=1.0, help="seconds between readings")
    p.add_argument("--seq", action="store_true", help="send a seq counter (the hub acks it)")
    p.add_argument(
        "--devices", type=_count, default=None, help="run N publishers: DEVICE_ID-0001 .."
    )
    p.add_argument("--tokens", type=Path, default=None, help="file of 'DEVICE_ID TOKEN' lines")
    p.add_argument("--scenario", default=Scenario.SUNNY.value, help="plant scenario")
    p.add_argument("--seed", type=int, default=0, help="plant seed (device i: seed + i)")
    p.add_argument("--speed", type=_positive, default=1.0, help="plant time per wall time")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    return p


async def _main_async(configs: Sequence[PublisherConfig]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_publishers(configs, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        configs = build_configs(args, os.environ)
    except ConfigError as err:
        sys.stderr.write(f"error: {err.reason}\n")
        return 2
    except OSError as err:
        sys.stderr.write(f"error: cannot read --tokens: {err}\n")
        return 2
    asyncio.run(_main_async(configs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
