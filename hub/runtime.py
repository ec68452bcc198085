"""The running hub: storage, writer, registry, tokens and counters, as one object.

``Hub`` is an async context manager entered by the FastAPI lifespan
(hub/app.py) and kept on ``app.state.hub``. Its parts are private: the doors and
routes get narrow interfaces instead (hub/ports.py: ``device_port``,
``dashboard_port``, ``reader``; hub/viewer_access.py: ``viewer_policy``), and its
counters are owned by ``metrics`` (hub/metrics.py). It owns the background loops
in one TaskGroup (the token refresher) and stops them in order:

1. ``begin_shutdown``: refuse new sockets, flush the writer (so what is committed
   gets acked), close every socket with 1001 (docs/protocol.md, "Close codes");
2. ``__aexit__``: stop the loops, let the writer flush what is left, close storage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from hub.auth import BadToken, LookupBudget, RecentMisses, TokenBook, ViewerGate, hash_token
from hub.batch_writer import BatchWriter
from hub.connections import ConnectionManager
from hub.fanout import FeedPolicy
from hub.gatekeeper import Gatekeeper, LogLimiter
from hub.guess_budget import GuessBudget
from hub.limits import AddressCounts, Closure, ConnectionGate, ConnectionLimits
from hub.metrics import HubMetrics
from hub.ports import DashboardPort, DevicePort, HubReader
from hub.site_zones import SiteZones
from hub.storage import DEFAULT_DATA_DIR, create_storage, data_dir_from
from hub.storage.base import Storage, StorageError
from hub.storage.retention import KEEP_ALL, PRUNE_BATCH, Retention
from hub.viewer_access import ViewerPolicy
from telemetry import CloseCode
from telemetry.backoff import Backoff, BackoffPolicy

if TYPE_CHECKING:
    from hub.cluster.link import ClusterLink
    from hub.cluster.settings import ClusterSettings
    from hub.mqtt_bridge import HubMqtt, HubMqttSettings

logger = logging.getLogger(__name__)

# Token reloads while storage is down back off to at most this.
TOKEN_RETRY_CAP_S: Final = 30.0
# Between two retention batches the writer gets the database to itself for a while.
RETENTION_PAUSE_S: Final = 0.2

# How long a handshake with a token the hub does not know waits for storage.
LOOKUP_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class HubSettings:
    """Everything ``ems hub serve`` decides; defaults are the documented ones.

    :meth:`resolve` is the one place the command line and the environment
    (docs/configuration.md, "Hub") become settings.
    """

    database_url: str | None = None
    data_dir: Path = DEFAULT_DATA_DIR
    viewer_token: str | None = None
    # Browser origins besides the hub's own that may use the dashboard door and the
    # API, normalized ("https://host[:port]"; hub/viewer_access.py)
    allowed_origins: tuple[str, ...] = ()
    token_refresh_s: float = 1.0  # `ems hub token revoke` takes effect within about this
    feed_policy: FeedPolicy = field(default_factory=FeedPolicy)
    shutdown_flush_s: float = 3.0  # SIGTERM: how long to wait for the writer before closing
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    # Several hubs sharing devices and dashboards through Redis (hub/cluster/); None: alone.
    cluster: ClusterSettings | None = None
    # Every site's live readings to Home Assistant over MQTT (hub/mqtt_bridge.py); None: off.
    mqtt: HubMqttSettings | None = None
    # How long readings and rollups are kept (hub/storage/retention.py), and when the
    # retention task runs: first a minute after the start (not in the rush of devices
    # reconnecting), then hourly.
    retention: Retention = field(default_factory=Retention)
    retention_first_s: float = 60.0
    retention_every_s: float = 3600.0

    @classmethod
    def resolve(
        cls,
        environ: Mapping[str, str],
        *,
        database_url: str | None = None,
        viewer_token: str | None = None,
        allowed_origins: tuple[str, ...] = (),
        limits: ConnectionLimits | None = None,
        cluster: ClusterSettings | None = None,
        mqtt: HubMqttSettings | None = None,
        retention: Retention | None = None,
    ) -> HubSettings:
        """The settings of a command: a flag given wins over its environment variable.

        An empty variable counts as unset (a unit file's ``Environment=EMS_DATABASE_URL=``).
        """
        return cls(
            database_url=database_url or environ.get("EMS_DATABASE_URL") or None,
            data_dir=data_dir_from(environ),
            viewer_token=viewer_token or environ.get("EMS_VIEWER_TOKEN") or None,
            allowed_origins=allowed_origins,
            limits=limits or ConnectionLimits(),
            cluster=cluster,
            mqtt=mqtt,
            retention=retention or Retention(),
        )


class Hub:
    """The hub's state and background loops (see module docstring)."""

    def __init__(
        self,
        settings: HubSettings,
        *,
        storage: Storage | None = None,
        gate: ConnectionGate | None = None,
        metrics: HubMetrics | None = None,
    ) -> None:
        self._settings = settings
        # Every counter of the hub is created by this one object and handed to the part
        # that bumps it; when served, the app made it first, for its gate (hub/app.py).
        self.metrics = metrics or HubMetrics()
        self._gate = gate or ConnectionGate(settings.limits, self.metrics.gate)
        limits = settings.limits
        self._dashboards = AddressCounts(
            limits.max_dashboards, limits.max_dashboards_per_address, limits
        )
        self._storage: Storage = storage or create_storage(
            settings.database_url, settings.data_dir, retention=settings.retention
        )
        self._manager = ConnectionManager(self.metrics.sockets)
        self._site_zones = SiteZones()
        self._refusal_log = LogLimiter(burst=20, window_s=60.0)
        self._viewer = ViewerGate(settings.viewer_token)
        self._viewer_guesses = GuessBudget(
            failures=limits.viewer_guesses, counts=self.metrics.guesses
        )
        self.metrics.attach_parts(
            gate=self._gate, guesses=self._viewer_guesses, connections=self._manager
        )
        self._gatekeeper = Gatekeeper(counts=self.metrics.invalid)
        self._tokens = TokenBook.empty()
        # storage.token_generation() when self._tokens was loaded; None: load at the next tick
        self._token_generation: int | None = None
        # Loads of the book are serialized; the loop time the last one started: a
        # handshake that arrived before it needs no look-up of its own (hub/auth.py).
        self._token_lock = asyncio.Lock()
        self._token_loaded_at = float("-inf")
        self._token_misses = RecentMisses()
        self._lookup_budget = LookupBudget()
        self._writer: BatchWriter
        self._cluster: ClusterLink | None = None
        self._mqtt: HubMqtt | None = None
        self._stack = AsyncExitStack()
        self._tasks: asyncio.TaskGroup | None = None
        self._stopping = asyncio.Event()
        self._tokens_loaded = asyncio.Event()
        # What the routes get (hub/ports.py); the device port and the reader need the
        # writer, so they are built when the hub starts.
        self._viewer_policy = ViewerPolicy(
            self._viewer, tuple(settings.allowed_origins), self._viewer_guesses, self._refusal_log
        )
        self._dashboard_port = DashboardPort(
            connections=self._manager,
            metrics=self.metrics,
            refusal_log=self._refusal_log,
            dashboards=self._dashboards,
            gate=self._gate,
            policy=settings.feed_policy,
        )
        self._device_port: DevicePort
        self._reader: HubReader

    @property
    def device_port(self) -> DevicePort:
        """What the device door may do (hub/device_door.py)."""
        return self._device_port

    @property
    def dashboard_port(self) -> DashboardPort:
        """What the dashboard door may do (hub/dashboard_door.py)."""
        return self._dashboard_port

    @property
    def reader(self) -> HubReader:
        """Read-only views for the API and the pages (hub/api.py, hub/dashboard.py)."""
        return self._reader

    @property
    def viewer_policy(self) -> ViewerPolicy:
        """Who may read (hub/viewer_access.py)."""
        return self._viewer_policy

    @property
    def refusal_log(self) -> LogLimiter:
        """The one log budget of every refusal (hub/refusals.py); hub/server.py shares it."""
        return self._refusal_log

    def knows_token(self, device_id: str, token_hash: str) -> bool:
        """Whether the token book loaded now holds this token of the device."""
        return self._tokens.holds(device_id, token_hash)

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            await self._storage.open()
            stack.push_async_callback(self._storage.close)
            # begin_shutdown already gave the writer shutdown_flush_s; its own final
            # flush gets 2 s more, so SIGTERM exits within seconds even with storage down.
            self._writer = await stack.enter_async_context(
                BatchWriter(
                    self._storage,
                    flush_timeout_s=2.0,
                    fencing=self._settings.cluster is not None,
                    counters=self.metrics.writer,
                )
            )
            self.metrics.attach_writer(self._writer)
            if self._settings.cluster is not None:
                from hub.cluster.link import ClusterLink  # imports redis: cluster mode only

                self._cluster = await stack.enter_async_context(
                    ClusterLink(self._settings.cluster, self._manager, self.metrics.cluster)
                )
                self._manager.relay = self._cluster
                self.metrics.attach_cluster(self._cluster)
            self._tasks = await stack.enter_async_context(asyncio.TaskGroup())
            self._tasks.create_task(self._refresh_tokens(), name="hub.refresh_tokens")
            if self._settings.mqtt is not None:
                from hub.mqtt_bridge import HubMqtt  # imports aiomqtt: MQTT mode only

                self._mqtt = HubMqtt(self._settings.mqtt, self._storage)
                self._tasks.create_task(self._mqtt.run(self._stopping), name="hub.mqtt")
            if self._settings.retention != KEEP_ALL:
                self._tasks.create_task(self._apply_retention(), name="hub.retention")
            if idle_s := self._settings.limits.device_idle_timeout_s:
                self._tasks.create_task(self._close_idle(idle_s), name="hub.close_idle")
            self._device_port = DevicePort(
                verify=self.verify_device_token,
                connections=self._manager,
                writer=self._writer,
                metrics=self.metrics,
                gatekeeper=self._gatekeeper,
                refusal_log=self._refusal_log,
                site_zones=self._site_zones,
                storage=self._storage,
                cluster=self._cluster,
                mqtt=self._mqtt,
            )
            self._reader = HubReader(
                self._storage, self._manager, self._writer, self.online, self.degraded
            )
            self._stack = stack.pop_all()
        # Devices with tokens must be able to connect as soon as we serve.
        try:
            async with asyncio.timeout(5.0):
                await self._tokens_loaded.wait()
        except TimeoutError:
            logger.warning("device tokens not loaded yet: devices are refused until they are")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.begin_shutdown()
        self._stopping.set()
        await self._stack.aclose()

    async def begin_shutdown(self) -> None:
        """Stop accepting, flush what can be flushed, close sockets with 1001."""
        if self._manager.closing:
            return
        logger.info("hub stopping: flushing the writer, then closing sockets with 1001")
        self._manager.closing = True
        if not await self._writer.drain(self._settings.shutdown_flush_s):
            logger.warning(
                "writer still has %d readings uncommitted at shutdown: they stay unacked",
                self._writer.health().queue_depth,
            )
        await self._manager.close_all(CloseCode.GOING_AWAY)

    async def _refresh_tokens(self) -> None:
        """Keep ``self._tokens`` in step with storage; close sockets whose token went away.

        Each tick reads the storage's token generation, one small query, and
        reloads the whole list only when it moved: most ticks change nothing, and
        a full load costs in proportion to the tokens stored (thousands of rows
        and records, every second, for nothing).
        """
        # Storage down: retry from the refresh interval doubling to 30 s, or to the interval
        # itself when it is longer (telemetry/backoff.py).
        refresh_s = self._settings.token_refresh_s
        retry = Backoff(BackoffPolicy(refresh_s, max(refresh_s, TOKEN_RETRY_CAP_S)))
        while not self._stopping.is_set():
            try:
                await self._load_tokens()
            except StorageError as err:
                # Reload in full once storage is back: it may not be the same database.
                self._token_generation = None
                delay = retry.next_delay()
                logger.warning("cannot load device tokens (%s): retrying in %.1f s", err, delay)
            else:
                retry.reset()
                delay = self._settings.token_refresh_s
                self._tokens_loaded.set()
                # Every time, not only on a change: a socket that passed the door just
                # before a revocation registers after it, and is caught here.
                await self._close_revoked()
            try:
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            except TimeoutError:
                pass

    async def _close_idle(self, idle_s: float) -> None:
        """Close device sockets that sent nothing for ``idle_s`` (1000, "idle").

        A connected edge sends a reading every sampling interval; one silent for
        minutes holds a socket and a registration for nothing. Checked a few
        times per ``idle_s``, so a socket goes at most a quarter late.
        """
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(min(idle_s / 4, 5.0)):
                    await self._stopping.wait()
            except TimeoutError:
                pass
            now = loop.time()
            idle = [s for s in self._manager.publishers() if now - s.last_heard >= idle_s]
            if idle:
                count = await self._manager.kick(idle, CloseCode.NORMAL, reason="idle")
                self._gate.counters.closed[Closure.DEVICE_IDLE] += count
                logger.info("closed %d device socket(s) silent for %.0f s or more", count, idle_s)

    async def _apply_retention(self) -> None:
        """Delete readings and rollups past retention, a batch at a time (hub/storage/retention.py).

        First ``retention_first_s`` after the start, then every ``retention_every_s``
        (:class:`HubSettings`). Each batch is one short transaction, with a pause
        after it, so the writer's commits are never held for longer than a batch. On
        TimescaleDB the storage's retention policies drop the readings, and this drops
        the energy aggregate's old chunks (their sums kept: hub/storage/pruned_energy.py).
        """
        retention = self._settings.retention
        delay = self._settings.retention_first_s
        while not await self._stopped_within(delay):
            delay = self._settings.retention_every_s
            now = datetime.now(UTC)
            total = 0
            try:
                while not self._stopping.is_set():
                    deleted = await self._storage.prune(
                        retention.readings_before(now), retention.rollups_before(now), PRUNE_BATCH
                    )
                    total += deleted
                    if deleted < PRUNE_BATCH:
                        break
                    await asyncio.sleep(RETENTION_PAUSE_S)
            except StorageError as err:
                logger.warning("retention: %s; trying again in %.0f s", err, delay)
            if total:
                logger.info(
                    "retention: deleted %d reading(s) (and lists of names) past %s",
                    total,
                    retention.readings,
                )

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait up to ``seconds``; whether the hub began stopping meanwhile."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    async def online(self, device_ids: list[str]) -> set[str]:
        """Which of these devices are connected: at any hub of the cluster, or here.

        A hub alone, or one that cannot reach Redis now, knows only its own.
        """
        if self._cluster is not None:
            online = await self._cluster.online(device_ids)
            if online is not None:
                return online
        return {d for d in device_ids if self._manager.is_online(d)}

    def degraded(self) -> str | None:
        """Why the hub serves only its own devices and dashboards now; None when it does not."""
        if self._cluster is not None and not self._cluster.up:
            return f"cluster: Redis unreachable ({self._cluster.last_error})"
        return None

    async def verify_device_token(self, device_id: str, token: str | None) -> str:
        """The matching token hash for ``device_id``; raises ``AuthError`` otherwise.

        A token the book does not know is looked up before it is refused: it may
        have been added a moment ago by ``ems hub token add`` (hub/auth.py).
        """
        try:
            return self._tokens.verify(device_id, token)
        except BadToken:
            if token is None or not await self._look_up(device_id, hash_token(token)):
                raise
        return self._tokens.verify(device_id, token)

    async def _look_up(self, device_id: str, token_hash: str) -> bool:
        """Whether the token is live after making sure the book is current.

        Bounded: a token refused under the book's generation is not looked up
        again until the generation moves (``RecentMisses``); handshakes waiting
        for the same load share it; and look-ups past ``LookupBudget`` are not made.
        """
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        if self._token_misses.holds(device_id, token_hash, self._token_generation):
            return False
        try:
            # A storage that hangs must not hold handshakes: refuse, the device retries.
            async with asyncio.timeout(LOOKUP_TIMEOUT_S), self._token_lock:
                if self._token_loaded_at < arrived:
                    if not self._lookup_budget.take(loop.time()):
                        return False
                    await self._load_tokens_locked()
        except (StorageError, TimeoutError) as err:
            logger.warning("cannot look up a device token (%s)", err or "timed out")
            return False
        if self._tokens.holds(device_id, token_hash):
            return True
        self._token_misses.add(device_id, token_hash, self._token_generation)
        return False

    async def _load_tokens(self) -> None:
        async with self._token_lock:
            await self._load_tokens_locked()

    async def _load_tokens_locked(self) -> None:
        started = asyncio.get_running_loop().time()
        # The generation first: a change committed between the two reads is in
        # the list already, and makes the next tick load it once more.
        generation = await self._storage.token_generation()
        if generation != self._token_generation:
            self._tokens = TokenBook.from_records(await self._storage.tokens())
            self._token_generation = generation
        self._token_loaded_at = started

    async def _close_revoked(self) -> None:
        revoked = [
            session
            for session in self._manager.publishers()
            if not self._tokens.holds(session.device_id, session.token_hash)
        ]
        if revoked:
            count = await self._manager.kick(revoked, CloseCode.POLICY_VIOLATION)
            self.metrics.doors.revoked_closed += count
            logger.info("closed %d device socket(s) whose token was revoked", count)
