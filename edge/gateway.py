"""The Modbus TCP gateway: other tools read the agent's devices through it (docs/gateway.md).

An RS485 line has one master and many inverters take a single Modbus TCP
client; the agent is that master and that client, and this server lets Home
Assistant, evcc or a vendor's app read the same devices through it:

- a read of registers the agent polls is answered from its last poll when that
  is at most ``max_age_s`` old (edge/gateway_cache.py), with no bus traffic;
- any other read goes to the device, between the agent's poll cycles, under
  the bus's own transport (edge/gateway_bus.py);
- a write (FC 6, 16) is refused with exception 01 unless ``[gateway]`` allows
  that device and register range; an allowed one goes to the device like a
  read does and is logged.

Clients name a device by its gateway unit id (edge/gateway_config.py): its
own unit id on its bus unless ``gateway.units`` gives another.

Our own asyncio server rather than pymodbus's: pymodbus 3.16.1's server
(``ServerRequestHandler``) keeps one ``last_pdu`` per connection and schedules
each request's coroutine through ``call_soon`` without tracking it, so
pipelined requests overwrite each other and nothing bounds a client's work;
it has no allow list, no per-client pacing, no deadline for half a frame. Here
each connection is one task of the gateway's TaskGroup, served one request at a
time, with:

- an allow list (CIDRs) and a cap on connections, checked at accept;
- a token bucket per client address, shared by its connections
  (edge/gateway_limits.py): a flood is slowed by not reading, not by
  answering, and reconnecting buys no new burst;
- ``FRAME_TIMEOUT_S`` for the rest of a frame once its first byte came,
  ``IDLE_TIMEOUT_S`` for a connection with no request, ``SEND_TIMEOUT_S`` for a
  client that does not read its answers; a header no Modbus client sends closes
  the connection (the stream cannot be framed any more), and an address that
  does so ``BAD_FRAMES_TO_BLOCK`` times within a minute is refused at accept
  until that minute is over.

None of it can hold the bus: only a request passed through takes a turn on
it, and the arbiter gives the agent's cycles the first claim.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from drivers.errors import (
    DriverError,
    ExceptionCode,
    ExceptionResponse,
    NotConnected,
)
from edge.gateway_bus import SharedBus
from edge.gateway_cache import CacheKey, RegisterCache
from edge.gateway_config import GatewayConfig
from edge.gateway_frames import (
    HEADER_SIZE,
    FrameError,
    Header,
    Read,
    Refusal,
    Write,
    encode_exception,
    encode_read,
    encode_write,
    parse_header,
    parse_pdu,
)
from edge.gateway_limits import TokenBucket
from edge.health import DeviceHealth, DeviceState

__all__ = ["Gateway", "GatewayError", "GatewayStats", "Target"]

logger = logging.getLogger(__name__)

FRAME_TIMEOUT_S: Final = 5.0  # the rest of a frame, once its first byte came
IDLE_TIMEOUT_S: Final = 300.0  # a connection that sends nothing is closed
SEND_TIMEOUT_S: Final = 10.0  # an answer the client does not take
BUS_WAIT_S: Final = 10.0  # a request passed through waits this long for the bus, then 06
REFUSAL_LOG_EVERY_S: Final = 60.0
MAX_BUCKETS: Final = 1024  # client addresses whose pace (or garbage) is remembered
# An address that sent this many non-Modbus headers within BLOCK_S is refused at
# accept for the rest of that time: a reconnect loop then costs an accept, not a session.
BAD_FRAMES_TO_BLOCK: Final = 10
BLOCK_S: Final = 60.0


class GatewayError(Exception):
    """The gateway cannot start (its port); the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class Target:
    """A device as the gateway serves it."""

    name: str
    unit: int  # on its bus
    bus: SharedBus
    health: DeviceHealth


@dataclass(slots=True)
class GatewayStats:
    """What the gateway did, for tests, benchmarks and the log at shutdown."""

    connections: int = 0
    refused_connections: int = 0  # not allowed, or too many
    closed_bad_frames: int = 0
    requests: int = 0
    cached_reads: int = 0  # answered from the cache: each saved one bus transaction at least
    bus_reads: int = 0
    writes: int = 0
    refused_writes: int = 0
    exceptions: int = 0  # every exception response sent, refusals included


@dataclass(slots=True)
class _Client:
    host: str  # its address, as gateway.allow sees it
    peer: str  # address and port, for the log
    bucket: TokenBucket
    writer: asyncio.StreamWriter
    refusals_logged_at: float = -REFUSAL_LOG_EVERY_S
    refusals_unlogged: int = 0


class Gateway:
    """``await gateway.run()`` serves until cancelled; ``port`` once ``listening`` is set."""

    def __init__(
        self,
        config: GatewayConfig,
        targets: Mapping[int, Target],
        cache: RegisterCache,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.targets = dict(targets)
        self.cache = cache
        self._clock = clock
        self.stats = GatewayStats()
        self.port = 0
        self.listening = asyncio.Event()
        self._clients: dict[int, _Client] = {}
        self._refused_logged: dict[str, float] = {}
        self._tasks: asyncio.TaskGroup | None = None
        self._server: asyncio.Server | None = None
        # Per client address, shared by its connections: reconnecting buys no new burst.
        self._buckets: dict[str, TokenBucket] = {}
        # Per client address: connections closed for garbage, since when (monotonic).
        self._garbage: dict[str, tuple[int, float]] = {}

    # -- connections ------------------------------------------------------------
    async def listen(self) -> None:
        """Bind the port (before the agent starts: a port in use is a start-up error)."""
        if self._server is not None:
            return
        config = self.config
        try:
            # Bound now, accepting once run() can take the connections.
            self._server = await asyncio.start_server(
                self._accept, config.listen, config.port, reuse_address=True, start_serving=False
            )
        except OSError as err:
            # asyncio words its own message around the errno's; the errno's is the news.
            reason = os.strerror(err.errno) if err.errno else str(err)
            raise GatewayError(
                f"config error: gateway.port: cannot listen on {config.listen}:{config.port}: "
                f"{reason[:1].lower()}{reason[1:]}"
            ) from err
        self.port = self._server.sockets[0].getsockname()[1]

    async def run(self) -> None:
        await self.listen()
        assert self._server is not None
        server = self._server
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            try:
                await server.start_serving()
                logger.info(
                    "gateway listening on %s:%d for %d devices",
                    self.config.listen,
                    self.port,
                    len(self.targets),
                    extra={"listen": self.config.listen, "port": self.port},
                )
                self.listening.set()
                await asyncio.Event().wait()  # until cancelled
            finally:
                server.close()
                # A session whose cancellation pymodbus swallowed (CPython gh-86296,
                # edge/agent.py) ends at its next read instead of its idle timeout.
                for client in self._clients.values():
                    client.writer.close()
                self._server = None
                self._tasks = None
                logger.info("gateway stopped: %s", self.stats, extra={"stats": str(self.stats)})

    def _refuse(self, writer: asyncio.StreamWriter, host: str, why: str) -> None:
        self.stats.refused_connections += 1
        writer.close()
        now = self._clock()
        if now - self._refused_logged.get(host, -REFUSAL_LOG_EVERY_S) >= REFUSAL_LOG_EVERY_S:
            if len(self._refused_logged) >= MAX_BUCKETS:
                self._refused_logged.clear()  # at worst a line again for an address
            self._refused_logged[host] = now
            logger.warning(
                "gateway: connection from %s refused: %s (logged once a minute per address)",
                host,
                why,
                extra={"client": host, "reason": why},
            )

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if self._tasks is None:
            writer.close()
            return
        if not self.config.allowed(host):
            self._refuse(writer, host, "not in gateway.allow")
            return
        if self._blocked(host):
            self._refuse(writer, host, f"sent garbage {BAD_FRAMES_TO_BLOCK} times within a minute")
            return
        if len(self._clients) >= self.config.max_clients:
            self._refuse(writer, host, f"gateway.max_clients ({self.config.max_clients}) reached")
            return
        self.stats.connections += 1
        name = f"{host}:{peer[1]}" if isinstance(peer, tuple) else host
        client = _Client(host, name, self._bucket(host), writer)
        key = id(client)
        self._clients[key] = client
        task = self._tasks.create_task(
            self._session(reader, writer, client), name=f"gateway.client[{name}]"
        )
        task.add_done_callback(lambda _: self._clients.pop(key, None))

    def _bad_frame(self, host: str) -> None:
        now = self._clock()
        count, since = self._garbage.get(host, (0, now))
        if now - since >= BLOCK_S:
            count, since = 0, now
        self._garbage[host] = (count + 1, since)
        if len(self._garbage) > MAX_BUCKETS:  # forget the oldest offenders first
            oldest = min(self._garbage, key=lambda h: self._garbage[h][1])
            del self._garbage[oldest]

    def _blocked(self, host: str) -> bool:
        """Whether ``host`` sent garbage too often lately: refused before any work is done."""
        count, since = self._garbage.get(host, (0, 0.0))
        if count < BAD_FRAMES_TO_BLOCK:
            return False
        if self._clock() - since < BLOCK_S:
            return True
        del self._garbage[host]  # the minute is over: a clean slate
        return False

    def _bucket(self, host: str) -> TokenBucket:
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                # Keep the addresses connected now; the others start afresh when they return.
                connected = {client.host for client in self._clients.values()}
                self._buckets = {h: b for h, b in self._buckets.items() if h in connected}
            rate = self.config.requests_per_s
            bucket = self._buckets[host] = TokenBucket(rate, max(1.0, rate), self._clock())
        return bucket

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: _Client
    ) -> None:
        # Debug only: a client reconnecting in a loop would flood the log at info.
        logger.debug("gateway: client %s connected", client.peer, extra={"client": client.peer})
        why = "closed by the client"
        try:
            while True:
                async with asyncio.timeout(IDLE_TIMEOUT_S):
                    first = await reader.readexactly(1)
                async with asyncio.timeout(FRAME_TIMEOUT_S):
                    header = parse_header(first + await reader.readexactly(HEADER_SIZE - 1))
                    pdu = await reader.readexactly(header.pdu_size)
                # Pipelined requests are already buffered and a cached answer needs no
                # I/O: without this pause one client could keep the event loop (and
                # the poller) waiting through thousands of them.
                await asyncio.sleep(max(0.0, client.bucket.take(self._clock())))
                answer = await self.answer(header, pdu, client)
                writer.write(answer)
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await writer.drain()
        except FrameError as err:
            self.stats.closed_bad_frames += 1
            self._bad_frame(client.host)
            why = f"not Modbus TCP: {err}"
        except asyncio.IncompleteReadError as err:
            why = "closed by the client" if not err.partial else "closed inside a frame"
        except TimeoutError:
            why = "timed out (idle, inside a frame, or not reading its answers)"
        except OSError as err:
            why = f"connection error: {err}"
        finally:
            writer.close()
        logger.debug("gateway: client %s gone: %s", client.peer, why, extra={"client": client.peer})

    # -- requests ---------------------------------------------------------------
    def _exception(self, header: Header, function: int, code: ExceptionCode) -> bytes:
        self.stats.exceptions += 1
        if code is ExceptionCode.UNKNOWN:
            code = ExceptionCode.SERVER_DEVICE_FAILURE  # not a code a client knows
        return encode_exception(header, function, code)

    async def answer(self, header: Header, pdu: bytes, client: _Client | None = None) -> bytes:
        """The response ADU to one request (``client`` for the log)."""
        self.stats.requests += 1
        request = parse_pdu(pdu)
        if isinstance(request, Refusal):
            return self._exception(header, request.function, request.code)
        target = self.targets.get(header.unit)
        if target is None:
            # MAP 7: 0A, the gateway has no path to that unit.
            return self._exception(header, request.function, ExceptionCode.GATEWAY_PATH_UNAVAILABLE)
        if isinstance(request, Read):
            return await self._read(header, request, target)
        return await self._write(header, request, target, client)

    async def _read(self, header: Header, request: Read, target: Target) -> bytes:
        key = CacheKey(target.bus.bus.name, target.unit, request.table)
        cached = self.cache.lookup(
            key,
            request.address,
            request.count,
            now=self._clock(),
            max_age_s=self.config.max_age_s,
        )
        if cached is not None:
            self.stats.cached_reads += 1
            return encode_read(header, request, cached)
        refused = self._unreachable(target)
        if refused is not None:
            return self._exception(header, request.function, refused)
        self.stats.bus_reads += 1
        try:
            values = await target.bus.guest_read(
                request.table, request.address, request.count, unit=target.unit, wait_s=BUS_WAIT_S
            )
        except (DriverError, TimeoutError) as err:
            return self._exception(header, request.function, _code(err))
        return encode_read(header, request, values)

    @staticmethod
    def _unreachable(target: Target) -> ExceptionCode | None:
        """Why a request for ``target`` cannot go to the bus now, without trying it."""
        if not target.bus.is_open:
            return ExceptionCode.GATEWAY_PATH_UNAVAILABLE
        if target.health.state is DeviceState.FAILING:
            # Its polls fail: a passed-through request would only cost the bus a timeout.
            return ExceptionCode.GATEWAY_TARGET_FAILED
        return None

    async def _write(
        self, header: Header, request: Write, target: Target, client: _Client | None
    ) -> bytes:
        peer = client.peer if client is not None else "?"
        count = len(request.values)
        where = f"{target.name} holding {request.address}+{count}"
        if not self.config.may_write(target.name, request.address, count):
            self.stats.refused_writes += 1
            self._log_refused_write(client, where)
            return self._exception(header, request.function, ExceptionCode.ILLEGAL_FUNCTION)
        refused = self._unreachable(target)
        if refused is not None:
            return self._exception(header, request.function, refused)
        fields = {"client": peer, "device": target.name, "address": request.address}
        try:
            await target.bus.guest_write(
                request.address, request.values, unit=target.unit, wait_s=BUS_WAIT_S
            )
        except (DriverError, TimeoutError) as err:
            logger.warning("gateway: write by %s to %s failed: %s", peer, where, err, extra=fields)
            return self._exception(header, request.function, _code(err))
        self.stats.writes += 1
        logger.info("gateway: %s wrote %s = %s", peer, where, list(request.values), extra=fields)
        return encode_write(header, request)

    def _log_refused_write(self, client: _Client | None, where: str) -> None:
        if client is None:
            return
        client.refusals_unlogged += 1
        now = self._clock()
        if now - client.refusals_logged_at < REFUSAL_LOG_EVERY_S:
            return
        logger.warning(
            "gateway: write by %s to %s refused (not allowed by [gateway]); "
            "%d refused writes from it since the last such line",
            client.peer,
            where,
            client.refusals_unlogged,
            extra={"client": client.peer},
        )
        client.refusals_logged_at = now
        client.refusals_unlogged = 0


def _code(err: DriverError | TimeoutError) -> ExceptionCode:
    """The exception code a failed passed-through request is answered with (MAP 7)."""
    if isinstance(err, ExceptionResponse):
        return err.code  # the device's own answer
    if isinstance(err, TimeoutError):
        return ExceptionCode.SERVER_DEVICE_BUSY  # the bus did not come free in time
    if isinstance(err, NotConnected):
        return ExceptionCode.GATEWAY_PATH_UNAVAILABLE
    return ExceptionCode.GATEWAY_TARGET_FAILED  # silence, garbage, another unit's answer
