"""The ceilings: a bare aiohttp app on the same event loop (uvloop) as the service, no middleware, no validation,
no logging: what the stack can do at best for a response of that shape on this machine.

`GET /hello` answers a constant; `POST /json` parses a small JSON body and answers JSON; `POST /redis` does the
same with one Redis command (INCR) through redis-py asyncio against the service's own Redis.

The honest ceilings of issue 19 serve what the service serves, captured from it just before (`--capture`, a JSON
file): `GET /page` answers the list page's bytes with its headers, `GET /not-modified` its 304 with its headers
(when `If-None-Match` is the page's ETag, as the service checks it); `POST /submit` parses the submission's JSON,
makes one Redis script call (EVALSHA, loaded at start) and answers the service's 202 bytes and headers.

Like `comments-service run`, a supervisor binds one listening socket (`service.server.listen`) and `--workers`
processes serve it; `--reuseport` instead lets each worker bind its own with SO_REUSEPORT (to show what the
shared socket costs).

Run as `python -m bench.ceiling --port N --redis-url URL [--capture FILE] [--workers N] [--reuseport]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict
from redis.asyncio import Redis

REDIS = web.AppKey("redis", Redis)
SCRIPT = web.AppKey("script", str)
#: One script call, as the service's submission makes one (its work inside Redis is the service's, not the
#: stack's): a counter.
SUBMIT_LUA = "return redis.call('INCR', KEYS[1])"
#: Headers aiohttp writes itself.
_OWN = frozenset({"content-length", "date", "server", "transfer-encoding", "connection", "keep-alive"})


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


async def small_json(request: web.Request) -> web.Response:
    data = orjson.loads(await request.read())
    return web.Response(body=orjson.dumps({"ok": True, "echo": data.get("n")}), content_type="application/json")


async def json_with_redis(request: web.Request) -> web.Response:
    data = orjson.loads(await request.read())
    count = await request.app[REDIS].incr("bench:ceiling")
    return web.Response(body=orjson.dumps({"ok": True, "echo": data.get("n"), "count": count}),
                        content_type="application/json")


def _headers(captured: dict[str, Any], name: str) -> CIMultiDict[str]:
    return CIMultiDict((k, v) for k, v in captured[name]["headers"] if k.lower() not in _OWN)


def _served(captured: dict[str, Any]) -> list[web.RouteDef]:
    """The handlers answering the captured responses' bytes and headers."""
    page_body = base64.b64decode(captured["page"]["body"])
    page_headers = _headers(captured, "page")
    etag = page_headers["ETag"]
    not_modified_headers = _headers(captured, "not_modified")
    accepted_body = base64.b64decode(captured["submit"]["body"])
    accepted_headers = _headers(captured, "submit")

    async def page(request: web.Request) -> web.Response:
        return web.Response(body=page_body, headers=page_headers)

    async def not_modified(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=not_modified_headers)
        return web.Response(body=page_body, headers=page_headers)

    async def submit(request: web.Request) -> web.Response:
        form = orjson.loads(await request.read())
        await request.app[REDIS].evalsha(request.app[SCRIPT], 1, "bench:ceiling:submit", len(form))
        return web.Response(status=202, body=accepted_body, headers=accepted_headers)

    return [web.get("/page", page), web.get("/not-modified", not_modified), web.post("/submit", submit)]


def create_app(redis_url: str, captured: dict[str, Any] | None = None) -> web.Application:
    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        app[REDIS] = Redis.from_url(redis_url)
        app[SCRIPT] = str(await app[REDIS].script_load(SUBMIT_LUA))
        yield
        await app[REDIS].aclose()

    app = web.Application()
    app.cleanup_ctx.append(redis_ctx)
    app.router.add_get("/hello", hello)
    app.router.add_post("/json", small_json)
    app.router.add_post("/redis", json_with_redis)
    if captured is not None:
        app.add_routes(_served(captured))
    return app


def _reuseport_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _worker(app: web.Application, sock: socket.socket) -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - the service falls back the same way
        pass

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=1024).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--capture", type=Path, help="the service's responses to serve (JSON)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--reuseport", action="store_true", help="a socket per worker with SO_REUSEPORT")
    args = parser.parse_args()
    captured = orjson.loads(args.capture.read_bytes()) if args.capture else None
    shared: socket.socket | None = None
    if not args.reuseport:
        from service.server import listen

        shared = listen("127.0.0.1", args.port)[0]
    children = []
    for _ in range(max(1, args.workers)):
        pid = os.fork()
        if pid == 0:  # a worker: serves until SIGTERM
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            code = 0
            try:
                _worker(create_app(args.redis_url, captured), shared or _reuseport_socket(args.port))
            except BaseException:  # the worker's failure is printed and ends it
                import traceback

                traceback.print_exc()
                code = 1
            os._exit(code)
        children.append(pid)

    def stop(_signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    for child in children:
        _, status = os.waitpid(child, 0)
        failed = failed or status != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
