"""One hub's link to the others, over Redis (docs/architecture.md, "Several hubs").

The I/O side of hub/cluster: the decisions are in lease.py, mirror.py and
routing.py, the names and messages in wire.py, the atomic steps in scripts.py.
``ClusterLink`` implements the registry's ``Relay`` (hub/relay.py) and the
ownership calls of the device door (``claim``, ``fenced``).

Tasks, in the link's own TaskGroup:

- ``cluster.supervise``: connects (one command connection pool, one pub/sub
  connection), resynchronises, then runs the per-connection tasks below until
  a Redis error; then the link is **down** and it reconnects with backoff
  (telemetry/backoff.py). While down everything stays local: this hub serves
  its own devices and dashboards (local fan-out, local ghost protocol),
  ``/readyz`` says degraded, ``/metrics`` counts it.
- ``cluster.read``: the pub/sub connection: control messages (kick, watch,
  unwatch) and the channels of the devices this hub's dashboards watch.
- ``cluster.flush``: frames queued on the hot path, published in batches (one
  message per device per flush) on a connection of their own that is written
  without waiting for replies (``_Wire``: Redis answers in order, ``cluster.replies``
  reads the answers), so a reading never waits for the previous batch's round trip.
- ``cluster.renew``: the leases of the devices registered here.
- ``cluster.announce``: this hub's watches, re-announced before they expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hub.cluster import scripts
from hub.cluster.lease import LeasePolicy, Renewal, holds
from hub.cluster.mirror import Mirror, StoredStatus
from hub.cluster.routing import Batcher, Outgoing, WatchBook
from hub.cluster.settings import ClusterSettings
from hub.cluster.wire import (
    CONTROL_CHANNEL,
    Code,
    DeviceMessage,
    Kick,
    Unwatch,
    Watch,
    WireError,
    decode_control,
    device_channel,
    device_of_channel,
    encode_control,
    epoch_key,
    own_key,
    snap_key,
    snapshot_items,
    status_version,
    watchers_key,
)
from hub.connections import ConnectionManager, PublisherSession, status_frame
from hub.metrics import ClusterCounters
from hub.relay import FrameKind, Snapshot
from telemetry.backoff import Backoff, BackoffPolicy

logger = logging.getLogger(__name__)

STATUS_TTL_MS = 30 * 86_400 * 1000  # a device's last status is kept 30 days
RENEW_BATCH = 500  # devices per renewal script call
STOP_TIMEOUT_S = 5.0  # the link's tasks get this long to stop when the hub stops


class LinkState(enum.Enum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Claim:
    epoch: int
    lease_until: float  # loop time
    claimed: bool  # False: made while Redis was down, claimed when it is back


class ClusterLink:
    """See module docstring. ``async with ClusterLink(...)`` runs it."""

    def __init__(
        self,
        settings: ClusterSettings,
        manager: ConnectionManager,
        counters: ClusterCounters | None = None,
    ) -> None:
        self.settings = settings
        self.hub_id = settings.hub_id
        self.manager = manager
        self.policy = LeasePolicy(settings.lease_s)
        self.counters = ClusterCounters() if counters is None else counters
        self.book = WatchBook(self.hub_id)
        self.batcher = Batcher(self.hub_id, counters=self.counters)
        self.mirror = Mirror(self.hub_id, lambda d: status_frame(d, False, None), self.counters)
        self.state = LinkState.DOWN
        self.last_error = "not connected yet"
        self._fence: dict[str, int] = {}
        self._watching: set[str] = set()
        # Devices that left while Redis was down: their offline status, published on return.
        self._left_while_down: dict[str, tuple[int, Snapshot]] = {}
        self._client: Redis | None = None
        self._wire: _Wire | None = None
        self._pubsub: PubSub | None = None
        self._shas: dict[str, str] = {}
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._connected = asyncio.Event()
        self._tasks: asyncio.TaskGroup | None = None
        self._stack = contextlib.AsyncExitStack()

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            self._tasks = await stack.enter_async_context(asyncio.TaskGroup())
            stack.callback(self._stopping.set)
            self._tasks.create_task(self._supervise(), name="cluster.supervise")
            self._stack = stack.pop_all()
        # Start serving connected when Redis answers soon; degraded otherwise.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.settings.command_timeout_s * 2):
                await self._connected.wait()
        if self.state is LinkState.DOWN:
            logger.warning("cluster: Redis not reachable (%s): serving alone", self.last_error)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.flush_now()
        self._stopping.set()
        try:
            # Bounded: SIGTERM must end the process within seconds (hub/server.py).
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._stack.aclose()
        except TimeoutError:
            left = sorted(
                t.get_name() for t in asyncio.all_tasks() if t.get_name().startswith("cluster.")
            )
            logger.warning(
                "cluster: link tasks did not stop within %.0f s (%s): left behind",
                STOP_TIMEOUT_S,
                ", ".join(left) or "none named",
            )

    async def flush_now(self, within: float = 2.0) -> None:
        """Publish what is queued (offline statuses at shutdown), bounded."""
        if self.state is LinkState.UP and self._wire is not None:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(within):
                    await self._publish(self.batcher.take())
                    await self._wire.drain()

    @property
    def up(self) -> bool:
        return self.state is LinkState.UP

    async def _supervise(self) -> None:
        retry = Backoff(BackoffPolicy(0.2, 5.0))
        while not self._stopping.is_set():
            try:
                await self._serve_connection()
            except* (RedisError, OSError, TimeoutError, WireError) as group:
                self._went_down(group.exceptions[0])
            if self._stopping.is_set():
                return
            delay = retry.next_delay() if self.state is LinkState.DOWN else 0.2
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    def _went_down(self, error: BaseException) -> None:
        was_up = self.state is LinkState.UP
        self.state = LinkState.DOWN
        self.last_error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        if was_up:
            self.counters.redis_errors += 1
            logger.warning("cluster: lost Redis (%s): serving alone until it is back", error)
        # Dashboards waiting for another hub's snapshot get this hub's view now.
        for device_id in list(self._watching):
            self.manager.release_pending(device_id, None)

    async def _serve_connection(self) -> None:
        pool = BlockingConnectionPool.from_url(
            self.settings.url,
            max_connections=32,
            timeout=self.settings.command_timeout_s,
            socket_timeout=self.settings.command_timeout_s,
            socket_connect_timeout=self.settings.command_timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        client = Redis.from_pool(pool)
        pubsub = client.pubsub()
        try:
            await client.ping()
            self._shas = {
                name: await client.script_load(text)
                for name, text in (
                    ("claim", scripts.CLAIM),
                    ("renew", scripts.RENEW),
                    ("status", scripts.STATUS),
                    ("release", scripts.RELEASE),
                )
            }
            self._client, self._pubsub = client, pubsub
            wire = _Wire(await pool.get_connection())  # type: ignore[no-untyped-call]
            self._wire = wire
            channels = [CONTROL_CHANNEL, *(device_channel(d) for d in self._watching)]
            waiting = [self._expect_subscription(c) for c in channels]
            await pubsub.subscribe(*channels)
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._read(pubsub), name="cluster.read")
                tasks.create_task(wire.read_replies(), name="cluster.replies")
                async with asyncio.timeout(self.settings.command_timeout_s):
                    await asyncio.gather(*waiting)
                await self._resync()
                self.state = LinkState.UP
                self._connected.set()
                logger.info("cluster: connected to Redis as hub %s", self.hub_id)
                tasks.create_task(self._flush_loop(), name="cluster.flush")
                tasks.create_task(self._renew_loop(), name="cluster.renew")
                tasks.create_task(self._announce_loop(), name="cluster.announce")
                stop = tasks.create_task(self._stopping.wait(), name="cluster.stop")
                await stop
                raise _Stopping
        except* _Stopping:
            pass
        finally:
            self._client = self._pubsub = None
            if self._wire is not None:
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wire.connection.disconnect()
                self._wire = None
            for future in self._confirmations.values():
                future.cancel()
            self._confirmations.clear()
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await client.aclose()
            await pool.disconnect()

    def _redis(self) -> Redis:
        if self._client is None:
            raise RedisError("not connected")
        return self._client

    async def _resync(self) -> None:
        """After (re)connecting: claims, statuses and watches as they are now."""
        await self._resync_claims()
        for device_id, (epoch, snapshot) in list(self._left_while_down.items()):
            self._queue_status(device_id, epoch, snapshot)
        self._left_while_down.clear()
        for session in self.manager.publishers():
            snapshot = self.manager.local_snapshot(session.device_id)
            self._queue_status(session.device_id, session.epoch, snapshot)
        await self._publish(self.batcher.take())
        for device_id in list(self._watching):
            await self._announce_watch(device_id)

    # -- ownership -----------------------------------------------------------------------

    async def claim(self, device_id: str) -> Claim:
        """The next epoch of the device and its lease; a local epoch while Redis is down."""
        loop = asyncio.get_running_loop()
        if self.state is LinkState.UP:
            sent = loop.time()
            try:
                async with asyncio.timeout(self.settings.command_timeout_s):
                    epoch = await self._claim(device_id)
            except (RedisError, OSError, TimeoutError) as err:
                logger.warning("cluster: cannot claim %s (%s): claiming locally", device_id, err)
            else:
                return Claim(epoch, self.policy.valid_until(sent), claimed=True)
        self.counters.claims_local += 1
        registered = self.manager.publisher(device_id)
        epoch = max(self._fence.get(device_id, 0), registered.epoch if registered else 0)
        return Claim(epoch, float("inf"), claimed=False)

    async def _claim(self, device_id: str) -> int:
        answer = await self._redis().evalsha(
            self._shas["claim"],
            3,
            epoch_key(device_id),
            own_key(device_id),
            watchers_key(device_id),
            self.hub_id,
            self.policy.lease_ms,
            int(time.time() * 1000),
            device_id,
        )
        epoch, watchers = int(answer[0]), answer[1]
        self.counters.claims += 1
        self._fence[device_id] = max(self._fence.get(device_id, 0), epoch)
        until = time.time() + self.settings.watch_ttl_s
        for hub in watchers:
            self.book.add(device_id, hub.decode(), until)
        return epoch

    def fenced(self, session: PublisherSession) -> bool:
        """Whether the session may no longer ack or commit (lease.holds)."""
        return not holds(
            epoch=session.epoch,
            fence=self._fence.get(session.device_id, 0),
            lease_until=session.lease_until,
            now=asyncio.get_running_loop().time(),
            redis_up=self.state is LinkState.UP,
        )

    def fence_of(self, device_id: str) -> int:
        return self._fence.get(device_id, 0)

    def fence_for(self, session: PublisherSession) -> SessionFence:
        """The fence of the session's replies (hub/device_replies.py)."""
        return SessionFence(self, session)

    def _kicked(self, kick: Kick) -> None:
        """A device was claimed (maybe by us): older sessions here go, with 1008."""
        self._fence[kick.d] = max(self._fence.get(kick.d, 0), kick.e)
        session = self.manager.publisher(kick.d)
        # A session registered while Redis was down is being claimed now: its claim
        # decides (a higher epoch than this kick's, or it closes in _resync_claims).
        if session is not None and session.claimed and session.epoch < kick.e and self._tasks:
            self._tasks.create_task(self._close_superseded(session), name="cluster.kick")

    async def _close_superseded(self, session: PublisherSession) -> None:
        self.counters.kicked_by_claim += await self.manager.supersede(session)

    async def _resync_claims(self) -> None:
        for session in self.manager.publishers():
            if not session.claimed:
                sent = asyncio.get_running_loop().time()
                session.epoch = await self._claim(session.device_id)
                session.lease_until = self.policy.valid_until(sent)
                session.claimed = True
                if session.epoch < self.fence_of(session.device_id):
                    await self._close_superseded(session)  # another hub claimed it after us
        await self._renew_once()

    async def _renew_once(self) -> None:
        sessions = [s for s in self.manager.publishers() if s.claimed and not s.ended]
        loop = asyncio.get_running_loop()
        for start in range(0, len(sessions), RENEW_BATCH):
            chunk = sessions[start : start + RENEW_BATCH]
            keys: list[str] = []
            for s in chunk:
                keys += [own_key(s.device_id), epoch_key(s.device_id)]
            sent = loop.time()
            answers = await self._redis().evalsha(
                self._shas["renew"],
                len(keys),
                *keys,
                self.hub_id,
                self.policy.lease_ms,
                *(s.epoch for s in chunk),
            )
            for session, answer in zip(chunk, answers, strict=True):
                if Renewal.of(int(answer)) is Renewal.HELD:
                    session.lease_until = self.policy.valid_until(sent)
                elif not session.ended:
                    self.counters.leases_lost += 1
                    logger.info(
                        "cluster: %s was claimed by another hub: closing it here (1008)",
                        session.device_id,
                    )
                    fence = session.epoch + 1
                    self._fence[session.device_id] = max(self.fence_of(session.device_id), fence)
                    await self._close_superseded(session)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.policy.renew_every_s)
            async with asyncio.timeout(self.settings.command_timeout_s * 2):
                await self._renew_once()

    # -- Relay: the registry's calls -----------------------------------------------------

    def current(self, device_id: str) -> tuple[str, ...] | None:
        view = self.mirror.view(device_id)
        return view.snapshot() if view is not None and view.status is not None else None

    def wants(self, device_id: str) -> bool:
        return self.state is LinkState.UP and self.book.wanted(device_id)

    def forward(self, device_id: str, epoch: int, kind: FrameKind, frame: str) -> None:
        if self.batcher.add(device_id, epoch, Code(kind.value), frame):
            self.counters.frames_forwarded += 1
            self._wake.set()

    def owner_changed(self, device_id: str, epoch: int, snapshot: Snapshot) -> None:
        if self.state is LinkState.UP:
            self._queue_status(device_id, epoch, snapshot)
            self._left_while_down.pop(device_id, None)
            self._wake.set()
        elif not snapshot.online:
            self._left_while_down[device_id] = (epoch, snapshot)
        else:
            self._left_while_down.pop(device_id, None)

    def _queue_status(self, device_id: str, epoch: int, snapshot: Snapshot) -> None:
        items = snapshot_items(snapshot.status, snapshot.health, snapshot.last)
        self.batcher.add_status(device_id, epoch, items, status_version(epoch, snapshot.online))

    async def watch(self, device_id: str) -> None:
        self._watching.add(device_id)
        if self.state is not LinkState.UP:
            self.manager.release_pending(device_id, None)
            return
        try:
            pubsub = self._pubsub
            if pubsub is None:
                raise RedisError("not connected")
            channel = device_channel(device_id)
            waiting = self._expect_subscription(channel)
            await pubsub.subscribe(channel)
            async with asyncio.timeout(self.settings.command_timeout_s):
                await waiting
                await self._announce_watch(device_id)
        except (RedisError, OSError, TimeoutError) as err:
            logger.warning("cluster: cannot follow %s on other hubs: %s", device_id, err)
            self.manager.release_pending(device_id, None)

    async def unwatch(self, device_id: str) -> None:
        self._watching.discard(device_id)
        self.mirror.forget(device_id)
        if self.state is not LinkState.UP or self._pubsub is None:
            return
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(self.settings.command_timeout_s):
                await self._pubsub.unsubscribe(device_channel(device_id))
                pipe = self._redis().pipeline(transaction=False)
                pipe.zrem(watchers_key(device_id), self.hub_id)
                pipe.publish(
                    CONTROL_CHANNEL,
                    encode_control(Unwatch(t="unwatch", h=self.hub_id, d=[device_id])),
                )
                await pipe.execute()

    async def _announce_watch(self, device_id: str) -> None:
        """Register as a watcher, ask the owner for a snapshot, read the stored status."""
        ttl_ms = int(self.settings.watch_ttl_s * 1000)
        pipe = self._redis().pipeline(transaction=True)
        pipe.zadd(watchers_key(device_id), {self.hub_id: int(time.time() * 1000) + ttl_ms})
        pipe.pexpire(watchers_key(device_id), ttl_ms * 2)
        watch = Watch(t="watch", h=self.hub_id, d=[device_id], ttl=self.settings.watch_ttl_s)
        pipe.publish(CONTROL_CHANNEL, encode_control(watch))
        pipe.hmget(snap_key(device_id), "v", "m")
        pipe.exists(own_key(device_id))
        answers = await pipe.execute()
        version, message = answers[3]
        stored = (
            StoredStatus(int(version), DeviceMessage.decode(message))
            if version is not None and message is not None
            else None
        )
        settled = self.mirror.settle(device_id, stored, owner_alive=bool(answers[4]))
        epoch = stored.message.epoch if stored is not None else -1
        self.manager.deliver_remote(device_id, epoch, settled.events)
        if settled.wait and self._tasks is not None:
            self._tasks.create_task(
                self._snapshot_deadline(device_id), name=f"cluster.snapshot[{device_id}]"
            )

    async def _snapshot_deadline(self, device_id: str) -> None:
        await asyncio.sleep(self.settings.snapshot_wait_s)
        if device_id in self._watching:
            self.manager.release_pending(device_id, self.mirror.current(device_id))

    async def _announce_loop(self) -> None:
        every = self.settings.watch_ttl_s / 3
        while True:
            await asyncio.sleep(every)
            self.book.expire(time.time())
            watching = sorted(self._watching)
            if not watching:
                continue
            ttl_ms = int(self.settings.watch_ttl_s * 1000)
            until = int(time.time() * 1000) + ttl_ms
            pipe = self._redis().pipeline(transaction=False)
            for device_id in watching:
                pipe.zadd(watchers_key(device_id), {self.hub_id: until})
                pipe.pexpire(watchers_key(device_id), ttl_ms * 2)
            refresh = Watch(
                t="watch",
                h=self.hub_id,
                d=watching,
                ttl=self.settings.watch_ttl_s,
                snapshot=False,
            )
            pipe.publish(CONTROL_CHANNEL, encode_control(refresh))
            async with asyncio.timeout(self.settings.command_timeout_s):
                await pipe.execute()

    # -- publishing ------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self.settings.flush_delay_s)
            out = self.batcher.take()
            if out:
                async with asyncio.timeout(self.settings.command_timeout_s):
                    await self._publish(out)

    async def _publish(self, out: list[Outgoing]) -> None:
        if not out:
            return
        wire = self._wire
        if wire is None:
            raise RedisError("not connected")
        commands: list[tuple[str | int | bytes, ...]] = []
        for item in out:
            data = item.message.encode()
            channel = device_channel(item.device_id)
            if item.stored:
                commands.append(
                    (
                        "EVALSHA",
                        self._shas["status"],
                        1,
                        snap_key(item.device_id),
                        item.version,
                        data,
                        channel,
                        STATUS_TTL_MS,
                    )
                )
                if item.version % 2 == 1:  # offline: the device left us
                    mine = f"{self.hub_id} {item.message.epoch}"
                    commands.append(
                        ("EVALSHA", self._shas["release"], 1, own_key(item.device_id), mine)
                    )
            else:
                commands.append(("PUBLISH", channel, data))
        await wire.send(commands)
        self.counters.messages_published += len(out)

    # -- reading -----------------------------------------------------------------------------

    def _expect_subscription(self, channel: str) -> asyncio.Future[None]:
        future = self._confirmations.get(channel)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._confirmations[channel] = future
        return future

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind = message["type"]
            channel = message["channel"].decode()
            if kind == "subscribe":
                future = self._confirmations.pop(channel, None)
                if future is not None and not future.done():
                    future.set_result(None)
            elif kind == "message":
                self.counters.messages_received += 1
                self._received(channel, message["data"])

    def _received(self, channel: str, data: bytes) -> None:
        try:
            if channel == CONTROL_CHANNEL:
                self._control(decode_control(data))
                return
            device_id = device_of_channel(channel)
            if device_id is None or device_id not in self._watching:
                return
            message = DeviceMessage.decode(data)
            events = self.mirror.apply(device_id, message)
            if events:
                self.manager.deliver_remote(device_id, message.epoch, events)
        except WireError as err:
            self.counters.bad_messages += 1
            logger.warning("cluster: dropped a message on %s: %s", channel, err)

    def _control(self, message: Kick | Watch | Unwatch) -> None:
        if isinstance(message, Kick):
            self._kicked(message)
        elif isinstance(message, Watch):
            until = time.time() + message.ttl
            for device_id in message.d:
                self.book.add(device_id, message.h, until)
                if message.snapshot and message.h != self.hub_id:
                    self._answer_watch(device_id)
        else:
            for device_id in message.d:
                self.book.remove(device_id, message.h)

    def _answer_watch(self, device_id: str) -> None:
        session = self.manager.publisher(device_id)
        if session is None or session.ended:
            return
        snapshot = self.manager.local_snapshot(device_id)
        for code, frame in snapshot_items(snapshot.status, snapshot.health, snapshot.last):
            self.batcher.add(device_id, session.epoch, code, frame)
        self._wake.set()

    # -- for /api/devices and /metrics -------------------------------------------------------

    async def online(self, device_ids: list[str]) -> set[str] | None:
        """The devices registered at some hub now; None when Redis cannot say."""
        if self.state is not LinkState.UP or not device_ids:
            return None if self.state is not LinkState.UP else set()
        try:
            async with asyncio.timeout(self.settings.command_timeout_s):
                owners = await self._redis().mget([own_key(d) for d in device_ids])
        except (RedisError, OSError, TimeoutError) as err:
            logger.warning("cluster: cannot read which devices are online: %s", err)
            return None
        return {d for d, owner in zip(device_ids, owners, strict=True) if owner is not None}

    def watching(self) -> int:
        return len(self._watching)

    def forwarding(self) -> int:
        return len(self.book.devices())


class _Wire:
    """One Redis connection written without waiting for its replies (see module docstring).

    Redis answers commands on a connection in the order they came, so order is
    kept; a reply that is an error (a script Redis lost) raises in ``read_replies``
    and takes the link down, to reconnect and load the scripts again.
    """

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self._sent = 0
        self._replied = 0
        self._outstanding = asyncio.Event()
        self._caught_up = asyncio.Event()
        self._caught_up.set()

    async def send(self, commands: list[tuple[str | int | bytes, ...]]) -> None:
        if not commands:
            return
        packed = self.connection.pack_commands(commands)
        await self.connection.send_packed_command(packed, check_health=False)
        self._sent += len(commands)
        self._caught_up.clear()
        self._outstanding.set()

    async def read_replies(self) -> None:
        while True:
            await self._outstanding.wait()
            while self._replied < self._sent:
                await self.connection.read_response()  # a slow answer: socket_timeout
                self._replied += 1
            self._outstanding.clear()
            self._caught_up.set()

    async def drain(self) -> None:
        """Until Redis answered everything sent so far."""
        await self._caught_up.wait()


class SessionFence:
    """hub/device_replies.py's ``Fence`` for one session."""

    __slots__ = ("_link", "_session")

    def __init__(self, link: ClusterLink, session: PublisherSession) -> None:
        self._link = link
        self._session = session

    def fenced(self) -> bool:
        return self._link.fenced(self._session)

    def acks_dropped(self, count: int) -> None:
        self._link.counters.acks_fenced += count


class _Stopping(Exception):
    """Ends a connection's TaskGroup when the hub stops."""
