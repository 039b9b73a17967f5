"""What the public reads (`service.publication`, `service.api.public` list/counts/status) against a real
redis-server over real HTTP: approved comments only, public fields only, stable cursors, ETags, CORS, the cost of
a hot article, counts, the author's status and replies."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from redis.asyncio import Redis
from support import ADMIN, Client, Json, decide, submit_comment

from service.appkeys import SCRIPTS
from service.indexer import Indexer

PUBLIC_FIELDS = {"id", "parent_id", "name", "title", "body", "created_at", "approved_at", "avatar"}
CACHE = 0.25  # a little over the test settings' public_cache_seconds


async def submit(client: Client, article: str = "a1", *, email: str = "reader@example.com",
                 parent_id: str | None = None, expect: int = 202) -> Json:
    reply: Json = {"parent_id": parent_id} if parent_id else {}
    return await submit_comment(client, article, expect=expect, email=email, title="Tiêu đề", body="Nội dung",
                                **reply)


async def approve(client: Client, comment_id: str, action: str = "approve") -> None:
    await decide(client, comment_id, action)


async def approved(client: Client, article: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        comment_id = (await submit(client, article, email=f"r{n}@example.com"))["id"]
        await approve(client, comment_id)
        ids.append(comment_id)
    return ids


async def listing(client: Client, article: str = "a1", **params: Any) -> Json:
    response = await client.get(f"/v1/articles/{article}/comments", params=params)
    assert response.status == 200, await response.text()
    page: Json = await response.json()
    return page


async def test_only_approved_comments_with_only_public_fields(client: Client) -> None:
    email = "Nguyen.Van.A@Example.com"
    shown = (await submit(client, email=email))["id"]
    pending = (await submit(client))["id"]
    rejected = (await submit(client))["id"]
    spam = (await submit(client))["id"]
    await approve(client, shown)
    await approve(client, rejected, "reject")
    await approve(client, spam, "spam")
    page = await listing(client)
    assert page["article_id"] == "a1" and page["open"] is True and page["total"] == 1
    assert [c["id"] for c in page["comments"]] == [shown] and pending not in str(page)
    comment = page["comments"][0]
    assert set(comment) == PUBLIC_FIELDS
    assert (comment["name"], comment["title"], comment["body"], comment["parent_id"]) == \
        ("Lan", "Tiêu đề", "Nội dung", None)
    assert comment["approved_at"] >= comment["created_at"]
    variants = {email, email.lower(), email.strip().lower(), "Nguyen.Van.A@example.com"}
    digests = {h(v.encode()).hexdigest() for v in variants for h in (hashlib.md5, hashlib.sha1, hashlib.sha256)}
    assert comment["avatar"] and not any(d.startswith(comment["avatar"]) or comment["avatar"] in d for d in digests)
    assert "@" not in str(page)
    # The same sender gets the same avatar seed; another sender another one.
    again = (await submit(client, email=email))["id"]
    other = (await submit(client, email="other@example.com"))["id"]
    await approve(client, again)
    await approve(client, other)
    await asyncio.sleep(CACHE)
    avatars = {c["id"]: c["avatar"] for c in (await listing(client))["comments"]}
    assert avatars[again] == avatars[shown] != avatars[other]


async def test_cursor_pages_stay_stable_while_new_approvals_arrive(client: Client) -> None:
    ids = await approved(client, "a1", 7)
    first = await listing(client, limit=3)
    newest_first = await listing(client, limit=3, order="newest")
    assert [c["id"] for c in first["comments"]] == ids[:3]
    assert [c["id"] for c in newest_first["comments"]] == ids[::-1][:3]
    later = await approved(client, "a1", 4)  # approvals arrive between page 1 and page 2
    await asyncio.sleep(CACHE)

    seen = [c["id"] for c in first["comments"]]
    cursor = first["next_cursor"]
    while cursor:
        page = await listing(client, limit=3, cursor=cursor)
        seen.extend(c["id"] for c in page["comments"])
        cursor = page["next_cursor"]
    assert seen == ids + later  # no duplicates, no gaps, new ones at the end

    seen = [c["id"] for c in newest_first["comments"]]
    cursor = newest_first["next_cursor"]
    while cursor:
        page = await listing(client, limit=3, cursor=cursor, order="newest")
        seen.extend(c["id"] for c in page["comments"])
        cursor = page["next_cursor"]
    assert seen == ids[::-1]  # the newer approvals are above page 1, not mixed into later pages
    for bad in ({"cursor": "abc"}, {"order": "random"}, {"limit": "0"}, {"limit": "101"}):
        assert (await client.get("/v1/articles/a1/comments", params=bad)).status == 422


async def test_etag_gives_304_until_an_approval_changes_it(client: Client) -> None:
    await approved(client, "a1", 2)
    response = await client.get("/v1/articles/a1/comments")
    etag = response.headers["ETag"]
    cache_control = response.headers["Cache-Control"]
    assert cache_control.startswith("public") and "private" not in cache_control
    max_age = int(cache_control.split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 60
    response = await client.get("/v1/articles/a1/comments", headers={"If-None-Match": etag})
    assert response.status == 304 and await response.read() == b"" and response.headers["ETag"] == etag
    assert etag != '"0.o50.0"'
    response = await client.get("/v1/articles/a1/comments", headers={"If-None-Match": '"0.o50.0"'})
    assert response.status == 200
    await approved(client, "a1", 1)
    await asyncio.sleep(CACHE)
    response = await client.get("/v1/articles/a1/comments", headers={"If-None-Match": etag})
    assert response.status == 200 and response.headers["ETag"] != etag
    assert len((await response.json())["comments"]) == 3


async def test_cors_for_allowed_origins_only_and_never_with_credentials(
        client: Client) -> None:
    allowed = {"Origin": "https://news.example"}
    response = await client.get("/v1/articles/a1/comments", headers=allowed)
    assert response.headers["Access-Control-Allow-Origin"] == "https://news.example"
    assert "Origin" in response.headers["Vary"] and "Access-Control-Allow-Credentials" not in response.headers
    assert "ETag" in response.headers["Access-Control-Expose-Headers"]
    for origin in ("https://evil.example", "https://news.example.evil", "http://news.example", "null"):
        response = await client.get("/v1/articles/a1/comments", headers={"Origin": origin})
        assert response.status == 200 and "Access-Control-Allow-Origin" not in response.headers
        assert "Origin" in response.headers["Vary"]
    preflight = await client.options("/v1/articles/a1/comments", headers={
        **allowed, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://news.example"
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "content-type" in preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    refused = await client.options("/v1/articles/a1/comments", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in refused.headers
    response = await client.get("/v1/counts", params={"article_id": "a1"}, headers=allowed)
    assert response.headers["Access-Control-Allow-Origin"] == "https://news.example"


async def _calls(redis: Redis, *commands: str) -> int:
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in commands)


async def _all_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


async def test_a_hot_article_costs_redis_no_work_per_comment_per_read(
        client: Client, redis: Redis) -> None:
    await approved(client, "hot", 30)
    await listing(client, "hot")  # render once
    # The search indexer (a background task of the app) reads the new records with HMGET: let it finish first.
    await Indexer(client.app[SCRIPTS]).catch_up()
    reads = 200
    page_commands = ("hmget", "zrangebyscore", "zrevrangebyscore", "hgetall", "hget")
    before_page, before_all = await _calls(redis, *page_commands), await _all_calls(redis)
    for _ in range(reads):
        page = await listing(client, "hot")
        assert len(page["comments"]) == 30
    page_work = await _calls(redis, *page_commands) - before_page
    all_work = await _all_calls(redis) - before_all
    # Each public_cache_seconds interval costs one HMGET of the article's version; a read costs nothing.
    assert page_work < reads / 4, page_work
    assert all_work < reads * 30 / 10, all_work


async def test_counts_for_up_to_100_articles(client: Client) -> None:
    await approved(client, "a1", 2)
    await approved(client, "b2", 1)
    await submit(client, "c3")  # pending: not counted
    articles = ["a1", "b2", "c3"] + [f"x{n}" for n in range(97)]
    response = await client.get("/v1/counts", params=[("article_id", a) for a in articles])
    assert response.status == 200 and response.headers["Cache-Control"].startswith("public")
    counts = (await response.json())["counts"]
    assert len(counts) == 100 and (counts["a1"], counts["b2"], counts["c3"], counts["x5"]) == (2, 1, 0, 0)
    response = await client.get("/v1/counts", params=[("article_id", a) for a in [*articles, "y"]])
    assert response.status == 422
    assert (await client.get("/v1/counts")).status == 422
    assert (await client.get("/v1/counts", params={"article_id": "bad id"})).status == 422


async def test_the_author_sees_the_status_with_the_receipt_only(client: Client) -> None:
    outcomes = {}
    for action in ("approve", "reject", "spam", None):
        accepted = await submit(client)
        if action:
            await approve(client, accepted["id"], action)
        outcomes[action] = accepted
    expected = {"approve": "approved", "reject": "rejected", "spam": "rejected", None: "pending"}
    for action, accepted in outcomes.items():
        response = await client.get(f"/v1/comments/{accepted['id']}/status",
                                    headers={"Authorization": f"Receipt {accepted['receipt']}"})
        assert response.status == 200
        status = await response.json()
        assert status["status"] == expected[action] and status["id"] == accepted["id"]
        assert "email" not in status and "no-store" in response.headers["Cache-Control"]
    one, other = outcomes[None], outcomes["approve"]
    path = f"/v1/comments/{one['id']}/status"
    for headers in ({}, {"Authorization": f"Receipt {other['receipt']}"},
                    {"Authorization": f"Receipt {one['receipt'][:-2]}xx"},
                    {"Authorization": f"Bearer {one['receipt']}"}):
        response = await client.get(path, headers=headers)
        assert response.status == 401, headers
    for name in ("receipt", "r", "token"):
        response = await client.get(path, params={name: one["receipt"]})
        assert response.status == 401, name


async def test_replies_need_an_approved_parent_of_the_same_article(client: Client) -> None:
    parent = (await submit(client, "a1"))["id"]
    problem = await submit(client, "a1", parent_id=parent, expect=422)  # still pending
    assert problem["code"] == "invalid_parent"
    await approve(client, parent)
    assert (await submit(client, "b2", parent_id=parent, expect=422))["code"] == "invalid_parent"
    assert (await submit(client, "a1", parent_id="0" * 26, expect=422))["code"] == "invalid_parent"
    reply = (await submit(client, "a1", parent_id=parent))["id"]
    await approve(client, reply)
    await asyncio.sleep(CACHE)
    comments = {c["id"]: c["parent_id"] for c in (await listing(client))["comments"]}
    assert comments == {parent: None, reply: parent}
    response = await client.post(f"/v1/moderation/comments/{parent}/retract", json={}, headers=ADMIN)
    assert response.status == 200
    assert (await submit(client, "a1", parent_id=parent, expect=422))["code"] == "invalid_parent"
