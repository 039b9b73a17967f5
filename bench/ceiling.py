"""The ceilings: a bare aiohttp app in one process, on the same event loop (uvloop) as the service.

`GET /hello` answers a constant; `POST /json` parses a small JSON body and answers JSON; `POST /redis` does the
same with one Redis command (INCR) through redis-py asyncio against the service's own Redis. No middleware, no
validation, no logging: what one core can do at best, so each scenario is reported as a fraction of it.

Run as `python -m bench.ceiling --port N --redis-url URL` (the harness does).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import orjson
from aiohttp import web
from redis.asyncio import Redis

REDIS = web.AppKey("redis", Redis)


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


def create_app(redis_url: str) -> web.Application:
    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        app[REDIS] = Redis.from_url(redis_url)
        yield
        await app[REDIS].aclose()

    app = web.Application()
    app.cleanup_ctx.append(redis_ctx)
    app.router.add_get("/hello", hello)
    app.router.add_post("/json", small_json)
    app.router.add_post("/redis", json_with_redis)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - the service falls back the same way
        pass
    web.run_app(create_app(args.redis_url), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
