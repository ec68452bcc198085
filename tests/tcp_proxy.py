"""A TCP proxy a test controls: forward loopback connections to a target, cut them, restore.

For "database cut off" and "network cut" tests: point the client at the proxy
instead of the server, then :meth:`TcpProxy.cut` drops every live connection
at once (both sides reset, as a pulled cable followed by a timeout would) and
keeps new ones from getting through until :meth:`TcpProxy.restore`.

What "getting through" means while cut is chosen per cut (:class:`CutMode`):
``REFUSE`` stops listening, so a connect fails at once (ECONNREFUSED) like a
stopped server; ``HOLD`` accepts and forwards nothing until restored, like a
network that swallows packets (the client's own timeout decides).

From async tests::

    async with TcpProxy("127.0.0.1", 5432) as proxy:
        url = proxy.rewrite_url(postgres_url)
        ...
        await proxy.cut()
        await proxy.restore()

From synchronous code or another thread (the proxy runs its own event loop)::

    with ThreadedTcpProxy("127.0.0.1", 5432) as proxy:
        proxy.cut()
        proxy.restore()
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

_T = TypeVar("_T")
_CHUNK = 64 * 1024


class CutMode(enum.Enum):
    REFUSE = "refuse"  # not listening: connects fail with "connection refused"
    HOLD = "hold"  # connects are accepted, then wait for restore() before forwarding


class _Link:
    """One client connection and its upstream twin."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()  # RST, no lingering half-open state


class TcpProxy:
    """An asyncio TCP proxy on an ephemeral loopback port (see the module docstring)."""

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = port  # the real port once started
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._cut_mode: CutMode | None = None
        self._restored = asyncio.Event()
        self._restored.set()
        self.accepted = 0  # connections accepted, over the proxy's life
        self.forwarded = 0  # of those, connected through to the target

    @property
    def is_cut(self) -> bool:
        return self._cut_mode is not None

    @property
    def live_connections(self) -> int:
        return len(self._links)

    def rewrite_url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's (user, path, query kept)."""
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@{self.host}:{self.port}" if userinfo else f"{self.host}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    async def start(self) -> None:
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await self._stop_listening()
        self._abort_links()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def cut(self, mode: CutMode = CutMode.REFUSE) -> None:
        """Reset every live connection; until :meth:`restore`, new ones do not get through."""
        self._cut_mode = mode
        self._restored.clear()
        if mode is CutMode.REFUSE:
            await self._stop_listening()
        self._abort_links()
        await asyncio.sleep(0)  # let the pumps see their transports close

    async def restore(self) -> None:
        """Forward again; connections held by a ``HOLD`` cut now go through."""
        if self._server is None:
            await self._listen()  # same port: clients keep their address
        self._cut_mode = None
        self._restored.set()

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            # Python 3.12+ also waits for the handlers here; ours end with the links.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    def _abort_links(self) -> None:
        for link in list(self._links):
            link.abort()
        self._links.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.accepted += 1
        link = _Link(writer)
        try:
            if self._cut_mode is CutMode.HOLD:
                await self._restored.wait()
            self._links.add(link)
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
            except OSError:
                link.abort()
                return
            link.upstream = up_writer
            if link not in self._links:  # cut while connecting
                link.abort()
                return
            self.forwarded += 1
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            self._links.discard(link)
            link.abort()
            self._handlers.discard(task)


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof() and not sink.transport.is_closing():
            sink.write_eof()  # pass the half-close on
    except (ConnectionError, OSError):
        sink.transport.abort()


class ThreadedTcpProxy:
    """:class:`TcpProxy` on its own event loop in a background thread, with blocking methods."""

    def __init__(
        self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tcp-proxy", daemon=True
        )
        self._args = (target_host, target_port, host, port)
        self._proxy: TcpProxy | None = None

    @property
    def proxy(self) -> TcpProxy:
        if self._proxy is None:
            raise RuntimeError("the proxy is not started")
        return self._proxy

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def host(self) -> str:
        return self.proxy.host

    @property
    def live_connections(self) -> int:
        return self.proxy.live_connections

    def rewrite_url(self, url: str) -> str:
        return self.proxy.rewrite_url(url)

    def _run(self, coro: Coroutine[Any, Any, _T], timeout: float = 10.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> None:
        self._thread.start()
        target_host, target_port, host, port = self._args

        async def create() -> TcpProxy:
            proxy = TcpProxy(target_host, target_port, host=host, port=port)
            await proxy.start()
            return proxy

        self._proxy = self._run(create())

    def stop(self) -> None:
        if self._proxy is not None:
            self._run(self._proxy.stop())
            self._proxy = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
        self._loop.close()

    def cut(self, mode: CutMode = CutMode.REFUSE) -> None:
        self._run(self.proxy.cut(mode))

    def restore(self) -> None:
        self._run(self.proxy.restore())

    def __enter__(self) -> ThreadedTcpProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
