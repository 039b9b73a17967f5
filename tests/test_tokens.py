"""Access tokens and roles (`service.tokens`, `service.api.auth`, `service.api.admin`, `service.cli token`)
against a real redis-server over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis
from support import ADMIN, ADMIN_TOKEN, Client, bearer, create_token, make_app

from service import cli, keys
from service.settings import Settings
from service.tokens import Role, Tokens

QUEUE = "/v1/moderation/queue"


async def create(client: Client, role: str, name: str,
                 ttl: int | None = None) -> dict[str, Any]:
    return await create_token(client, role, name, ttl_seconds=ttl)


async def everything_in(redis: Redis) -> list[bytes]:
    """Every key and every value in the database, whatever its type."""
    raw: Any = redis  # redis-py 8 types replies as bytes | str; this client returns bytes
    out: list[bytes] = []
    async for key in raw.scan_iter(count=1000):
        out.append(key)
        kind = (await raw.type(key)).decode()
        if kind == "string":
            out.append(await raw.get(key) or b"")
        elif kind == "hash":
            for field, value in (await raw.hgetall(key)).items():
                out.extend((field, value))
        elif kind == "list":
            out.extend(await raw.lrange(key, 0, -1))
        elif kind == "set":
            out.extend(await raw.smembers(key))
        elif kind == "zset":
            out.extend(await raw.zrange(key, 0, -1))
        elif kind == "stream":
            for entry_id, fields in await raw.xrange(key):
                out.append(entry_id)
                for field, value in fields.items():
                    out.extend((field, value))
        else:
            raise AssertionError(f"unexpected type {kind} of {key!r}")
    return out


async def test_admin_creates_lists_and_revokes_tokens_over_the_api(client: Client) -> None:
    created = await create(client, "moderator", "Lan")
    assert created["token"].startswith("cmt_") and len(created["token"]) >= 4 + 43  # 256 bits, base64url
    assert (created["role"], created["name"], created["expires_at"]) == ("moderator", "Lan", None)
    assert (await client.get(QUEUE, headers=bearer(created["token"]))).status == 200

    listed = await (await client.get("/v1/tokens", headers=ADMIN)).json()
    assert [(t["id"], t["role"], t["name"]) for t in listed["tokens"]] == [(created["id"], "moderator", "Lan")]
    assert created["token"] not in str(listed) and "token" not in listed["tokens"][0]

    response = await client.delete(f"/v1/tokens/{created['id']}", headers=ADMIN)
    assert response.status == 204
    assert (await client.get(QUEUE, headers=bearer(created["token"]))).status == 401
    assert (await (await client.get("/v1/tokens", headers=ADMIN)).json())["tokens"] == []
    response = await client.delete(f"/v1/tokens/{created['id']}", headers=ADMIN)
    assert response.status == 404

    moderator = await create(client, "moderator", "Minh")
    for method, path in (("POST", "/v1/tokens"), ("GET", "/v1/tokens"), ("DELETE", f"/v1/tokens/{moderator['id']}")):
        response = await client.request(method, path, headers=bearer(moderator["token"]),
                                        json={"role": "admin", "name": "x"})
        assert response.status == 403, (method, path)
    response = await client.post("/v1/tokens", json={"role": "root", "name": "x"}, headers=ADMIN)
    assert response.status == 422


async def test_a_revoked_token_stops_working_in_another_worker_within_the_cache_time(
        client: Client, aiohttp_client: AiohttpClient, settings: Settings) -> None:
    other_worker = await aiohttp_client(make_app(settings))
    created = await create(client, "moderator", "Lan")
    assert (await other_worker.get(QUEUE, headers=bearer(created["token"]))).status == 200  # now cached there
    assert (await client.delete(f"/v1/tokens/{created['id']}", headers=ADMIN)).status == 204
    assert (await client.get(QUEUE, headers=bearer(created["token"]))).status == 401
    revoked_at = time.monotonic()
    while (await other_worker.get(QUEUE, headers=bearer(created["token"]))).status == 200:
        assert time.monotonic() - revoked_at < 2.5, "a revoked token still works after the 2 s cache"
        await asyncio.sleep(0.1)
    fresh_app = await aiohttp_client(make_app(settings))
    assert (await fresh_app.get(QUEUE, headers=bearer(created["token"]))).status == 401


async def test_the_cli_manages_tokens_against_the_same_redis(
        client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COMMENTS_REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("COMMENTS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("COMMENTS_ENV", raising=False)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, err = await asyncio.to_thread(run, "token", "create", "--role", "moderator", "--name", "Lan")
    assert code == 0
    token = out.strip()
    assert token.startswith("cmt_") and "\n" not in token
    assert "role=moderator" in err and "name=Lan" in err and token not in err
    assert (await client.get(QUEUE, headers=bearer(token))).status == 200

    code, out, _ = await asyncio.to_thread(run, "token", "list")
    assert code == 0
    (line,) = out.strip().splitlines()
    token_id, role, name, _, expires = line.split("\t")
    assert (role, name, expires) == ("moderator", "Lan", "-") and token not in out
    api_list = await (await client.get("/v1/tokens", headers=ADMIN)).json()
    assert [t["id"] for t in api_list["tokens"]] == [token_id]

    code, _, err = await asyncio.to_thread(run, "token", "revoke", token_id)
    assert code == 0 and token_id in err
    revoked_at = time.monotonic()
    while (await client.get(QUEUE, headers=bearer(token))).status == 200:
        assert time.monotonic() - revoked_at < 2.5
        await asyncio.sleep(0.1)
    assert (await asyncio.to_thread(run, "token", "list"))[1] == ""


async def test_tokens_expire(client: Client, redis: Redis, settings: Settings,
                             aiohttp_client: AiohttpClient) -> None:
    created = await create(client, "feed", "site", ttl=3600)
    assert created["expires_at"] is not None
    digest = hashlib.sha256(created["token"].encode()).hexdigest()
    assert 3590 <= await redis.ttl(keys.token(digest)) <= 3600  # Redis drops it too
    assert (await client.get("/v1/feed", headers=bearer(created["token"]))).status == 200

    # Move its expiry into the past rather than wait an hour; a fresh worker has nothing cached.
    await redis.hset(keys.token(digest), "expires_at", int(time.time()) - 1)
    fresh = await aiohttp_client(make_app(settings))
    assert (await fresh.get("/v1/feed", headers=bearer(created["token"]))).status == 401

    tokens = Tokens(redis)
    short, info = await tokens.create(Role.FEED, "short", ttl_seconds=1)
    assert await tokens.authenticate(short) is not None
    await asyncio.sleep(1.1)
    assert await Tokens(redis).authenticate(short) is None
    assert info.id not in [t.id for t in await tokens.list()]


async def test_no_raw_token_is_stored_in_redis(client: Client, redis: Redis, settings: Settings,
                                               monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    raw = [(await create(client, role, f"n-{role}", ttl))["token"]
           for role, ttl in (("admin", None), ("moderator", 600), ("feed", None))]
    monkeypatch.setenv("COMMENTS_REDIS_URL", str(settings.redis_url))
    monkeypatch.setenv("COMMENTS_DATA_DIR", str(tmp_path))
    raw.append((await Tokens(redis).create(Role.MODERATOR, "direct"))[0])
    for token in raw:  # use them, so any caching or failure bookkeeping has happened too
        assert (await client.get("/v1/feed" if token == raw[2] else QUEUE, headers=bearer(token))).status == 200
    assert (await client.get(QUEUE, headers=bearer("cmt_wrong-token-value"))).status == 401
    raw.append(ADMIN_TOKEN)
    stored = await everything_in(redis)
    assert len(stored) > 10
    for token in raw:
        secret = token.encode()
        assert not any(secret in blob for blob in stored), "a raw token is stored in Redis"
        # ...but its SHA-256 is, so the scan looked at the right place.
        if token != ADMIN_TOKEN:
            assert any(hashlib.sha256(secret).hexdigest().encode() in blob for blob in stored)
    assert not any(b"cmt_wrong-token-value" in blob for blob in stored)


async def test_missing_invalid_and_wrongly_sent_tokens(client: Client) -> None:
    feed = (await create(client, "feed", "site"))["token"]
    moderator = (await create(client, "moderator", "Lan"))["token"]
    for headers in ({}, bearer("cmt_" + "A" * 43), {"Authorization": f"Token {moderator}"},
                    {"Authorization": "Bearer "}, {"Authorization": moderator}):
        response = await client.get(QUEUE, headers=headers)
        assert response.status == 401, headers
        assert response.content_type == "application/problem+json"
        assert (await response.json())["code"] == "unauthenticated"
    for name in ("token", "access_token", "api_key"):
        response = await client.get(QUEUE, params={name: moderator}, headers=bearer(moderator))
        assert response.status == 400 and (await response.json())["code"] == "bad_request"
        assert (await client.get("/v1/feed", params={name: feed})).status == 400
    response = await client.get("/v1/feed", headers=bearer(feed))
    assert response.status == 200


async def test_a_feed_token_cannot_moderate_and_a_moderator_cannot_read_the_feed(
        client: Client) -> None:
    feed = bearer((await create(client, "feed", "site"))["token"])
    moderator = bearer((await create(client, "moderator", "Lan"))["token"])
    comment_id = "0" * 26
    for method, path, body in (
            ("POST", f"/v1/moderation/comments/{comment_id}/decision", {"action": "approve"}),
            ("POST", "/v1/moderation/decisions", {"action": "approve", "ids": [comment_id]}),
            ("POST", "/v1/moderation/claims", {}),
            ("GET", QUEUE, None), ("GET", "/v1/moderation/stats", None),
            ("POST", f"/v1/moderation/comments/{comment_id}/retract", {}),
            ("POST", "/v1/moderation/articles/a1/close", None)):
        response = await client.request(method, path, json=body, headers=feed)
        assert response.status == 403, path
        assert (await response.json())["code"] == "forbidden"
    assert (await client.get("/v1/feed", headers=moderator)).status == 403
    assert (await client.get("/v1/feed", headers=feed)).status == 200
    assert (await client.get(QUEUE, headers=moderator)).status == 200


async def test_failed_attempts_are_logged_and_rate_limited(client: Client,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    good = bearer((await create(client, "moderator", "Lan"))["token"])
    caplog.set_level(logging.WARNING, logger="service.auth")
    for attempt in range(1, 21):
        response = await client.get(QUEUE, headers=bearer(f"cmt_guess-{attempt}"))
        assert response.status == 401, attempt
    response = await client.get(QUEUE, headers=bearer("cmt_guess-21"))
    assert response.status == 429
    assert (await response.json())["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 300
    failures = [r for r in caplog.records if r.getMessage() == "failed authentication"]
    assert len(failures) == 21
    assert all("guess" not in str(r.__dict__) for r in failures)  # the guessed tokens are not logged
    assert (await client.get(QUEUE, headers=good)).status == 200  # a valid token still works
