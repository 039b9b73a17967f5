"""Submitting comments over real HTTP into a real Redis: atomic queueing, concurrency, idempotency, abuse
defences (honeypot, minimum fill time, rate limits) and risk signals."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import time
import unicodedata
from collections.abc import Callable, Coroutine
from typing import Any, Final

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from redis_dump import dump_redis
from support import ADMIN, comment_form, issue_captcha, make_app

from service import keys
from service.appkeys import CAPTCHAS
from service.models import COMMENT_ID_RE, CommentSubmission
from service.scripts import as_text
from service.settings import Settings
from service.submissions import RECORD_FINGERPRINT_HEX, new_comment_id, read_receipt, same_request

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[Any], Coroutine[Any, Any, Client]]
ARTICLE = "bai-viet-42"
#: This module's reader, whose fields the tests read back from the stored record.
READER: Final = {"name": "Nguyễn Thị Lan", "title": "Góp ý", "body": "Bài viết rất hữu ích, cảm ơn tòa soạn."}


def _form(captcha_id: str, **changes: Any) -> dict[str, Any]:
    return comment_form(captcha_id, **(READER | changes))


async def _submit(client: Client, article: str = ARTICLE, headers: dict[str, str] | None = None,
                  **changes: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    form = _form(await issue_captcha(client), **changes)
    response = await client.post(f"/v1/articles/{article}/comments", json=form, headers=headers)
    return response.status, await response.json(content_type=None), dict(response.headers)


async def _record(redis: Redis, comment_id: str) -> dict[str, Any]:
    raw = await redis.hget(keys.comment(comment_id), "d")
    assert raw is not None, f"comment {comment_id} not stored"
    record: dict[str, Any] = orjson.loads(raw)
    return record


async def _stored_comments(redis: Redis) -> list[Any]:
    return [key async for key in redis.scan_iter(match="cm:{p*}:c:*")]


async def _app(aiohttp_client: MakeClient, settings: Settings, **changes: Any) -> Client:
    return await aiohttp_client(make_app(settings.model_copy(update=changes)))


# -- the happy path and atomicity -------------------------------------------------------------------------

async def test_an_accepted_comment_is_stored_with_its_queue_entries(client: Client, redis: Redis) -> None:
    status, body, headers = await _submit(client)
    assert status == 202
    assert headers["Cache-Control"] == "no-store"
    assert set(body) == {"id", "status", "receipt"} and body["status"] == "pending"
    comment_id = body["id"]
    assert COMMENT_ID_RE.match(comment_id)
    assert read_receipt(b"s" * 48, body["receipt"]) == comment_id
    assert read_receipt(b"s" * 48, body["receipt"][:-2] + "xx") is None

    partition = keys.partition_of_comment(comment_id)
    assert partition == keys.partition_of_article(ARTICLE)
    fields = await redis.hgetall(keys.comment(comment_id))
    assert fields[b"s"] == b"pending" and fields[b"a"] == ARTICLE.encode()
    record = await _record(redis, comment_id)
    assert record["name"] == "Nguyễn Thị Lan" and record["email"] == "lan@example.com"
    assert await redis.zscore(keys.pending(partition), comment_id) == int(fields[b"t"])
    assert await redis.zscore(keys.article_pending(ARTICLE), comment_id) == int(fields[b"t"])
    assert await redis.zscore(keys.leases(partition), comment_id) is None  # claimable: not leased
    # Nothing public yet: pre-moderation.
    assert await redis.zcard(keys.article_order(ARTICLE)) == 0

    queue = await client.get("/v1/moderation/queue", headers=ADMIN)
    assert queue.status == 200
    assert comment_id in (await queue.text())


@pytest.mark.parametrize("article", ["a", "bai-viet-42", "news:2024.05_x", "Z" * 128])
def test_every_key_the_submit_script_touches_shares_one_hash_tag(article: str) -> None:
    comment_id = new_comment_id(article)
    touched = keys.submit_keys(comment_id, article)
    assert {key[key.index("{"):key.index("}") + 1] for key in touched} == {
        f"{{p{keys.partition_of_article(article):02x}}}"}


async def test_fifty_concurrent_submissions_with_one_captcha_give_exactly_one_202(client: Client,
                                                                                  redis: Redis) -> None:
    form = _form(await issue_captcha(client))
    responses = await asyncio.gather(*(
        client.post(f"/v1/articles/{ARTICLE}/comments", json={**form, "body": f"lần {i}"}) for i in range(50)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [202] + [422] * 49
    codes = {(await r.json(content_type=None)).get("code") for r in responses if r.status == 422}
    assert codes == {"captcha_invalid"}
    assert len(await _stored_comments(redis)) == 1
    assert await redis.zcard(keys.pending(keys.partition_of_article(ARTICLE))) == 1


async def test_nfc_and_nfd_submissions_are_stored_identically(client: Client, redis: Redis) -> None:
    text = {"name": "Trần Thị Ánh Tuyết", "title": "Đường phố Huế", "body": "Những người dân ở đây rất tốt bụng."}
    nfc: dict[str, Any] = {k: unicodedata.normalize("NFC", v) for k, v in text.items()}
    nfd: dict[str, Any] = {k: unicodedata.normalize("NFD", v) for k, v in text.items()}
    assert nfc != nfd
    first = (await _submit(client, **nfc))[1]["id"]
    second = (await _submit(client, **nfd))[1]["id"]
    a, b = await _record(redis, first), await _record(redis, second)
    for field in text:
        assert a[field] == b[field] == nfc[field]
    via_api = await client.get(f"/v1/moderation/comments/{second}", headers=ADMIN)
    assert via_api.status == 200
    assert {k: (await via_api.json())[k] for k in text} == nfc


# -- idempotency ------------------------------------------------------------------------------------------

async def test_a_replayed_idempotency_key_returns_the_first_response_and_queues_one_comment(
        client: Client, redis: Redis) -> None:
    form = _form(await issue_captcha(client))
    headers = {"Idempotency-Key": "retry-7f3a"}
    first = await client.post(f"/v1/articles/{ARTICLE}/comments", json=form, headers=headers)
    second = await client.post(f"/v1/articles/{ARTICLE}/comments", json=form, headers=headers)
    assert (first.status, second.status) == (202, 202)
    assert await first.read() == await second.read()
    assert len(await _stored_comments(redis)) == 1
    partition = keys.partition_of_article(ARTICLE)
    assert await redis.zcard(keys.pending(partition)) == 1


async def test_a_record_keeps_a_short_fingerprint_and_a_long_one_of_before_is_recognised(
        client: Client, redis: Redis) -> None:
    """The record keeps 32 hex digits of the request's fingerprint (the SHA-256's first 128 bits); a record of
    before kept all 64, and a retry is still known by it (202, the same id, one comment)."""
    form = _form(await issue_captcha(client))
    headers = {"Idempotency-Key": "retry-short"}
    first = await client.post(f"/v1/articles/{ARTICLE}/comments", json=form, headers=headers)
    assert first.status == 202
    comment_id = (await first.json())["id"]
    short = as_text(await redis.hget(keys.comment(comment_id), "f") or b"")
    assert len(short) == RECORD_FINGERPRINT_HEX
    full = hashlib.sha256(orjson.dumps([ARTICLE, CommentSubmission.model_validate(form).model_dump(
        exclude={"captcha_id", "captcha_answer"})])).hexdigest()
    assert short == full[:RECORD_FINGERPRINT_HEX]
    await redis.hset(keys.comment(comment_id), "f", full)  # as a record of before held it
    retry = await client.post(f"/v1/articles/{ARTICLE}/comments", json=_form(await issue_captcha(client)),
                              headers=headers)  # the same form, a new captcha
    assert retry.status == 202 and (await retry.json())["id"] == comment_id
    assert len(await _stored_comments(redis)) == 1
    assert same_request(full, full) and same_request(full[:32], full) and not same_request(full[:32], "cd" * 32)
    assert same_request("", "") and not same_request("", full)


async def test_the_same_idempotency_key_with_another_body_is_refused(client: Client, redis: Redis) -> None:
    headers = {"Idempotency-Key": "retry-1"}
    assert (await _submit(client, headers=headers))[0] == 202
    status, problem, _ = await _submit(client, headers=headers, body="Một nội dung khác")
    assert status == 422 and problem["code"] == "idempotency_key_reused"
    assert len(await _stored_comments(redis)) == 1


async def test_a_malformed_idempotency_key_is_refused(client: Client) -> None:
    status, problem, _ = await _submit(client, headers={"Idempotency-Key": "x" * 201})
    assert status == 422 and problem["code"] == "validation_failed"


# -- bots: honeypot and minimum fill time -----------------------------------------------------------------

async def _nothing_queued(redis: Redis) -> None:
    assert await _stored_comments(redis) == []
    for partition in range(keys.PARTITIONS):
        assert await redis.zcard(keys.pending(partition)) == 0
        assert await redis.zcard(keys.leases(partition)) == 0


async def test_the_honeypot_gets_an_ordinary_202_and_nothing_is_queued(client: Client, redis: Redis) -> None:
    status, body, _ = await _submit(client, website="http://spam.example")
    assert status == 202
    assert set(body) == {"id", "status", "receipt"} and body["status"] == "pending"
    assert COMMENT_ID_RE.match(body["id"]) and "." in body["receipt"]
    await _nothing_queued(redis)


async def test_filling_in_faster_than_a_person_gets_an_ordinary_202_and_nothing_is_queued(
        aiohttp_client: MakeClient, settings: Settings, redis: Redis) -> None:
    client = await _app(aiohttp_client, settings, min_fill_seconds=3)
    status, body, _ = await _submit(client)
    assert status == 202 and body["status"] == "pending" and COMMENT_ID_RE.match(body["id"])
    await _nothing_queued(redis)
    # A person who took their time is queued: the same app, with a captcha issued four seconds ago.
    captcha_id = client.app[CAPTCHAS].issue(now_ms=int(time.time() * 1000) - 4000).id
    response = await client.post(f"/v1/articles/{ARTICLE}/comments", json=_form(captcha_id))
    assert response.status == 202
    assert len(await _stored_comments(redis)) == 1


# -- rate limits and client addresses ---------------------------------------------------------------------

async def test_per_ip_rate_limit_gives_429_with_retry_after(aiohttp_client: MakeClient, settings: Settings,
                                                            redis: Redis) -> None:
    client = await _app(aiohttp_client, settings, rate_limit_enabled=True, rate_limit_ip=(2, 60))
    for i in range(2):
        assert (await _submit(client, email=f"a{i}@example.com", article=f"a{i}"))[0] == 202
    status, problem, headers = await _submit(client, email="a9@example.com", article="a9")
    assert status == 429 and problem["code"] == "rate_limited"
    assert headers["Content-Type"] == "application/problem+json"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert len(await _stored_comments(redis)) == 2


async def test_per_email_rate_limit(aiohttp_client: MakeClient, settings: Settings) -> None:
    client = await _app(aiohttp_client, settings, rate_limit_enabled=True, rate_limit_email=(2, 60))
    for i in range(2):
        assert (await _submit(client, article=f"a{i}"))[0] == 202
    status, problem, headers = await _submit(client, article="a3")
    assert status == 429 and problem["code"] == "rate_limited" and "Retry-After" in headers
    assert (await _submit(client, email="khac@example.com", article="a5"))[0] == 202


async def test_per_article_rate_limit(aiohttp_client: MakeClient, settings: Settings) -> None:
    client = await _app(aiohttp_client, settings, rate_limit_enabled=True, rate_limit_article=(2, 60))
    for i in range(2):
        assert (await _submit(client, email=f"n{i}@example.com"))[0] == 202
    status, _, headers = await _submit(client, email="n9@example.com")
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert (await _submit(client, email="n9@example.com", article="another-article"))[0] == 202


async def _two_forwarded_clients(client: Client) -> list[int]:
    statuses = []
    for i, forwarded in enumerate(("203.0.113.1", "203.0.113.2")):
        status, _, _ = await _submit(client, email=f"x{i}@example.com", article=f"x{i}",
                                     headers={"X-Forwarded-For": forwarded})
        statuses.append(status)
    return statuses


async def test_forwarded_for_is_believed_only_from_trusted_proxies(aiohttp_client: MakeClient,
                                                                   settings: Settings, redis: Redis) -> None:
    limited = {"rate_limit_enabled": True, "rate_limit_ip": (1, 60)}
    untrusted = await _app(aiohttp_client, settings, **limited)
    assert await _two_forwarded_clients(untrusted) == [202, 429]  # both are 127.0.0.1

    await redis.flushdb()
    trusted = await _app(aiohttp_client, settings, trusted_proxies=[ipaddress.ip_network("127.0.0.1/32")],
                         **limited)
    assert await _two_forwarded_clients(trusted) == [202, 202]  # two readers behind our proxy
    status, _, _ = await _submit(trusted, email="x3@example.com", article="x3",
                                 headers={"X-Forwarded-For": "203.0.113.1"})
    assert status == 429  # the first reader again


async def test_ips_are_stored_only_as_a_keyed_hash(client: Client, redis: Redis) -> None:
    status, body, _ = await _submit(client, headers={"X-Forwarded-For": "198.51.100.23"})
    assert status == 202
    record = await _record(redis, body["id"])
    assert len(record["ip_hash"]) == 24
    everything = await dump_redis(redis)
    assert len(everything) > 10
    for item in everything:
        assert b"127.0.0.1" not in item and b"198.51.100.23" not in item, item


# -- risk signals -----------------------------------------------------------------------------------------

async def test_risk_signals_are_computed_and_stored(aiohttp_client: MakeClient, settings: Settings,
                                                    redis: Redis) -> None:
    client = await _app(aiohttp_client, settings, blocklist=["đồ ngốc"])
    clean = (await _submit(client, body="Cảm ơn bài viết."))[1]["id"]
    link = (await _submit(client, body="Xem thêm tại https://spam.example/khuyen-mai"))[1]["id"]
    rude = (await _submit(client, body="Tác giả là do ngoc", email="b@example.com"))[1]["id"]
    again = (await _submit(client, body="Cảm ơn   BÀI viết.", email="c@example.com"))[1]["id"]
    assert (await _record(redis, clean))["risk"] == []
    assert (await _record(redis, link))["risk"] == ["links"]
    assert (await _record(redis, rude))["risk"] == ["blocklisted_words"]
    assert (await _record(redis, again))["risk"] == ["repeated_text"]
    via_api = await client.get(f"/v1/moderation/comments/{rude}", headers=ADMIN)
    assert (await via_api.json())["risk"] == ["blocklisted_words"]


@pytest.mark.parametrize("parent", ["0" * 26])
async def test_a_reply_to_a_comment_that_is_not_approved_is_refused(client: Client, redis: Redis,
                                                                    parent: str) -> None:
    pending = (await _submit(client))[1]["id"]
    for parent_id in (parent, pending):
        status, problem, _ = await _submit(client, parent_id=parent_id)
        assert status == 422 and problem["code"] == "invalid_parent"
    assert len(await _stored_comments(redis)) == 1


async def test_waiting_for_a_replica_that_is_not_there_is_not_an_acknowledgement(
        aiohttp_client: MakeClient, settings: Settings, redis: Redis) -> None:
    """With `redis_replica_acks`, a comment only the primary holds is not acknowledged: 503 and Retry-After.
    It is kept all the same, and a retry with the same key returns the first answer instead of a duplicate."""
    client = await aiohttp_client(make_app(settings.model_copy(update={
        "redis_replica_acks": 1, "redis_replica_ack_timeout_ms": 50})))
    status, body, headers = await _submit(client, headers={"Idempotency-Key": "form-1"})
    assert status == 503 and body["code"] == "unavailable" and headers["Retry-After"] == "1"
    assert len(await _stored_comments(redis)) == 1
    status, body, _ = await _submit(client, headers={"Idempotency-Key": "form-1"})  # a new captcha, same form
    assert status == 202 and COMMENT_ID_RE.match(body["id"])
    assert len(await _stored_comments(redis)) == 1
