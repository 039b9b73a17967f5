"""`comments-service doctor`: each kind of damage, seeded into data the service made, is found; `--repair` mends
it and a second run finds nothing (`service.doctor`)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from support import RedisServer

from service import keys
from service.app import BACKGROUND
from service.doctor import doctor, report
from service.tasks import stop

Client = TestClient[web.Request, web.Application]
ARTICLE: Final = "bai-viet-9"
OTHER: Final = "urn:newsml:example.com:2024:b1"  # an article id with ':' in it
ADMIN: Final = {"Authorization": "Bearer test-admin-token"}


@dataclass
class Comments:
    pending: list[str]
    approved: str


async def _submit(client: Client, article: str) -> str:
    captcha_id = (await (await client.post("/v1/captchas")).json())["id"]
    form = {"name": "Lan", "email": "lan@example.com", "title": "Góp ý", "body": "Bài viết rất hữu ích.",
            "captcha_id": captcha_id, "captcha_answer": "ABCDE"}
    response = await client.post(f"/v1/articles/{article}/comments", json=form)
    assert response.status == 202
    comment_id: str = (await response.json())["id"]
    return comment_id


async def _comments(client: Client) -> Comments:
    background: list[asyncio.Task[None]] = client.app[BACKGROUND]
    await stop(background)
    pending = [await _submit(client, ARTICLE) for _ in range(3)]
    approved = await _submit(client, ARTICLE)
    other = await _submit(client, OTHER)
    for comment_id in (approved, other):
        response = await client.post(f"/v1/moderation/comments/{comment_id}/decision", json={"action": "approve"},
                                     headers=ADMIN)
        assert response.status == 200
    response = await client.post("/v1/moderation/claims", json={"limit": 1}, headers=ADMIN)
    assert response.status == 200
    return Comments(pending, approved)


P: Final = keys.partition_of_article(ARTICLE)
GHOST: Final = f"{P:02x}" + "0" * 24  # a comment id of the partition that has no record


Damage = Callable[[Redis, Comments], Awaitable[Any]]

DAMAGE: Final[dict[str, tuple[Damage, str, str]]] = {
    # name: (how, the finding's kind, its key)
    "pending record out of the pending queue": (
        lambda r, c: r.zrem(keys.pending(P), c.pending[1]), "pending_not_in_queue", keys.pending(P)),
    "leased record out of the pending queue": (
        lambda r, c: r.zrem(keys.pending(P), c.pending[0]), "pending_not_in_queue", keys.pending(P)),
    "queue entry without a record": (
        lambda r, c: r.zadd(keys.pending(P), {GHOST: 1}), "queue_entry_without_record", keys.pending(P)),
    "lease of a comment that is not pending": (
        lambda r, c: r.zadd(keys.leases(P), {c.approved: 2**40}), "queue_entry_without_record", keys.leases(P)),
    # The queue keys of before (claimable: pending without a live lease; the record names its article).
    "the ready queue of an older version": (
        lambda r, c: r.zadd(keys.legacy_ready(P), {c.pending[1]: 1}), "legacy_queue_key", keys.legacy_ready(P)),
    "the pending->article hash of an older version": (
        lambda r, c: r.hset(keys.legacy_pending_articles(P), c.pending[1], ARTICLE), "legacy_queue_key",
        keys.legacy_pending_articles(P)),
    # The search sorted sets of before (the compact index keeps strings): deleted by a repair.
    "a word's search sorted set of an older version": (
        lambda r, c: r.zadd(keys.word_index(P, "xylograph"), {c.pending[1]: 1}), "legacy_search_index",
        keys.word_index(P, "xylograph")),
    "every comment's search sorted set of an older version": (
        lambda r, c: r.zadd(f"{keys.PREFIX}:{{p{P:02x}}}:all", {c.pending[1]: 1}), "legacy_search_index",
        f"{keys.PREFIX}:{{p{P:02x}}}:all"),
    "lease without a holder": (
        lambda r, c: r.hdel(keys.holders(P), c.pending[0]), "lease_without_holder", keys.leases(P)),
    "holder without a lease": (
        lambda r, c: r.hset(keys.holders(P), c.pending[2], "someone"), "holder_without_lease", keys.holders(P)),
    # The claim hint ahead of comments with no lease (claim.lua would never reach them): deleted by a repair.
    "claim hint ahead of unleased comments": (
        lambda r, c: r.hset(keys.claim_hint(P), mapping={"from": 2**45, "swept": 0}), "claim_hint_ahead",
        keys.claim_hint(P)),
    "count differs from the order set": (
        lambda r, c: r.hset(keys.article(ARTICLE), "count", 7), "count_mismatch", keys.article(ARTICLE)),
    "approved comment not in the order set": (
        lambda r, c: r.zrem(keys.article_order(ARTICLE), c.approved), "approved_not_in_order",
        keys.article_order(ARTICLE)),
    # Copies of the public view that versions before issue 19 stored: not read, deleted by a repair.
    "an article's public hash left by an older version": (
        lambda r, c: r.hset(keys.legacy_article_public(ARTICLE), c.approved, '{"name":"Lan"}'),
        "legacy_public_hash", keys.legacy_article_public(ARTICLE)),
    "order entry of a comment not approved": (
        lambda r, c: r.zadd(keys.article_order(ARTICLE), {c.pending[1]: 99}), "order_entry_not_approved",
        keys.article_order(ARTICLE)),
}
if hasattr(keys, "article_pending"):  # the per-article pending index
    DAMAGE["pending record out of its article's index"] = (
        lambda r, c: r.zrem(keys.article_pending(ARTICLE), c.pending[1]), "pending_not_in_article_index",
        keys.article_pending(ARTICLE))
    DAMAGE["article index entry without a record"] = (
        lambda r, c: r.zadd(keys.article_pending(ARTICLE), {GHOST: 1}), "index_entry_without_record",
        keys.article_pending(ARTICLE))


async def test_data_the_service_made_is_healthy(client: Client, redis: Redis) -> None:
    await _comments(client)
    assert await doctor(redis, repair=False) == []


@pytest.mark.parametrize("name", sorted(DAMAGE))
async def test_damage_is_found_and_mended(client: Client, redis: Redis, name: str) -> None:
    comments = await _comments(client)
    how, kind, key = DAMAGE[name]
    await how(redis, comments)
    found = await doctor(redis, repair=False)
    assert (kind, key) in {(f.kind, f.key) for f in found}, report(found)
    assert all(f.mended is None for f in found)
    mended = await doctor(redis, repair=True)
    assert mended and all(f.mended for f in mended), report(mended)
    assert await doctor(redis, repair=False) == []
    # The service reads the mended data as before the damage.
    response = await client.get(f"/v1/articles/{ARTICLE}/comments")
    assert response.status == 200
    assert [c["id"] for c in (await response.json())["comments"]] == [comments.approved]


async def test_copies_of_the_public_view_left_by_an_older_version_are_deleted(client: Client, redis: Redis) -> None:
    """Before issue 19 the public view was stored in the record (`pub`) and the article's public hash (`ap:`):
    nothing reads them now, and they hold the text, so the doctor reports them and a repair deletes them."""
    comments = await _comments(client)
    legacy, record = keys.legacy_article_public(ARTICLE), keys.comment(comments.approved)
    await redis.hset(legacy, comments.approved, '{"name":"Lan"}')
    await redis.hset(record, "pub", '{"name":"Lan"}')
    found = await doctor(redis, repair=False)
    assert sorted((f.kind, f.key, f.id) for f in found) == [
        ("legacy_public_field", record, comments.approved), ("legacy_public_hash", legacy, "")]
    assert "Lan" not in report(found)
    mended = await doctor(redis, repair=True)
    assert len(mended) == 2 and all(f.mended for f in mended)
    assert await redis.exists(legacy) == 0 and await redis.hget(record, "pub") is None
    assert await doctor(redis, repair=False) == []
    response = await client.get(f"/v1/articles/{ARTICLE}/comments")
    assert [c["id"] for c in (await response.json())["comments"]] == [comments.approved]


async def test_a_key_of_the_wrong_type_is_reported_and_left_alone(client: Client, redis: Redis) -> None:
    await _comments(client)
    damaged = keys.article_order(OTHER)
    await redis.delete(damaged)
    await redis.hset(damaged, "x", "y")
    found = await doctor(redis, repair=True)
    assert [(f.kind, f.key, f.mended) for f in found] == [("wrong_type", damaged, False)]
    assert await redis.type(damaged) == b"hash"


async def test_a_key_of_no_known_kind_is_reported(client: Client, redis: Redis) -> None:
    await redis.set(f"cm:{{p{P:02x}}}:mystery", "1")
    assert [(f.kind, f.key) for f in await doctor(redis, repair=False)] == [
        ("unknown_key", f"cm:{{p{P:02x}}}:mystery")]


async def _cli(redis_server: RedisServer, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMENTS_")}
    env.update(COMMENTS_REDIS_URL=redis_server.url, COMMENTS_DATA_DIR=str(tmp_path), COMMENTS_LOG_LEVEL="WARNING")
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "service", "doctor", *args, env=env,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await process.communicate()
    return await process.wait(), out.decode()


async def test_the_command(client: Client, redis: Redis, redis_server: RedisServer, tmp_path: Path) -> None:
    comments = await _comments(client)
    await redis.zrem(keys.pending(P), comments.pending[1])
    await redis.hset(keys.article(ARTICLE), "count", 7)
    code, out = await _cli(redis_server, tmp_path)
    assert code == 1, out
    assert f"pending_not_in_queue {keys.pending(P)} {comments.pending[1]}" in out
    assert f"count_mismatch {keys.article(ARTICLE)}" in out
    assert "lan@example.com" not in out and "Lan" not in out
    code, out = await _cli(redis_server, tmp_path, "--repair")
    assert code == 1 and "2 finding(s), 2 mended, 0 not mended" in out, out
    code, out = await _cli(redis_server, tmp_path)
    assert (code, out.strip()) == (0, "0 finding(s)")
