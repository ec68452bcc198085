"""The uplink: streams the outbox to the hub's device door and deletes what the hub acks.

docs/protocol.md is the contract. One connection at a time to
``{hub.url}/ws/device/{device_id}`` with ``Authorization: Bearer <token>``:

- live readings (just committed, handed over by :meth:`Uplink.offer`) go first,
  one reading frame each, so dashboards see them at once;
- the backlog follows behind them in ``batch`` frames, oldest first
  (docs/protocol.md, "A batch": history, stored and not pushed to dashboards);
- a :class:`~edge.window.SendWindow` bounds what is in flight; unacked
  readings are sent again after the ack timeout, and all of them after a
  reconnect;
- acks are collected and deleted from the outbox in batches, a few
  transactions per second at most (SD card wear), and flushed on the way out;
- a ``health`` frame (docs/protocol.md, "Device health") goes first on every
  connection and again whenever a device's health changes
  (:meth:`Uplink.health_changed`), built when it is sent so its ages are current.

Why a connection ends decides how long to wait before the next one:

============================  ====================================================
:attr:`LinkEnd.AUTH_REFUSED`  HTTP 401/403 on the upgrade: the token is wrong or
                              revoked, or new to a hub that has not read it yet.
                              Retried after about 1, 2 and 5 s, then slowly
                              (minutes), never in a loop.
:attr:`LinkEnd.KICKED`        closed with 1008 after being accepted: another agent
                              took the device id (ghost protocol) or the token
                              was revoked. Logged as an error; long backoff.
`LinkEnd.TLS_REFUSED`         the hub's certificate failed verification (wss://;
                              verification is always on, ``[hub] ca_file`` names
                              a private CA). Logged as an error; normal backoff.
`LinkEnd.HUB_ERROR`           closed with 1011: the hub failed (a bug on its side).
                              Logged as an error; normal backoff.
anything else                 network, hub restart (1001), timeouts: the normal
                              capped, jittered backoff, reset by a stable session.
============================  ====================================================

While the agent's own clock waits for sync, each connection also measures
the hub's clock (docs/protocol.md, "Time"; edge/hubtime.py): rounds of
``time_request`` frames, answered by ``time`` frames, timed on the agent's
monotonic clock.

Every hub frame goes through ``telemetry.parse_hub_frame``, which never
raises: a frame the uplink cannot use is dropped and counted
(``UplinkStatus.bad_hub_frames``), and an error frame is counted and, should
the hub refuse a reading again and again without acking it, the reading is
given up (edge/refusals.py). Text the hub sent is logged escaped.

A hub that closes with 1011 while readings are in flight may be failing on one
of them (a hub bug a reading triggers). Those readings become suspects: the
next connections send one reading at a time until every suspect is acked. A
suspect alone in flight when the hub fails again gets a strike; after three it
is parked (edge/outbox.py): set aside in the buffer, no longer sent, so it
cannot hold the backlog for ever, and offered again when the agent next starts.
A hub that fails on everything thus parks readings one by one but loses none.

Exceptions: none escape :meth:`Uplink.run` but cancellation; every connection
failure is mapped to a :class:`LinkEnd` in :func:`_classify` (one place).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from edge.hubtime import HubClock, HubOffset
from edge.outbox import Outbox, OutboxError, Stored
from edge.refusals import Refusals
from edge.window import SendWindow, pack_batches
from telemetry import (
    MAX_BATCH_ITEMS,
    MAX_FRAME_BYTES,
    AckFrame,
    CloseCode,
    ErrorFrame,
    seq_ranges,
)
from telemetry.backoff import Backoff, BackoffPolicy
from telemetry.client_text import client_text
from telemetry.hub_frames import BadHubFrame, HubFrameProblem, parse_hub_frame
from telemetry.timesync import TimeFrame, time_request

__all__ = ["LinkEnd", "Uplink", "UplinkSettings", "UplinkStatus"]

logger = logging.getLogger(__name__)

_AUTH_STATUSES: Final = frozenset({401, 403})
# Bad hub frames logged per connection; the rest are counted only (a flood stays quiet).
_BAD_FRAMES_LOGGED: Final = 5
NORMAL_BACKOFF: Final = BackoffPolicy(0.5, 30.0)
# Another agent holds the device id: knocking often would only kick it in turn.
KICKED_BACKOFF: Final = BackoffPolicy(30.0, 600.0)
# A refused token: a hub may not know a token added a moment ago (an older hub
# re-reads its tokens about once a second), so the first tries come within
# seconds; after that it will not fix itself, an operator has to act.
AUTH_BACKOFF: Final = BackoffPolicy(60.0, 900.0, first_s=(1.0, 2.0, 5.0))


class LinkEnd(enum.StrEnum):
    """Why a connection (or an attempt at one) ended."""

    AUTH_REFUSED = "auth_refused"
    KICKED = "kicked"
    HUB_GOING_AWAY = "hub_going_away"
    CLOSED = "closed"
    UNREACHABLE = "unreachable"
    TLS_REFUSED = "tls_refused"  # the hub's certificate failed verification
    REFUSED = "refused"  # an HTTP answer other than 101 and 401/403
    HUB_ERROR = "hub_error"  # closed with 1011: an unexpected error in the hub


@dataclass(frozen=True, slots=True)
class UplinkSettings:
    window: int = 10_000  # readings in flight (seqs only are kept)
    ack_timeout_s: float = 15.0
    backoff: BackoffPolicy = NORMAL_BACKOFF
    kicked_backoff: BackoffPolicy = KICKED_BACKOFF
    auth_backoff: BackoffPolicy = AUTH_BACKOFF
    delete_interval_s: float = 0.5
    open_timeout_s: float = 10.0
    close_timeout_s: float = 2.0  # a hub that stopped answering must not hold a shutdown
    ping_interval_s: float = 10.0
    ping_timeout_s: float = 10.0
    live_queue: int = 1_000  # full: the oldest live reading waits for the backlog instead
    # Room in the window the backlog leaves free, so live readings still go out live
    # (docs/protocol.md: a batch is history, not pushed to dashboards) while a long
    # backlog keeps the rest of the window full.
    live_reserve: int = 100
    stable_after_s: float = 10.0  # a session this long resets the backoff
    idle_wake_s: float = 1.0
    # Hub time (edge/hubtime.py): the requests of a round are spaced out so one
    # burst of traffic cannot delay them all; answers get time_answer_s to arrive.
    time_spacing_s: float = 0.25
    time_answer_s: float = 1.0
    time_retry_s: float = 15.0  # after a round that was not trusted
    time_refresh_s: float = 600.0  # after a trusted one: follows the Pi's clock drift


@dataclass(frozen=True, slots=True)
class UplinkStatus:
    connected: bool
    since: datetime | None  # when the current connection opened, or the last one ended
    last_end: LinkEnd | None
    in_flight: int
    acked: int  # readings acked since the agent started
    refused: int = 0  # error frames: readings the hub refused as invalid
    given_up: int = 0  # refused again and again, never acked: deleted (edge/refusals.py)
    bad_hub_frames: int = 0  # hub frames dropped as unusable
    parked: int = 0  # the hub failed (1011) on them alone: set aside in the buffer


@dataclass(slots=True)
class _Counters:
    acked: int = 0
    refused: int = 0
    given_up: int = 0
    bad_hub_frames: int = 0
    parked: int = 0
    sessions: int = 0
    last_end: LinkEnd | None = None
    since: datetime | None = None


@dataclass(slots=True)
class _Session:
    ws: ClientConnection
    window: SendWindow
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    opened: float = field(default_factory=time.monotonic)
    bad_frames: int = 0  # only the first few of a session are logged


def _classify(err: BaseException) -> LinkEnd:
    """Map a connection failure to why it ended (the one place that knows websockets' errors)."""
    if isinstance(err, InvalidStatus):
        status = err.response.status_code
        return LinkEnd.AUTH_REFUSED if status in _AUTH_STATUSES else LinkEnd.REFUSED
    if isinstance(err, ConnectionClosed):
        return _classify_close(err.rcvd.code if err.rcvd is not None else None)
    if isinstance(err, ssl.SSLCertVerificationError):
        return LinkEnd.TLS_REFUSED
    return LinkEnd.UNREACHABLE


def _classify_close(code: int | None) -> LinkEnd:
    """Why a session ended, from the close code the hub sent (None: no close frame)."""
    if code == CloseCode.POLICY_VIOLATION:
        return LinkEnd.KICKED
    if code == CloseCode.GOING_AWAY:
        return LinkEnd.HUB_GOING_AWAY
    if code == CloseCode.INTERNAL_ERROR:
        return LinkEnd.HUB_ERROR
    return LinkEnd.CLOSED


class Uplink:
    """Sends the outbox to the hub until cancelled. One instance per agent."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        url: str,
        token: str,
        tls: ssl.SSLContext | None = None,
        settings: UplinkSettings | None = None,
        rng: random.Random | None = None,
        health: Callable[[], str] | None = None,
        hub_clock: HubClock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self._health = health  # builds the health frame; None: the agent sends none
        self._health_due = False
        self.url = url
        self._token = token
        # wss:// only (edge.config.tls_context); None: websockets' default, which
        # verifies against the system's CAs.
        self._tls = tls
        self.settings = settings or UplinkSettings()
        rng = rng or random.Random()
        self._backoffs = {
            "normal": Backoff(self.settings.backoff, rng),
            "kicked": Backoff(self.settings.kicked_backoff, rng),
            "auth": Backoff(self.settings.auth_backoff, rng),
        }
        self._live: deque[Stored] = deque(maxlen=self.settings.live_queue)
        self._newest_seq = -1  # the newest committed seq known; -1: ask the outbox
        self._session: _Session | None = None
        self._acked: list[int] = []
        self._to_park: list[int] = []  # struck out by 1011s, parked before the next session
        self._ack_event = asyncio.Event()
        self._counters = _Counters()
        self._refusals = Refusals()
        # Readings in flight when the hub closed with 1011, and their strikes (see above).
        self._suspects: set[int] = set()
        self._strikes = Refusals()
        self.hub_clock = hub_clock  # None: never ask the hub for its time
        self._monotonic = monotonic  # the clock readings are timed by (edge/clock.py)

    # --- what the rest of the agent calls --------------------------------------------

    def offer(self, stored: Sequence[Stored]) -> None:
        """Readings just committed to the outbox: send them live if the link is up.

        Never blocks. When the live queue is full its oldest entries fall out;
        they are still in the outbox and go with the backlog.
        """
        if not stored:
            return
        self._newest_seq = max(self._newest_seq, stored[-1].seq)
        session = self._session
        if session is not None:
            self._live.extend(stored)
            session.wake.set()

    def health_changed(self) -> None:
        """A device's health changed: send a health frame soon (never blocks)."""
        self._health_due = True
        session = self._session
        if session is not None:
            session.wake.set()

    def rescan(self) -> None:
        """Held readings were just stamped below the cursor: read the backlog again."""
        self._newest_seq = -1
        session = self._session
        if session is not None:
            session.window.rescan()
            session.wake.set()

    def status(self) -> UplinkStatus:
        session = self._session
        return UplinkStatus(
            connected=session is not None,
            since=self._counters.since,
            last_end=self._counters.last_end,
            in_flight=len(session.window) if session else 0,
            acked=self._counters.acked,
            refused=self._counters.refused,
            given_up=self._counters.given_up,
            parked=self._counters.parked,
            bad_hub_frames=self._counters.bad_hub_frames,
        )

    async def drain(self, timeout_s: float) -> bool:
        """Wait, at most ``timeout_s``, until everything committed was sent and acked.

        For a clean shutdown: returns whether it got there (False also when offline).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            session = self._session
            if session is None:
                return False
            window = session.window
            if not self._live and not len(window) and window.cursor >= self._newest_seq:
                return True
            session.wake.set()
            await asyncio.sleep(0.05)
        return False

    async def run(self) -> None:
        """Connect, stream, reconnect; returns only by cancellation (acks are flushed first)."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._delete_acked_loop(), name="uplink.delete_acked")
                tasks.create_task(self._connect_loop(), name="uplink.connect")
        finally:
            await self.flush_acked()

    # --- connections ---------------------------------------------------------------------

    async def _connect_loop(self) -> None:
        while True:
            end = await self._one_connection()
            await asyncio.sleep(self._delay_after(end))

    async def _one_connection(self) -> LinkEnd:
        s = self.settings
        try:
            async with connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self._token}"},
                ssl=self._tls_argument(),
                open_timeout=s.open_timeout_s,
                ping_interval=s.ping_interval_s,
                ping_timeout=s.ping_timeout_s,
                max_size=MAX_FRAME_BYTES,
                compression=None,  # readings are small; deflate costs the Pi CPU
                close_timeout=s.close_timeout_s,
            ) as ws:
                try:
                    end = await self._serve(ws)
                except asyncio.CancelledError:
                    # The agent is stopping: a normal close (1000, docs/protocol.md), not the
                    # 1011 a context manager sends when left by an exception.
                    await ws.close(CloseCode.NORMAL, "agent stopping")
                    raise
        except (OSError, TimeoutError, WebSocketException) as err:
            end = _classify(err)
            self._log_failure(end, err)
        self._counters.last_end = end
        self._counters.since = datetime.now(UTC)
        return end

    async def _serve(self, ws: ClientConnection) -> LinkEnd:
        await self._park_struck()
        if self._suspects:
            # Suspects dropped from the buffer meanwhile (full) will never be acked.
            self._suspects &= {stored.seq for stored in await self.outbox.fetch(self._suspects)}
        session = _Session(
            ws,
            SendWindow(
                capacity=1 if self._suspects else self.settings.window,
                ack_timeout_s=self.settings.ack_timeout_s,
            ),
        )
        self._live.clear()  # whatever it held is in the outbox: the backlog covers it
        self._session = session
        self._health_due = True  # a new connection (or a restarted hub) learns it first
        self._backoffs["auth"].reset()  # the token was accepted
        self._counters.sessions += 1
        self._counters.since = datetime.now(UTC)
        logger.info("connected to %s", self.url, extra={"url": self.url})
        try:
            async with asyncio.TaskGroup() as tasks:
                sender = tasks.create_task(self._send_loop(session), name="uplink.send")
                timer = None
                if self.hub_clock is not None:
                    timer = tasks.create_task(
                        self._time_loop(session, self.hub_clock), name="uplink.hub_time"
                    )
                try:
                    await self._receive_loop(session)
                finally:
                    sender.cancel()
                    if timer is not None:
                        timer.cancel()
        finally:
            self._session = None
        if time.monotonic() - session.opened >= self.settings.stable_after_s:
            for backoff in self._backoffs.values():
                backoff.reset()
        rcvd = ws.protocol.close_rcvd
        end = _classify_close(rcvd.code if rcvd is not None else None)
        if end is LinkEnd.HUB_ERROR:
            self._hub_failed(session.window.in_flight())
        self._log_failure(end, f"closed ({rcvd or 'no close frame'})")
        return end

    def _tls_argument(self) -> ssl.SSLContext | bool | None:
        """websockets' ``ssl``: our context, else its default for wss:// (True), else none."""
        if self._tls is not None:
            return self._tls
        return True if self.url.startswith("wss://") else None

    def _delay_after(self, end: LinkEnd) -> float:
        if end is LinkEnd.AUTH_REFUSED:
            delay = self._backoffs["auth"].next_delay()
        elif end is LinkEnd.KICKED:
            delay = self._backoffs["kicked"].next_delay()
        else:
            delay = self._backoffs["normal"].next_delay()
        logger.info(
            "reconnecting in %.1f s", delay, extra={"delay_s": round(delay, 3), "reason": end.value}
        )
        return delay

    def _log_failure(self, end: LinkEnd, err: BaseException | str) -> None:
        if end is LinkEnd.AUTH_REFUSED:
            logger.error(
                "the hub refused the device token (%s): check the token of this device id; "
                "retrying slowly",
                err,
                extra={"reason": end.value, "error": str(err)},
            )
        elif end is LinkEnd.KICKED:
            logger.error(
                "the hub closed the connection with 1008 (policy violation): another agent is "
                "connected with this device id, or the token was revoked; backing off",
                extra={"reason": end.value},
            )
        elif end is LinkEnd.TLS_REFUSED:
            logger.error(
                "the hub's TLS certificate was not accepted (%s): set [hub] ca_file to the CA "
                "that signed it, or give the hub a certificate this system trusts; readings "
                "stay buffered",
                err,
                extra={"reason": end.value, "error": str(err)},
            )
        elif end is LinkEnd.HUB_GOING_AWAY:
            logger.info("the hub is going away (1001)", extra={"reason": end.value})
        elif end is LinkEnd.HUB_ERROR:
            logger.error(
                "the hub closed the connection with 1011 (an error on its side); "
                "readings stay buffered and are sent again",
                extra={"reason": end.value},
            )
        else:
            logger.warning(
                "connection to %s ended: %s",
                self.url,
                err,
                extra={"url": self.url, "reason": end.value, "error": str(err)},
            )

    # --- one connection: receive acks, send readings ---------------------------------

    async def _receive_loop(self, session: _Session) -> None:
        try:
            async for message in session.ws:
                self._handle(message, session, self._monotonic())
        except ConnectionClosed:
            return

    def _handle(self, message: str | bytes, session: _Session, received_mono: float) -> None:
        frame = parse_hub_frame(message)
        if isinstance(frame, AckFrame):
            acked = session.window.ack(frame.ranges)
            if acked:
                self._refusals.acked(acked)
                if self._suspects:
                    self._cleared(acked, session)
                self._acked.extend(acked)
                self._counters.acked += len(acked)
                self._ack_event.set()
                session.wake.set()
        elif isinstance(frame, TimeFrame):
            if self.hub_clock is not None:
                self.hub_clock.answer(frame.id, frame.hub_ts.timestamp(), received_mono)
        elif isinstance(frame, ErrorFrame):
            self._refused(frame, session)
        else:
            self._bad_frame(frame, session)

    def _refused(self, error: ErrorFrame, session: _Session) -> None:
        self._counters.refused += 1
        reason = client_text(error.reason)
        logger.warning(
            "hub rejected reading seq %s: %s",
            error.seq,
            reason,
            extra={"seq": error.seq, "reason": reason},
        )
        seq = error.seq
        if seq is None or seq not in session.window or not self._refusals.refused(seq):
            return
        # docs/protocol.md: an ack follows every error frame. This hub refused the reading
        # again and again and never acked it: re-sending it for ever helps no one.
        self._acked.extend(session.window.ack([(seq, seq)]))
        self._counters.given_up += 1
        self._ack_event.set()
        logger.error(
            "gave up reading seq %d: the hub refused it %d times without acking it (%s); "
            "deleted from the buffer",
            seq,
            self._refusals.limit,
            reason,
            extra={"seq": seq, "reason": reason},
        )

    def _hub_failed(self, in_flight: list[int]) -> None:
        """The hub closed with 1011: suspect what was in flight, strike a lone suspect."""
        if len(in_flight) == 1 and in_flight[0] in self._suspects:
            seq = in_flight[0]
            if self._strikes.refused(seq):
                self._suspects.discard(seq)
                self._to_park.append(seq)
                self._counters.parked += 1
                logger.error(
                    "parked reading seq %d: the hub failed (1011) %d times with it alone in "
                    "flight; kept in the buffer, sent again when the agent next starts",
                    seq,
                    self._strikes.limit,
                    extra={"seq": seq, "reason": LinkEnd.HUB_ERROR.value},
                )
            return
        if in_flight:
            self._suspects.update(in_flight)
            logger.warning(
                "the hub failed with %d readings in flight: sending one at a time until "
                "they are acked",
                len(in_flight),
                extra={"count": len(in_flight)},
            )

    def _cleared(self, acked: list[int], session: _Session) -> None:
        """Suspects acked: once none is left, the window opens fully again."""
        self._suspects.difference_update(acked)
        self._strikes.acked(acked)
        if not self._suspects:
            session.window.capacity = self.settings.window
            session.wake.set()
            logger.info("every suspect reading was acked: sending at full speed again")

    def _bad_frame(self, bad: BadHubFrame, session: _Session) -> None:
        self._counters.bad_hub_frames += 1
        session.bad_frames += 1
        if bad.problem is HubFrameProblem.UNKNOWN_TYPE or session.bad_frames > _BAD_FRAMES_LOGGED:
            # A later hub's frame type, or one more of a flood already reported.
            logger.debug("dropped a hub frame (%s)", bad.problem.value)
            return
        logger.warning(
            "dropped a hub frame (%s): %s",
            bad.problem.value,
            client_text(bad.reason),
            extra={"problem": bad.problem.value},
        )

    async def _send_loop(self, session: _Session) -> None:
        try:
            while True:
                session.wake.clear()
                await self._send_health(session)
                sent = await self._send_live(session)
                sent += await self._resend_expired(session)
                sent += await self._send_backlog(session)
                if not sent:
                    await self._sleep_until_woken(session)
        except ConnectionClosed:
            return  # the receive loop sees the close and reports why

    async def _send_health(self, session: _Session) -> None:
        if self._health is None or not self._health_due:
            return
        self._health_due = False  # before the send: a change during it sends again
        await session.ws.send(self._health())

    async def _send_live(self, session: _Session) -> int:
        window, count = session.window, 0
        while self._live and window.room:
            stored = self._live.popleft()
            if stored.seq in window:
                continue
            await session.ws.send(stored.wire())
            window.mark_sent((stored.seq,), time.monotonic())
            count += 1
        self._live.clear()  # no room: the backlog sends them when acks make room
        return count

    async def _time_loop(self, session: _Session, hub_clock: HubClock) -> None:
        """Measure the hub's clock in rounds while it is wanted (edge/hubtime.py)."""
        s = self.settings
        try:
            while True:
                if not hub_clock.wanted:
                    await asyncio.sleep(s.idle_wake_s)
                    continue
                hub_clock.start_round()
                for _ in range(hub_clock.round_samples):
                    request_id = hub_clock.request(self._monotonic())
                    await session.ws.send(time_request(request_id))
                    await asyncio.sleep(s.time_spacing_s)
                await asyncio.sleep(s.time_answer_s)
                verdict = hub_clock.end_round()
                trusted = isinstance(verdict, HubOffset)
                await asyncio.sleep(s.time_refresh_s if trusted else s.time_retry_s)
        except ConnectionClosed:
            return  # the receive loop sees the close and reports why

    async def _resend_expired(self, session: _Session) -> int:
        due = session.window.expired(time.monotonic())
        if not due:
            return 0
        found = await self.outbox.fetch(due)
        session.window.forget(set(due) - {stored.seq for stored in found})
        if found:
            logger.info(
                "re-sending %d unacked readings from seq %d",
                len(found),
                found[0].seq,
                extra={"count": len(found), "seqs": seq_ranges(s.seq for s in found)},
            )
            await self._send_batches(session, found)
        return len(found)

    async def _send_backlog(self, session: _Session) -> int:
        window = session.window
        room = window.room - min(self.settings.live_reserve, window.capacity // 2)
        if room <= 0:
            return 0
        known = self._newest_seq  # committed before the query (offer() follows a commit)
        if known >= 0 and window.cursor >= known:
            return 0  # nothing committed after the cursor: spare the query
        page = await self.outbox.page(after_seq=window.cursor, limit=min(room, MAX_BATCH_ITEMS))
        if not page:
            # No stamped reading after the cursor: everything up to what was known
            # committed has been sent (it went live, or was acked and deleted).
            window.advance(max(known, window.cursor))
            self._newest_seq = max(self._newest_seq, window.cursor)
            return 0
        window.advance(page[-1].seq)
        fresh = [stored for stored in page if stored.seq not in window]
        if fresh:
            await self._send_batches(session, fresh)
        return len(page)

    async def _send_batches(self, session: _Session, readings: list[Stored]) -> None:
        offset = 0
        for frame, count in pack_batches([stored.wire() for stored in readings]):
            # Mark before the send completes: an ack can arrive while send() waits on the socket.
            session.window.mark_sent(
                (stored.seq for stored in readings[offset : offset + count]), time.monotonic()
            )
            offset += count
            await session.ws.send(frame)

    async def _sleep_until_woken(self, session: _Session) -> None:
        timeout = self.settings.idle_wake_s
        expiry = session.window.next_expiry()
        if expiry is not None:
            timeout = min(timeout, max(0.0, expiry - time.monotonic()))
        # asyncio.timeout, not wait_for: 3.11's wait_for returns the result of an inner
        # future that completes as the task is cancelled, losing the cancellation
        # (CPython gh-86296); the TaskGroup of _serve cancels only once, so that hung
        # the agent's shutdown when a wake-up and SIGTERM came together.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await session.wake.wait()

    # --- acks to deletes ---------------------------------------------------------------

    async def _delete_acked_loop(self) -> None:
        while True:
            await self._ack_event.wait()
            self._ack_event.clear()
            await self.flush_acked()
            # Group the acks of the next interval into one transaction.
            await asyncio.sleep(self.settings.delete_interval_s)

    async def _park_struck(self) -> None:
        """Park the readings struck out since the last session, before anything is sent."""
        if not self._to_park:
            return
        seqs, self._to_park = self._to_park, []
        try:
            await self.outbox.park(seqs, reason=LinkEnd.HUB_ERROR.value, at=datetime.now(UTC))
        except OutboxError as err:
            # Still in the outbox: it will be sent, and struck out, again. Nothing is lost.
            logger.error(
                "could not park %d readings: %s",
                len(seqs),
                err,
                extra={"count": len(seqs), "error": str(err)},
            )

    async def flush_acked(self) -> None:
        """Delete the readings acked so far from the outbox (one transaction)."""
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        try:
            await self.outbox.delete(acked, acked_at=datetime.now(UTC))
        except asyncio.CancelledError:
            # Deleted or not (edge/outbox.py: the transaction ended either way):
            # kept, since deleting again is harmless and the agent flushes once more.
            self._acked.extend(acked)
            raise
        except OutboxError as err:
            # Kept for the next round; if the agent stops first, the hub gets them
            # again after the restart and stores them once (idempotent on ts).
            self._acked.extend(acked)
            logger.error(
                "could not delete %d acked readings: %s",
                len(acked),
                err,
                extra={"count": len(acked), "error": str(err)},
            )
            return
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "deleted %d acked readings",
                len(acked),
                extra={"count": len(acked), "seqs": seq_ranges(acked)},
            )
