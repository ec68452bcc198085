"""Connection limits (hub/limits.py, hub/guard.py): timeouts and caps through real sockets.

Loopback has a whole /8: a client socket bound to 127.0.0.2 reaches the hub on
127.0.0.1 from another address, so per-address caps are tested with real
addresses and no exemption games.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hub.limits import (
    EVICT_AFTER_S,
    Closure,
    ConnectionGate,
    ConnectionLimits,
    Refusal,
)
from tests.hub.served_hub import add_token, served_hub
from tests.support.hub import (
    RunningHub,
    device_id,
    parse_metrics,
    reading,
    recv_ack_seqs,
    recv_json,
    running_hub,
)
from tests.support.polling import until

# -- the gate's bookkeeping, on plain objects --------------------------------------------


class Conn:
    def __init__(self) -> None:
        self.dropped: Closure | None = None

    def drop(self, closure: Closure) -> None:
        self.dropped = closure


def test_the_per_address_cap_refuses_that_address_only() -> None:
    gate = ConnectionGate(ConnectionLimits(max_pending_per_address=2, exempt=()))
    assert gate.admit(Conn(), "10.0.0.1", 0.0) is None
    assert gate.admit(Conn(), "10.0.0.1", 0.0) is None
    assert gate.admit(Conn(), "10.0.0.1", 0.0) is Refusal.ADDRESS_FULL
    assert gate.admit(Conn(), "10.0.0.2", 0.0) is None
    assert gate.counters.refused[Refusal.ADDRESS_FULL] == 1


def test_exempt_addresses_are_held_to_the_global_cap_only() -> None:
    gate = ConnectionGate(ConnectionLimits(max_pending=3, max_pending_per_address=1))
    assert [gate.admit(Conn(), "127.0.0.1", 0.0) for _ in range(3)] == [None] * 3
    assert gate.admit(Conn(), "127.0.0.1", 0.0) is Refusal.PENDING_FULL  # none idle for long


def test_at_the_global_cap_a_newcomer_evicts_the_oldest_idle_connection() -> None:
    gate = ConnectionGate(ConnectionLimits(max_pending=2, max_pending_per_address=0))
    old, busy, new = Conn(), Conn(), Conn()
    assert gate.admit(busy, "10.0.0.1", 0.0) is None
    gate.busy(busy)  # a request in progress is never evicted
    assert gate.admit(old, "10.0.0.2", 0.5) is None
    # One connection per address, idle for less than EVICT_AFTER_S: a reconnect
    # storm, not an attack; the newcomer is refused.
    assert gate.admit(Conn(), "10.0.0.3", 0.5 + EVICT_AFTER_S / 2) is Refusal.PENDING_FULL
    assert gate.admit(new, "10.0.0.3", 0.5 + EVICT_AFTER_S) is None
    assert (old.dropped, busy.dropped, new.dropped) == (Closure.EVICTED, None, None)
    assert gate.pending == 2
    gate.forget(old)  # its connection_lost comes later: a no-op
    assert gate.pending == 2


def test_an_address_holding_more_gives_way_at_once() -> None:
    gate = ConnectionGate(ConnectionLimits(max_pending=4, max_pending_per_address=0))
    flood = [Conn() for _ in range(3)]
    for conn in flood:
        assert gate.admit(conn, "10.0.0.9", 0.0) is None
    other = Conn()
    assert gate.admit(other, "10.0.0.1", 0.0) is None
    newcomer = Conn()
    assert gate.admit(newcomer, "10.0.0.2", 0.1) is None  # young, but 3 >= 0 + 2
    assert [c.dropped for c in flood] == [Closure.EVICTED, None, None]
    assert other.dropped is None


def test_idle_again_after_an_answer_goes_to_the_back_of_the_line() -> None:
    gate = ConnectionGate(ConnectionLimits(max_pending=2, max_pending_per_address=0))
    first, second = Conn(), Conn()
    gate.admit(first, "a", 0.0)
    gate.admit(second, "b", 0.0)
    gate.busy(first)
    gate.idle(first, 5.0)
    gate.admit(Conn(), "c", 5.5)
    assert (first.dropped, second.dropped) == (None, Closure.EVICTED)


def test_caps_being_hit_are_reported_at_most_once_a_minute() -> None:
    gate = ConnectionGate(ConnectionLimits(max_pending_per_address=1, exempt=()))
    assert gate.cap_report(0.0) is None  # nothing hit yet
    gate.admit(Conn(), "a", 0.0)
    for _ in range(5):
        gate.admit(Conn(), "a", 0.0)
    report = gate.cap_report(1.0)
    assert report is not None
    assert "5 connection(s) refused or evicted" in report
    gate.admit(Conn(), "a", 2.0)
    assert gate.cap_report(30.0) is None
    later = gate.cap_report(61.0)
    assert later is not None
    assert "1 connection(s)" in later
    assert gate.cap_report(200.0) is None  # nothing new


def test_a_timed_out_connection_is_closed_once_and_counted() -> None:
    gate = ConnectionGate(ConnectionLimits())
    conn = Conn()
    gate.admit(conn, "a", 0.0)
    gate.timed_out(conn)
    gate.timed_out(conn)
    assert conn.dropped is Closure.HANDSHAKE_TIMEOUT
    assert gate.counters.closed[Closure.HANDSHAKE_TIMEOUT] == 1
    assert gate.pending == 0


@pytest.mark.parametrize(
    ("fd_limit", "pending", "per_address", "dashboards"),
    [
        (1_048_576, 1024, 64, 10_000),
        (1024, 240, 64, 480),
        (256, 48, 48, 96),
        (100, 9, 9, 18),
        (70, 8, 8, 8),
    ],
)
def test_the_caps_fit_in_the_descriptor_limit(
    fd_limit: int, pending: int, per_address: int, dashboards: int
) -> None:
    fitted = ConnectionLimits().fitted(fd_limit)
    assert (fitted.max_pending, fitted.max_pending_per_address, fitted.max_dashboards) == (
        pending,
        per_address,
        dashboards,
    )
    # 0 (no cap of its own): the descriptors are the cap.
    off = ConnectionLimits(max_pending=0, max_dashboards=0).fitted(fd_limit)
    assert off.max_pending >= pending
    assert off.max_dashboards >= dashboards
    assert off.max_pending + off.max_dashboards < fd_limit


# -- through a real server -----------------------------------------------------------------


# The raw connections each limited hub's test opened (open_from), closed when it stops:
# one the hub closed first is still ours to close (else a ResourceWarning).
_raw_writers: dict[int, list[asyncio.StreamWriter]] = {}


@contextlib.asynccontextmanager
async def limited_hub(tmp_path: Path, **limits: object) -> AsyncIterator[RunningHub]:
    async with running_hub(
        None,
        tmp_path / "data",
        limits=ConnectionLimits(**limits),  # type: ignore[arg-type]
    ) as hub:
        _raw_writers[id(hub)] = []
        try:
            yield hub
        finally:
            for writer in _raw_writers.pop(id(hub)):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()


async def open_from(
    hub: RunningHub, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port, local_addr=(source, 0))
    _raw_writers[id(hub)].append(writer)
    return reader, writer


async def closed_within(reader: asyncio.StreamReader, within: float) -> bytes:
    """What the peer sent before closing; fails if it is still open after ``within``."""
    data = b""
    async with asyncio.timeout(within):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                data += chunk
    return data


async def healthz(hub: RunningHub, source: str = "127.0.0.1") -> int:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, timeout=10) as http:
        return (await http.get(f"{hub.http}/healthz")).status_code


async def test_a_connection_that_never_sends_a_request_is_closed(
    tmp_path: Path, no_errors_logged: object
) -> None:
    async with limited_hub(tmp_path, handshake_timeout_s=0.5) as hub:
        silent, _ = await open_from(hub)
        trickle, trickle_writer = await open_from(hub)
        trickle_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await closed_within(silent, 5.0) == b""
        assert await closed_within(trickle, 5.0) == b""
        assert loop.time() - started < 3.0
        samples = await hub.metrics()
        assert samples['ems_connections_closed_total{reason="handshake_timeout"}'] == 2
        assert await healthz(hub) == 200


async def test_an_idle_keep_alive_connection_is_closed_too(
    tmp_path: Path, no_errors_logged: object
) -> None:
    async with limited_hub(tmp_path, handshake_timeout_s=1.0) as hub:
        reader, writer = await open_from(hub)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await closed_within(reader, 6.0)
        assert answer.startswith(b"HTTP/1.1 200 ")


async def test_over_the_per_address_cap_a_newcomer_gets_503_and_others_are_served(
    tmp_path: Path, no_errors_logged: object
) -> None:
    async with limited_hub(
        tmp_path, max_pending_per_address=5, exempt=(), handshake_timeout_s=30
    ) as hub:
        held = [await open_from(hub, "127.0.0.2") for _ in range(5)]
        reader, writer = await open_from(hub, "127.0.0.2")
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        refused = await closed_within(reader, 5.0)
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"retry-after: 5\r\n" in refused
        assert await healthz(hub, "127.0.0.3") == 200
        samples = await hub.metrics()
        assert samples['ems_connections_refused_total{reason="address_full"}'] == 1
        assert samples["ems_pending_connections"] >= 5
        for _, held_writer in held:
            held_writer.close()


async def test_at_the_global_cap_the_oldest_idle_connection_makes_room(
    tmp_path: Path, no_errors_logged: object
) -> None:
    async with limited_hub(
        tmp_path, max_pending=4, max_pending_per_address=0, handshake_timeout_s=30
    ) as hub:
        held = [await open_from(hub, f"127.0.0.{10 + i}") for i in range(4)]
        await asyncio.sleep(EVICT_AFTER_S + 0.2)
        assert await healthz(hub, "127.0.0.20") == 200
        assert await closed_within(held[0][0], 5.0) == b""  # the oldest went
        samples = await hub.metrics()
        assert samples['ems_connections_closed_total{reason="evicted"}'] >= 1


async def test_over_the_dashboard_caps_a_dashboard_is_closed_with_1013(
    tmp_path: Path, no_errors_logged: object
) -> None:
    async with limited_hub(
        tmp_path, max_dashboards=3, max_dashboards_per_address=2, exempt=()
    ) as hub:
        url = hub.ws("/ws/dashboard/ems_001")
        first = await connect(url)
        second = await connect(url)
        for source, reason in [("127.0.0.1", "dashboards_address_full"), ("127.0.0.2", None)]:
            client = await connect(url, local_addr=(source, 0))
            if reason is None:
                assert (await recv_json(client))["type"] == "status"
                third = client
                continue
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013
        fourth = await connect(url, local_addr=("127.0.0.3", 0))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(fourth.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
        samples = await hub.metrics()
        assert samples['ems_connections_refused_total{reason="dashboards_full"}'] == 1
        assert samples['ems_connections_refused_total{reason="dashboards_address_full"}'] == 1
        for client in (first, second, third):
            await client.close()
        # Their places are free again.
        await until(lambda: hub.hub._dashboards.total == 0)
        again = await connect(url)
        assert (await recv_json(again))["type"] == "status"
        await again.close()


async def test_a_silent_device_is_closed_and_a_talking_one_stays(
    tmp_path: Path, no_errors_logged: object
) -> None:
    async with limited_hub(tmp_path, device_idle_timeout_s=1.0) as hub:
        quiet_id, talking_id = device_id(), device_id()
        talking = await hub.device(talking_id, await hub.add_token(talking_id))
        quiet_token = await hub.add_token(quiet_id)
        loop = asyncio.get_running_loop()
        started = loop.time()
        quiet = await hub.device(quiet_id, quiet_token)
        seq = 0

        async def talk_until_the_quiet_one_is_closed() -> None:
            nonlocal seq
            while True:
                await talking.send(json.dumps(reading(seq)))
                seq += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(quiet.recv(), 0.3)

        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(talk_until_the_quiet_one_is_closed(), 20)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "idle")
        assert 0.9 <= loop.time() - started < 5.0
        await recv_ack_seqs(talking, set(range(seq)))  # still streaming, still acked
        samples = await hub.metrics()
        assert samples['ems_connections_closed_total{reason="device_idle"}'] == 1
        assert not hub.hub.reader.is_online(quiet_id)


def test_the_guard_uses_uvicorns_own_hooks() -> None:
    """hub/guard.py overrides these; a uvicorn that renamed one would bypass the gate."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    for hook in [
        "connection_made",
        "connection_lost",
        "data_received",
        "on_headers_complete",
        "on_response_complete",
        "handle_websocket_upgrade",
    ]:
        assert callable(getattr(HttpToolsProtocol, hook)), hook


def test_loopback_has_room_for_other_source_addresses() -> None:
    """The tests above bind 127.0.0.x sources; this machine must allow it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.2", 0))


# -- the descriptor limit, on a real process ---------------------------------------------

FD_LIMIT = 256
ATTACKERS = [f"127.0.0.{n}" for n in range(2, 10)]
PER_ATTACKER = 50  # 400 idle connections kept open, more than the whole descriptor limit


async def hold_idle_connections(port: int, source: str, count: int, opened: list[int]) -> None:
    """Keep ``count`` connections from ``source`` open and silent; reopen what is closed."""

    async def one() -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0)
                )
            except OSError:
                await asyncio.sleep(0.05)
                continue
            opened[0] += 1
            try:
                with contextlib.suppress(OSError):
                    while await reader.read(4096):
                        pass
            finally:  # cancelled at the end of the test too: closed either way
                writer.close()
            await asyncio.sleep(0.01)

    async with asyncio.TaskGroup() as tasks:
        for _ in range(count):
            tasks.create_task(one())


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def test_idle_connections_cannot_take_the_descriptors_devices_need(tmp_path: Path) -> None:
    """fd limit 256, 400 idle connections held open: a device still streams, /healthz answers."""
    data = tmp_path / "data"
    token = add_token(data, "ems_fd")
    with served_hub(data, log_path=tmp_path / "hub.log", fd_limit=FD_LIMIT) as served:
        opened = [0]
        attack = asyncio.gather(
            *(
                hold_idle_connections(served.port, source, PER_ATTACKER, opened)
                for source in ATTACKERS
            )
        )
        try:
            await until(lambda: opened[0] >= len(ATTACKERS) * PER_ATTACKER, within=60)
            await asyncio.sleep(2.0)  # the attack in its stride: held, refused, reopened
            peak_fds = open_fds(served.process.pid)

            device = await connect_retrying(
                served.ws("/ws/device/ems_fd"), {"Authorization": f"Bearer {token}"}
            )
            for seq in range(20):
                await device.send(json.dumps(reading(seq)))
            assert await recv_ack_seqs(device, set(range(20))) >= set(range(20))
            async with httpx.AsyncClient(timeout=10) as http:
                for _ in range(5):
                    assert (await http.get(f"{served.http}/healthz")).status_code == 200
                metrics = (await http.get(f"{served.http}/metrics")).text
            for seq in range(20, 40):  # still streaming under the attack
                await device.send(json.dumps(reading(seq)))
            await recv_ack_seqs(device, set(range(20, 40)))
            peak_fds = max(peak_fds, open_fds(served.process.pid))
            await device.close()
        finally:
            attack.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await attack
    log = served.log()
    assert f"file-descriptor limit: {FD_LIMIT}" in log
    assert "allow at most 48 pending connections (48 per address) and 96 dashboards" in log
    assert "Too many open files" not in log
    assert "connection caps reached" in log
    assert "Traceback" not in log
    assert peak_fds < FD_LIMIT - 32, f"{peak_fds} descriptors open"
    samples = parse_metrics(metrics)
    turned_away = sum(
        value
        for name, value in samples.items()
        if name.startswith(("ems_connections_refused_total", "ems_connections_closed_total"))
    )
    print(f"hub descriptors at peak: {peak_fds}; connections refused or closed: {turned_away:.0f}")
    assert turned_away > 0, "the attack was never held back: the test proves nothing"


async def connect_retrying(url: str, headers: dict[str, str]) -> ClientConnection:
    """Connect as the edge does: a 503 at a cap is retried after a short pause."""
    statuses: list[int] = []
    for _ in range(10):
        try:
            return await connect(url, additional_headers=headers, open_timeout=10)
        except InvalidStatus as err:
            statuses.append(err.response.status_code)
            await asyncio.sleep(0.5)
    raise AssertionError(f"the device never got in: {statuses}")


async def test_pipelined_requests_are_answered_whatever_the_timeout(
    tmp_path: Path, no_errors_logged: object
) -> None:
    """A connection busy with its second pipelined request is not idle: never cut mid-answer."""
    async with limited_hub(tmp_path, handshake_timeout_s=0.2) as hub:
        reader, writer = await open_from(hub)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
        answers = await closed_within(reader, 10.0)
        assert answers.count(b"HTTP/1.1 200 OK\r\n") == 20


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one_and_logged(tmp_path: Path) -> None:
    with served_hub(tmp_path / "data", log_path=tmp_path / "hub.log", fd_limit=(300, 4096)) as hub:
        soft = int(
            next(
                line.split()[3]
                for line in Path(f"/proc/{hub.process.pid}/limits").read_text().splitlines()
                if line.startswith("Max open files")
            )
        )
    assert soft == 4096
    assert "file-descriptor limit raised from 300 to 4096 (the hard limit)" in hub.log()
