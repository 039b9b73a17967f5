"""Redis away or unsafe: 503 problem+json with Retry-After within two seconds, recovery without a restart,
and a readiness check that names what is wrong."""

from __future__ import annotations

import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from support import RedisServer, comment_form, issue_captcha

Client = TestClient[web.Request, web.Application]
URL = "/v1/articles/bai-viet-1/comments"


async def test_redis_stopped_gives_503_within_2s_then_recovers_without_restart(
        client: Client, redis_server: RedisServer) -> None:
    captcha_id = await issue_captcha(client)
    redis_server.stop()
    try:
        # A captcha is a signed token: readers still get one (and its picture) while Redis is away.
        issued = await client.post("/v1/captchas")
        assert issued.status == 201
        assert (await client.get((await issued.json())["image_url"])).status == 200
        for method, path, body in (("POST", URL, comment_form(captcha_id)), ("GET", "/readyz", None)):
            started = time.monotonic()
            response = await client.request(method, path, json=body)
            elapsed = time.monotonic() - started
            assert response.status == 503, (path, await response.text())
            assert elapsed < 2.0, (path, elapsed)
            assert response.content_type == "application/problem+json"
            assert (await response.json(content_type=None))["code"] == "unavailable"
            assert int(response.headers["Retry-After"]) >= 1
        assert (await client.get("/healthz")).status == 200  # alive, just not ready
    finally:
        redis_server.start()
    # Same app, same process: it reconnects by itself; the refused attempt did not use the captcha up.
    response = await client.post(URL, json=comment_form(captcha_id))
    assert response.status == 202, await response.text()
    assert (await client.get("/readyz")).status == 200


async def test_redis_killed_mid_test_never_gives_a_500(client: Client, redis_server: RedisServer) -> None:
    captcha_ids = [await issue_captcha(client) for _ in range(4)]
    redis_server.kill()
    try:
        statuses = [(await client.post(URL, json=comment_form(captcha_id))).status for captcha_id in captcha_ids[:3]]
        assert statuses == [503, 503, 503]
    finally:
        redis_server.start()
    assert (await client.post(URL, json=comment_form(captcha_ids[3]))).status == 202


async def test_readyz_is_200_on_a_safe_redis(client: Client) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready"}


@pytest.mark.parametrize(("setting", "unsafe", "reason"), [
    ("appendonly", "no", "appendonly is off"),
    ("maxmemory-policy", "allkeys-lru", "maxmemory-policy is not noeviction"),
])
async def test_readyz_is_503_with_the_reason_on_an_unsafe_redis(client: Client, redis: Redis, setting: str,
                                                                unsafe: str, reason: str) -> None:
    original = str((await redis.config_get(setting))[setting])
    await redis.config_set(setting, unsafe)
    try:
        response = await client.get("/readyz")
        assert response.status == 503
        problem = await response.json(content_type="application/problem+json")
        assert problem["code"] == "unavailable" and reason in problem["detail"]
        assert "Retry-After" in response.headers
    finally:
        await redis.config_set(setting, original)
    assert (await client.get("/readyz")).status == 200


async def test_redis_refusing_writes_is_503_not_500(client: Client, redis: Redis) -> None:
    captcha_id = await issue_captcha(client)
    await redis.config_set("maxmemory", "1")  # noeviction + over the limit: every write is refused with OOM
    try:
        response = await client.post(URL, json=comment_form(captcha_id))
        assert response.status == 503, await response.text()
        assert (await response.json(content_type=None))["code"] == "unavailable"
        assert "Retry-After" in response.headers
    finally:
        await redis.config_set("maxmemory", "0")
    assert not [key async for key in redis.scan_iter(match="cm:{p*}:c:*")]
