"""tests/tcp_proxy.py, through which storage tests cut the database, on a local echo server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from tests.tcp_proxy import CutMode, TcpProxy, ThreadedTcpProxy


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def _roundtrip(port: int, payload: bytes = b"ping") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 10)
    finally:
        writer.close()


async def test_forwards_cuts_refuses_and_restores(echo_port: int) -> None:
    async with TcpProxy("127.0.0.1", echo_port) as proxy:
        assert await _roundtrip(proxy.port) == b"ping"
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 10) == b"x"
        assert proxy.live_connections == 1

        await proxy.cut()
        # The live connection is reset...
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(reader.readexactly(1), 10)
        writer.close()
        # ...and a new one is refused.
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)

        await proxy.restore()
        assert await _roundtrip(proxy.port, b"again") == b"again"
        assert proxy.rewrite_url("postgresql://u:p@db:5432/x?a=b") == (
            f"postgresql://u:p@127.0.0.1:{proxy.port}/x?a=b"
        )


async def test_a_hold_cut_delays_new_connections_until_restore(echo_port: int) -> None:
    async with TcpProxy("127.0.0.1", echo_port) as proxy:
        await proxy.cut(CutMode.HOLD)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)  # accepted
        writer.write(b"held")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(4), 0.3)
        await proxy.restore()
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"held"
        writer.close()


def test_the_threaded_proxy_works_from_synchronous_code() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        target = listener.getsockname()[1]
        with ThreadedTcpProxy("127.0.0.1", target) as proxy:
            client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
            server_side, _ = listener.accept()
            with client, server_side:
                client.sendall(b"hello")
                server_side.settimeout(10)
                assert server_side.recv(5) == b"hello"
                proxy.cut()
                client.settimeout(10)
                try:
                    data = client.recv(1)
                except ConnectionResetError:
                    data = b""
                assert data == b""  # reset or closed by the cut
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
            proxy.restore()
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as again:
                server_side, _ = listener.accept()
                with server_side:
                    again.sendall(b"back")
                    server_side.settimeout(10)
                    assert server_side.recv(4) == b"back"
