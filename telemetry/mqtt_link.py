"""One connection to an MQTT broker that never holds up its owner (docs/home-assistant.md).

The agent's pollers, its buffer and its uplink, and the hub's doors, hand messages
to :meth:`MqttLink.offer` and go on: it never awaits and never fails. Messages
wait in a bounded queue; when it is full the oldest is dropped and counted
(``dropped``), so a broker that is down or slow costs memory up to the bound
and nothing else. A task of its own (:meth:`MqttLink.run`) connects, reconnects
after a loss with the shared backoff (telemetry/backoff.py) and sends.

Retained messages (Home Assistant's discovery configs, :meth:`MqttLink.retain`)
are kept apart, one per topic, never dropped: each connection sends them all
again, and so does Home Assistant's birth message (``online`` on
``<discovery_prefix>/status``), since a broker restarted without persistence
or a Home Assistant that lost its state needs them anew.

Availability: the connection's last will is ``offline`` (retained) on
``availability_topic``, and ``online`` is published (retained) on each connect;
a clean stop publishes ``offline`` itself, since a normal disconnect does not
release the will (MQTT 3.1.1, 3.1.2.5).

The password never reaches a log line: the owner registers it
(telemetry/redaction.py), and this module never formats it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

from telemetry.backoff import Backoff, BackoffPolicy
from telemetry.homeassistant import AVAILABLE, HA_ONLINE, NOT_AVAILABLE

if TYPE_CHECKING:
    import aiomqtt

__all__ = ["BrokerUrl", "LinkSettings", "MqttLink", "parse_broker_url"]

logger = logging.getLogger(__name__)


class _Demote(logging.Filter):
    """The MQTT client's own lines at debug level: a lost connection is already our one
    warning per outage, and paho adds an error line per lost socket on top of it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logger.isEnabledFor(logging.DEBUG)


client_logger = logging.getLogger(f"{__name__}.client")
client_logger.addFilter(_Demote())

RECONNECT_BACKOFF: Final = BackoffPolicy(1.0, 30.0)
DEFAULT_PORTS: Final = {"mqtt": 1883, "mqtts": 8883}


def _raise_if_cancelled() -> None:
    """Raise the cancellation the MQTT client swallowed, if there was one.

    aiomqtt waits with ``asyncio.wait_for``, which on Python 3.11 can swallow a
    cancellation that lands as its inner future completes (CPython gh-86296): the
    task is still marked as being cancelled, but goes on. Without this check a
    link told to stop would go on reconnecting for ever, and the agent's or the
    hub's shutdown would wait on it.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool
    username: str | None = None


def parse_broker_url(url: str) -> BrokerUrl:
    """``mqtt://[user@]host[:port]`` or ``mqtts://...``; ValueError says what is wrong.

    A password in the URL is refused: it would show in ``ps`` and in the config's
    copies (password, password_file or the environment carry it instead).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise ValueError(f"not a broker URL: {err}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"must start with mqtt:// or mqtts:// (got {url.split(':', 1)[0]!r})")
    if not parts.hostname:
        raise ValueError("names no host")
    if parts.password is not None:
        raise ValueError("holds a password: give it as a password file or in the environment")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be mqtt[s]://host[:port] with nothing after the port")
    return BrokerUrl(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
        username=parts.username or None,
    )


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """How to reach the broker; what to publish is the owner's business."""

    host: str
    port: int = 1883
    tls: bool = False
    ca_file: Path | None = None  # mqtts only: trust this CA instead of the system's
    username: str | None = None
    password: str | None = None
    client_id: str = ""
    max_queued: int = 1000  # state messages waiting while the broker is away
    timeout_s: float = 5.0  # connect and publish; past it the connection is dropped
    keepalive_s: int = 30
    backoff: BackoffPolicy = RECONNECT_BACKOFF

    def tls_context(self) -> ssl.SSLContext | None:
        """Verifying the broker's certificate and name, always (docs/security.md)."""
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=self.ca_file)


@dataclass(slots=True)
class LinkCounters:
    sent: int = 0
    dropped: int = 0  # state messages dropped, oldest first, while the queue was full
    connects: int = 0
    failures: int = 0  # connection attempts or connections that failed
    announced: int = 0  # retained messages sent (each counts once per connection)


@dataclass(frozen=True, slots=True)
class _Message:
    topic: str
    payload: str


@dataclass(slots=True)
class MqttLink:
    settings: LinkSettings
    availability_topic: str
    # Topics whose "online" (Home Assistant's birth message) makes the retained set go again.
    birth_topics: tuple[str, ...] = ()
    on_connected: Callable[[], None] | None = None
    counters: LinkCounters = field(default_factory=LinkCounters)
    connected: bool = False
    _queue: deque[_Message] = field(default_factory=deque)
    _retained: dict[str, str] = field(default_factory=dict)
    _unsent_retained: dict[str, str] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, topic: str, payload: str) -> None:
        """Queue a state message; never blocks. A full queue drops its oldest."""
        queue = self._queue
        if len(queue) >= self.settings.max_queued:
            queue.popleft()
            self.counters.dropped += 1
        queue.append(_Message(topic, payload))
        self._wake.set()

    def retain(self, topic: str, payload: str, *, again: bool = False) -> None:
        """Publish ``payload`` retained on ``topic`` now and on every (re)connect.

        The same payload twice is sent once, unless ``again``: another publisher
        may have replaced it on the broker meanwhile (another hub of a cluster).
        """
        if self._retained.get(topic) == payload and not again:
            return
        self._retained[topic] = payload
        self._unsent_retained[topic] = payload
        self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def run(self) -> None:
        """Connect, send, and reconnect after each loss, until cancelled."""
        import aiomqtt

        backoff = Backoff(self.settings.backoff)
        while True:
            try:
                await self._session(backoff)
                reason = "the broker closed the connection"
            except aiomqtt.MqttError as err:
                reason = str(err) or type(err).__name__
            self.connected = False
            self.counters.failures += 1
            delay = backoff.next_delay()
            # One warning per outage (the first failure after a connection), then debug.
            logger.log(
                logging.WARNING if backoff.failures == 1 else logging.DEBUG,
                "MQTT broker %s:%d unavailable (%s): retrying in %.1f s",
                self.settings.host,
                self.settings.port,
                reason,
                delay,
                extra={"broker": self.settings.host, "error": reason},
            )
            _raise_if_cancelled()
            await asyncio.sleep(delay)

    async def _session(self, backoff: Backoff) -> None:
        import aiomqtt

        settings = self.settings
        client = aiomqtt.Client(
            settings.host,
            settings.port,
            username=settings.username,
            password=settings.password,
            identifier=settings.client_id or None,
            will=aiomqtt.Will(self.availability_topic, NOT_AVAILABLE, qos=1, retain=True),
            timeout=settings.timeout_s,
            keepalive=settings.keepalive_s,
            tls_context=settings.tls_context(),
            logger=client_logger,
        )
        async with client:
            _raise_if_cancelled()
            self.connected = True
            self.counters.connects += 1
            backoff.reset()
            logger.info(
                "MQTT connected to %s:%d",
                settings.host,
                settings.port,
                extra={"broker": settings.host},
            )
            try:
                _raise_if_cancelled()
                await self._connected(client)
            except asyncio.CancelledError:
                await self._say_offline(client)
                raise

    async def _connected(self, client: aiomqtt.Client) -> None:
        import aiomqtt

        await client.publish(self.availability_topic, AVAILABLE, qos=1, retain=True)
        for topic in self.birth_topics:
            await client.subscribe(topic, qos=1)
        # Everything retained goes again on a new connection.
        self._unsent_retained = dict(self._retained)
        self._wake.set()
        if self.on_connected is not None:
            self.on_connected()
        # Two tasks, the first to end ends the connection. Not a TaskGroup: on 3.11 one
        # that aborts on a child's error can leave its parent marked as being cancelled,
        # which _raise_if_cancelled would take for a stop.
        tasks = {
            asyncio.create_task(self._send(client), name="mqtt.send"),
            asyncio.create_task(self._listen(client), name="mqtt.listen"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
        raise aiomqtt.MqttError("the connection ended")

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        # A clean stop: the will is not released by a normal disconnect.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await client.publish(self.availability_topic, NOT_AVAILABLE, qos=1, retain=True)
        self.connected = False

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._unsent_retained:
                topic = next(iter(self._unsent_retained))
                payload = self._unsent_retained[topic]
                await client.publish(topic, payload, qos=1, retain=True)
                if self._unsent_retained.get(topic) == payload:
                    del self._unsent_retained[topic]
                self.counters.announced += 1
            queue = self._queue
            while queue and not self._unsent_retained:
                message = queue[0]
                await client.publish(message.topic, message.payload, qos=0)
                _raise_if_cancelled()
                # Sent: it leaves the queue only now, so a lost connection keeps it.
                if queue and queue[0] is message:
                    queue.popleft()
                self.counters.sent += 1
            if self._unsent_retained:
                self._wake.set()

    async def _listen(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            if str(message.topic) in self.birth_topics and text == HA_ONLINE:
                logger.info("Home Assistant announced itself: sending discovery again")
                self._unsent_retained = dict(self._retained)
                self._wake.set()
