"""How the service listens: the listening sockets, the HTTP protocol with its time limits, and one worker's loop.

Sockets are bound once, by the supervising `comments-service run` process, before any worker starts, and every
worker serves the same sockets (as gunicorn and uvicorn do). The alternative, each worker binding the port with
SO_REUSEPORT, lets *any* process of the same user join the port: a second `comments-service run` on a busy port
started silently and the kernel spread connections over two services with two Redis servers. A socket bound
without SO_REUSEPORT is exclusive, so a second service fails to bind and says so (`PortInUse`), and there is no
window between a probe and the real bind for another process to slip in.

Time limits on a connection (aiohttp has the keep-alive one, not the head one):

* the request head (request line and headers) must arrive within `http_head_timeout_seconds`, counted from the
  connection's start, or, on a kept-alive connection, from the first byte of the next request: a client
  dripping a header line every few seconds (slowloris) is disconnected (`HeadDeadlines`: checked once a second,
  so the cut comes up to two seconds after the limit, never before it);
* an idle kept-alive connection is closed after `http_keepalive_timeout_seconds` (aiohttp's keep-alive timer;
  it also bounds a head that is still incomplete when it fires, e.g. one pipelined behind a request);
* a request body has `client_timeout_seconds` (`api.common.read_json`).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
from typing import Any, Final

import orjson
from aiohttp import web
from aiohttp.web_request import BaseRequest

from service import i18n
from service.api.problems import PATH as PROBLEMS_PATH
from service.errors import BadRequest, PayloadTooLarge

log = logging.getLogger(__name__)

#: Connections waiting to be accepted per socket (the kernel caps it at net.core.somaxconn).
BACKLOG: Final = 1024


class PortInUse(OSError):
    """Another process listens on the address; the service does not share it."""


def listen(host: str, port: int) -> list[socket.socket]:
    """Bind and listen on every address `host` names (IPv4 and IPv6 for a name like `localhost`), without
    SO_REUSEPORT; port 0 picks one free port for all of them."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[int, str]] = set()
    try:
        for family, type_, proto, _, address in infos:
            if (family, str(address[0])) in seen:
                continue
            seen.add((family, str(address[0])))
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            # SO_REUSEADDR lets a restart bind over connections in TIME_WAIT; it never lets two listen.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # the IPv4 socket serves IPv4
            bound_port = sockets[0].getsockname()[1] if len(sockets) > 1 else port
            try:
                sock.bind((address[0], bound_port, *address[2:]))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(exc.errno, f"{_where(str(address[0]), bound_port)} is already in use") from exc
                raise
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HeadDeadlines:
    """The head deadline of every connection of one worker, checked by one sweep a second.

    Why not a timer per request head (`loop.call_later`, cancelled when the head is complete): that is a timer
    made and cancelled per request, about 1.5 µs (docs/benchmarks.md, "Figures behind the code's reasons"); a
    connection now only notes the sweep's clock when a head starts. A head that started between two sweeps is
    dated to the earlier one, so a connection is cut once `timeout` plus one sweep `interval` have passed on the
    sweep's clock: never before `timeout`, at most two intervals after it.
    """

    def __init__(self, timeout: float, interval: float = 1.0) -> None:
        self.timeout = timeout
        self.interval = min(interval, timeout)
        #: The sweep's clock (`loop.time()` at the last sweep): what a head that starts now is dated.
        self.now = 0.0
        self.connections: set[HeadDeadlineHandler] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.now = loop.time()
        self._timer = loop.call_later(self.interval, self._sweep, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self.now = now = loop.time()
        cut = now - self.timeout - self.interval
        for connection in [c for c in self.connections if c._head_since is not None and c._head_since <= cut]:
            connection._head_expired()
        self._timer = loop.call_later(self.interval, self._sweep, loop)


class Activity:
    """How busy this process is serving: every connection counts its reads of request bytes here
    (`HeadDeadlineHandler.data_received`), for background work that gives way to requests (the search indexer:
    `indexer.Indexer`)."""

    __slots__ = ("reads",)

    def __init__(self) -> None:
        self.reads = 0


#: This process's (a worker's) activity.
ACTIVITY: Final = Activity()

#: aiohttp's own, called directly rather than through `super()` (it runs for every read).
_received: Final = web.RequestHandler.data_received


class HeadDeadlineHandler(web.RequestHandler):
    """aiohttp's protocol with a deadline for each request head (see the module docstring and `HeadDeadlines`).

    aiohttp has no hook for this, so it reads two attributes of `RequestHandler` (pinned aiohttp; the tests in
    test_server_limits.py fail if they change): `_messages`, the parsed requests not yet handled, which
    `data_received` appends to when a head is complete; and `_waiter`, pending while the handler loop waits for
    the next request, i.e. while the connection is between requests. Bytes arriving then start a head.
    """

    __slots__ = ("_deadlines", "_head_since")

    def __init__(self, manager: web.Server, *, deadlines: HeadDeadlines, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._deadlines = deadlines
        #: When the head being received started, on the sweep's clock; None when no head is awaited.
        self._head_since: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_since = self._deadlines.now
        self._deadlines.connections.add(self)

    def data_received(self, data: bytes) -> None:
        ACTIVITY.reads += 1
        _received(self, data)
        if self._messages:  # a head complete (the usual case: a whole head in one read): nothing awaited
            self._head_since = None
        elif self._head_since is None:
            waiter = self._waiter  # `_between_requests`, inlined: this runs for every read
            if waiter is not None and not waiter.done():  # bytes of a head that is not complete yet
                self._head_since = self._deadlines.now

    def connection_lost(self, exc: BaseException | None) -> None:
        self._head_since = None
        self._deadlines.connections.discard(self)
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._messages

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A request aiohttp's parser refused (a line or header too long, a malformed head) never reaches the
        middleware (aiohttp #3287): answer it here as the problem+json every other error is, not text/plain."""
        if status >= 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        lang = i18n.negotiate(request.headers.get("Accept-Language"))
        code = {413: PayloadTooLarge.code, 431: PayloadTooLarge.code}.get(status, BadRequest.code)
        body = {"type": f"{PROBLEMS_PATH}/{code}", "title": i18n.title(code, lang), "status": status, "code": code,
                "detail": i18n.detail(code, None, {}, lang)}
        response = web.Response(body=orjson.dumps(body), status=status, content_type="application/problem+json",
                                headers={"Content-Language": lang, "X-Content-Type-Options": "nosniff"})
        response.force_close()
        return response

    def _head_expired(self) -> None:
        self._head_since = None
        if self._between_requests():
            log.debug("request head not received within %.1f s; closing the connection", self._deadlines.timeout)
            self.force_close()


#: The collector's first threshold in a worker (Python's default: 700 allocations less deallocations). A submission
#: allocates a few hundred container objects (parsed JSON, the model, the script's arguments, redis-py's reply),
#: most of them gone by its end: at 700 the young generation was collected every request or two, and each tenth of
#: those collected the middle one too (docs/benchmarks.md, "server.serve").
GC_THRESHOLD: Final = (10_000, 10, 10)


def settle_garbage() -> None:
    """In a worker, once its app has started: what was built so far (modules, the app and its routes, compiled
    patterns and models, the Redis pool) lives as long as the process, so it is moved out of the collector's
    generations (`gc.freeze`) and no collection traverses it again; and the young generation is collected less
    often (`GC_THRESHOLD`). Cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


async def serve(app: web.Application, sockets: list[socket.socket], *, head_timeout: float,
                keepalive_timeout: float, shutdown_timeout: float = 10.0, settle: bool = False) -> None:
    """Serve `app` on `sockets` until SIGTERM (SIGINT too, unless the process ignores it), then stop gracefully:
    stop accepting, let requests in flight finish (up to `shutdown_timeout`), run the app's cleanup. `settle`: the
    worker's garbage collector is set up for serving once the app has started (`settle_garbage`)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        handled.append(signal.SIGINT)
    for signum in handled:
        loop.add_signal_handler(signum, stop.set)  # a second signal while stopping changes nothing
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout,
                           handler_cancellation=True)
    await runner.setup()
    if settle:
        settle_garbage()
    servers: list[asyncio.AbstractServer] = []
    deadlines = HeadDeadlines(head_timeout)
    deadlines.start(loop)
    try:
        manager = runner.server
        assert manager is not None

        def protocol() -> HeadDeadlineHandler:
            return HeadDeadlineHandler(
                manager, loop=loop, deadlines=deadlines, keepalive_timeout=keepalive_timeout,
                access_log=None,
                # A counts query for 100 articles, percent-encoded, is longer than aiohttp's 8 KiB default line.
                max_line_size=65536, max_field_size=16384)

        for sock in sockets:
            servers.append(await loop.create_server(protocol, sock=sock, backlog=BACKLOG))
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        deadlines.stop()
        await runner.cleanup()
        for signum in handled:
            loop.remove_signal_handler(signum)
