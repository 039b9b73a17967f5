"""The moderation API against a real redis-server over real HTTP (`service.moderation`, `service.api.moderation`,
`lua/claim.lua`, `lua/decide.lua`, `lua/set_open.lua`): the queue, claims with leases, decisions and their
races, bulk decisions, retraction, history, stats, closing articles and spam reputation."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis
from support import ADMIN, Client, articles_in_distinct_partitions, bearer, create_token, make_app, submit_comment

from service import keys
from service.settings import Settings

Headers = dict[str, str]
Json = dict[str, Any]


# -- helpers ---------------------------------------------------------------------------------------------------

async def submit(client: Client, article: str = "a1", *, email: str = "reader@example.com",
                 name: str = "Lan", title: str = "Tiêu đề", body: str = "Nội dung bình luận",
                 parent_id: str | None = None, headers: Headers | None = None, expect: int = 202) -> Json:
    reply: Json = {"parent_id": parent_id} if parent_id else {}
    return await submit_comment(client, article, expect=expect, headers=headers, email=email, name=name, title=title,
                                body=body, **reply)


async def token(client: Client, role: str, name: str) -> Headers:
    return bearer((await create_token(client, role, name))["token"])


async def decide(client: Client, who: Headers, comment_id: str, action: str,
                 **extra: Any) -> tuple[int, Json]:
    response = await client.post(f"/v1/moderation/comments/{comment_id}/decision",
                                 json={"action": action, **extra}, headers=who)
    return response.status, await response.json()


async def get_json(client: Client, path: str, who: Headers | None = None,
                   **params: Any) -> Json:
    response = await client.get(path, headers=who, params=params)
    assert response.status == 200, await response.text()
    result: Json = await response.json()
    return result


async def history(client: Client, comment_id: str) -> list[Json]:
    record = await get_json(client, f"/v1/moderation/comments/{comment_id}", ADMIN)
    entries: list[Json] = record["history"]
    return entries


# -- the queue -------------------------------------------------------------------------------------------------

async def test_queue_lists_pending_oldest_first_across_partitions_with_what_a_moderator_needs(
        client: Client) -> None:
    articles = articles_in_distinct_partitions(8)
    submitted = []
    for round_ in range(2):
        for article in articles:
            submitted.append((await submit(client, article, email=f"r{round_}@example.com",
                                           title=f"t {article} {round_}"))["id"])
            await asyncio.sleep(0.002)  # distinct submission milliseconds, so "oldest first" is one order
    page = await get_json(client, "/v1/moderation/queue", ADMIN, limit=200)
    assert [c["id"] for c in page["comments"]] == submitted
    assert page["next_cursor"] is None
    first = page["comments"][0]
    assert {"id", "article_id", "parent_id", "name", "email", "title", "body", "created_at", "ip_hash", "risk",
            "state", "version", "claimed_by", "lease_expires_at"} <= first.keys()
    assert (first["article_id"], first["email"], first["state"], first["version"]) == \
        (articles[0], "r0@example.com", "pending", 1)
    assert first["name"] == "Lan" and first["body"] == "Nội dung bình luận" and first["claimed_by"] is None
    assert len({keys.partition_of_comment(c) for c in submitted}) == 8

    only = await get_json(client, "/v1/moderation/queue", ADMIN, article_id=articles[3])
    assert [c["id"] for c in only["comments"]] == [submitted[3], submitted[11]]


async def test_queue_pages_have_no_duplicates_and_no_gaps(client: Client) -> None:
    articles = articles_in_distinct_partitions(6)
    submitted = [(await submit(client, articles[n % 6]))["id"] for n in range(23)]
    for params in ({}, {"article_id": articles[2]}):
        expected = [c for c in submitted if params.get("article_id") in (None, articles[2])
                    and (not params or keys.partition_of_comment(c) == keys.partition_of_article(articles[2]))]
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            query: Json = {"limit": 3, **params}
            if cursor:
                query["cursor"] = cursor
            page = await get_json(client, "/v1/moderation/queue", ADMIN, **query)
            assert len(page["comments"]) <= 3
            seen.extend(c["id"] for c in page["comments"])
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))
        assert pages >= len(expected) // 3
    response = await client.get("/v1/moderation/queue", params={"cursor": "nonsense:x"}, headers=ADMIN)
    assert response.status == 422


# -- claims and leases -----------------------------------------------------------------------------------------

async def test_concurrent_claims_never_hand_one_comment_to_two_moderators(
        client: Client) -> None:
    articles = articles_in_distinct_partitions(5)
    submitted = {(await submit(client, articles[n % 5]))["id"] for n in range(40)}
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")

    async def claim(who: Headers) -> tuple[Headers, list[Json]]:
        response = await client.post("/v1/moderation/claims", json={"limit": 3, "lease_seconds": 60}, headers=who)
        assert response.status == 200, await response.text()
        return who, (await response.json())["comments"]

    results = await asyncio.gather(*(claim(lan if n % 2 else minh) for n in range(24)))
    claimed = [(who, c) for who, comments in results for c in comments]
    ids = [c["id"] for _, c in claimed]
    assert len(ids) == len(set(ids)), "a comment was leased twice"
    assert set(ids) == submitted  # 24 claims of 3 cover all 40
    for who, comment in claimed:
        assert comment["claimed_by"] == ("Lan" if who is lan else "Minh")
    again = await client.post("/v1/moderation/claims", json={"limit": 10}, headers=lan)
    assert (await again.json())["comments"] == []


async def test_claims_go_oldest_first_and_keep_to_an_article(client: Client) -> None:
    articles = articles_in_distinct_partitions(4)
    submitted = []
    for n in range(8):
        submitted.append((await submit(client, articles[n % 4]))["id"])
        await asyncio.sleep(0.002)
    response = await client.post("/v1/moderation/claims", json={"limit": 3, "article_id": articles[1]},
                                 headers=ADMIN)
    assert [c["id"] for c in (await response.json())["comments"]] == [submitted[1], submitted[5]]
    response = await client.post("/v1/moderation/claims", json={"limit": 3}, headers=ADMIN)
    assert [c["id"] for c in (await response.json())["comments"]] == [submitted[0], submitted[2], submitted[3]]


async def test_a_claim_takes_the_oldest_over_all_partitions_even_several_from_one(
        client: Client) -> None:
    busy, quiet, other = articles_in_distinct_partitions(3)
    order = [busy, busy, busy, quiet, quiet, busy, other]
    submitted = []
    for article in order:
        submitted.append((await submit(client, article))["id"])
        await asyncio.sleep(0.002)
    response = await client.post("/v1/moderation/claims", json={"limit": 4}, headers=ADMIN)
    assert [c["id"] for c in (await response.json())["comments"]] == submitted[:4]
    response = await client.post("/v1/moderation/claims", json={"limit": 10}, headers=ADMIN)
    assert [c["id"] for c in (await response.json())["comments"]] == submitted[4:]


async def test_a_claim_skips_many_live_leases_and_takes_over_expired_ones(client: Client, redis: Redis) -> None:
    """Claimable is pending without a live lease: a claim walks past the leased comments at the head of a queue
    (more than claim.lua looks up one by one, so also through its set of the live leases) and takes over a lease
    that ran out, in one partition's queue and in an article's."""
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    submitted = []
    for _ in range(16):
        submitted.append((await submit(client, "a1"))["id"])
        await asyncio.sleep(0.002)
    response = await client.post("/v1/moderation/claims", json={"limit": 12}, headers=lan)
    assert [c["id"] for c in (await response.json())["comments"]] == submitted[:12]
    partition = keys.partition_of_comment(submitted[0])
    # A lease that runs out (as a vanished moderator's does: it ended after the last claim swept the leases).
    await redis.zadd(keys.leases(partition), {submitted[10]: int(time.time() * 1000) + 300})
    await asyncio.sleep(0.4)
    for body in ({"limit": 2}, {"limit": 2, "article_id": "a1"}):
        response = await client.post("/v1/moderation/claims", json=body, headers=minh)
        got = [c["id"] for c in (await response.json())["comments"]]
        assert got == ([submitted[10], submitted[12]] if "article_id" not in body else submitted[13:15]), body
    assert await redis.hget(keys.holders(partition), submitted[10]) == b"Minh"


async def test_an_expired_lease_returns_the_comment_to_the_queue(
        client: Client, redis: Redis) -> None:
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    comment_id = (await submit(client))["id"]
    response = await client.post("/v1/moderation/claims", json={"limit": 5, "lease_seconds": 5}, headers=lan)
    assert [c["id"] for c in (await response.json())["comments"]] == [comment_id]
    response = await client.post("/v1/moderation/claims", json={"limit": 5}, headers=minh)
    assert (await response.json())["comments"] == []
    queued = await get_json(client, "/v1/moderation/queue", minh)
    assert queued["comments"][0]["claimed_by"] == "Lan"

    # Lan vanishes: move her lease expiry into the past instead of waiting for it.
    partition = keys.partition_of_comment(comment_id)
    await redis.zadd(keys.leases(partition), {comment_id: int(time.time() * 1000) - 1000})
    queued = await get_json(client, "/v1/moderation/queue", minh)
    assert queued["comments"][0]["claimed_by"] is None
    response = await client.post("/v1/moderation/claims", json={"limit": 5}, headers=minh)
    comments = (await response.json())["comments"]
    assert [c["id"] for c in comments] == [comment_id] and comments[0]["claimed_by"] == "Minh"
    status, body = await decide(client, lan, comment_id, "approve")
    assert (status, body["code"]) == (409, "leased_to_other")
    status, body = await decide(client, minh, comment_id, "approve")
    assert (status, body["state"]) == (200, "approved")


async def test_expired_lease_from_a_real_wait(client: Client) -> None:
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    comment_id = (await submit(client))["id"]
    await client.post("/v1/moderation/claims", json={"limit": 1, "lease_seconds": 5}, headers=lan)
    status, _ = await decide(client, minh, comment_id, "reject")
    assert status == 409
    await asyncio.sleep(5.3)
    status, body = await decide(client, minh, comment_id, "reject")
    assert (status, body["state"], body["decided_by"]) == (200, "rejected", "Minh")


async def test_lease_holder_decides_others_get_409_and_unclaimed_comments_are_decided_directly(
        client: Client) -> None:
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    leased = (await submit(client))["id"]
    free = (await submit(client))["id"]
    response = await client.post("/v1/moderation/claims", json={"limit": 1}, headers=lan)
    assert [c["id"] for c in (await response.json())["comments"]] == [leased]
    status, body = await decide(client, minh, leased, "approve")
    assert (status, body["code"]) == (409, "leased_to_other")
    assert body["type"].endswith("/leased_to_other") and body["status"] == 409
    status, body = await decide(client, lan, leased, "approve")
    assert (status, body["state"], body["version"], body["decided_by"]) == (200, "approved", 2, "Lan")
    status, body = await decide(client, minh, free, "reject", reason="off topic")
    assert (status, body["state"]) == (200, "rejected")
    status, body = await decide(client, minh, free, "approve")
    assert (status, body["code"]) == (409, "already_decided")
    status, body = await decide(client, minh, "0" * 26, "approve")
    assert (status, body["code"]) == (404, "not_found")
    response = await client.post(f"/v1/moderation/comments/{free}/decision", json={"action": "delete"},
                                 headers=minh)
    assert response.status == 422


# -- races, versions, history ----------------------------------------------------------------------------------

async def test_approve_and_reject_racing_on_one_comment_give_one_200_and_one_409(
        client: Client) -> None:
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    comments = [(await submit(client, f"race-{n}"))["id"] for n in range(15)]
    races = await asyncio.gather(*(asyncio.gather(decide(client, lan, c, "approve"),
                                                  decide(client, minh, c, "reject")) for c in comments))
    for comment_id, ((s1, b1), (s2, b2)) in zip(comments, races, strict=True):
        assert sorted((s1, s2)) == [200, 409]
        loser = b2 if s1 == 200 else b1
        assert loser["code"] == "already_decided"
        winner_state = "approved" if s1 == 200 else "rejected"
        entries = await history(client, comment_id)
        assert len(entries) == 1 and entries[0]["to_state"] == winner_state


async def test_decisions_sent_together_each_get_their_own_answer(
        client: Client) -> None:
    """Decisions arriving at once share a Redis round trip; each still gets its own outcome."""
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    fresh = [(await submit(client, f"together-{n}"))["id"] for n in range(6)]
    decided = (await submit(client))["id"]
    assert (await decide(client, ADMIN, decided, "reject"))[0] == 200
    leased = (await submit(client, "leased"))["id"]
    response = await client.post("/v1/moderation/claims", json={"limit": 1, "article_id": "leased"}, headers=minh)
    assert [c["id"] for c in (await response.json())["comments"]] == [leased]
    stale = (await submit(client))["id"]
    results = await asyncio.gather(
        *(decide(client, lan, c, action) for c, action in zip(fresh, ("approve", "reject", "spam") * 2, strict=True)),
        decide(client, lan, decided, "approve"), decide(client, lan, leased, "approve"),
        decide(client, lan, stale, "approve", version=5), decide(client, lan, "0" * 26, "approve"))
    states = [(status, body.get("state"), body.get("code")) for status, body in results]
    assert states == [(200, "approved", None), (200, "rejected", None), (200, "spam", None)] * 2 + [
        (409, None, "already_decided"), (409, None, "leased_to_other"), (409, None, "stale_version"),
        (404, None, "not_found")]
    for (_, body), comment_id in zip(results[:6], fresh, strict=True):
        assert body["id"] == comment_id and body["version"] == 2 and body["decided_by"] == "Lan"
        assert len(await history(client, comment_id)) == 1


async def test_a_decision_that_fails_in_redis_fails_alone(
        client: Client, redis: Redis) -> None:
    good = [(await submit(client, f"alone-{n}"))["id"] for n in range(3)]
    damaged = (await submit(client, "alone-x"))["id"]
    await redis.hset(keys.comment(damaged), "d", "not json")  # approval cannot make its public view
    results = await asyncio.gather(*(decide(client, ADMIN, c, "approve") for c in [good[0], damaged, *good[1:]]))
    assert [status for status, _ in results] == [200, 500, 200, 200]
    assert all(body["state"] == "approved" for status, body in results if status == 200)
    # The damaged one is untouched: still pending, in the queue, without history.
    partition = keys.partition_of_comment(damaged)
    assert await redis.hget(keys.comment(damaged), "s") == b"pending"
    assert await redis.zscore(keys.pending(partition), damaged) is not None
    assert await redis.zscore(keys.leases(partition), damaged) is None  # claimable
    assert await redis.lrange(keys.history(damaged), 0, -1) == []

    # Out of memory, Redis refuses a script's first write that needs memory: here each retraction's, so each
    # answers 503 and changes nothing.
    await redis.config_set("maxmemory", "1")
    try:
        responses = await asyncio.gather(*(client.post(f"/v1/moderation/comments/{c}/retract", json={},
                                                       headers=ADMIN) for c in good[:2]))
        assert [(r.status, (await r.json())["code"]) for r in responses] == [(503, "unavailable")] * 2
    finally:
        await redis.config_set("maxmemory", "0")
    for comment_id in good[:2]:
        assert [e["to_state"] for e in await history(client, comment_id)] == ["approved"]


async def test_moderation_gives_503_when_redis_is_away(
        client: Client, redis_server: Any) -> None:
    comment_id = (await submit(client))["id"]
    redis_server.stop()
    try:
        for path, body in (("/v1/moderation/claims", {"limit": 5}),
                           (f"/v1/moderation/comments/{comment_id}/decision", {"action": "approve"})):
            started = time.monotonic()
            response = await client.post(path, json=body, headers=ADMIN)
            assert response.status == 503, (path, await response.text())
            assert time.monotonic() - started < 2.0
    finally:
        redis_server.start()
    status, body = await decide(client, ADMIN, comment_id, "approve")
    assert (status, body["state"]) == (200, "approved")


async def test_a_stale_version_is_refused(client: Client) -> None:
    comment_id = (await submit(client))["id"]
    status, body = await decide(client, ADMIN, comment_id, "approve", version=2)
    assert (status, body["code"]) == (409, "stale_version")
    status, body = await decide(client, ADMIN, comment_id, "approve", version=1)
    assert (status, body["version"]) == (200, 2)
    response = await client.post(f"/v1/moderation/comments/{comment_id}/retract", json={}, headers=ADMIN)
    assert response.status == 200
    status, body = await decide(client, ADMIN, comment_id, "approve", version=2)
    assert (status, body["code"]) == (409, "stale_version")


async def test_every_decision_leaves_exactly_one_history_entry(client: Client) -> None:
    lan = await token(client, "moderator", "Lan")
    approved, rejected, spam = [(await submit(client))["id"] for _ in range(3)]
    for comment_id, action in ((approved, "approve"), (rejected, "reject"), (spam, "spam")):
        before = time.time()
        status, _ = await decide(client, lan, comment_id, action, reason=f"because {action}")
        assert status == 200
        entries = await history(client, comment_id)
        assert len(entries) == 1
        entry = entries[0]
        assert entry["by"] == "Lan" and entry["action"] == action and entry["from_state"] == "pending"
        assert entry["to_state"] == {"approve": "approved", "reject": "rejected", "spam": "spam"}[action]
        assert entry["reason"] == f"because {action}" and entry["version"] == 2
        assert entry["at"] >= time.strftime("%Y-%m-%dT%H:%M", time.gmtime(before - 60))
        # A refused decision writes nothing.
        status, _ = await decide(client, lan, comment_id, "approve")
        assert status == 409 and len(await history(client, comment_id)) == 1
    response = await client.post(f"/v1/moderation/comments/{approved}/retract", json={"reason": "libel"},
                                 headers=lan)
    assert response.status == 200 and (await response.json())["state"] == "retracted"
    entries = await history(client, approved)
    assert [(e["from_state"], e["to_state"], e["version"]) for e in entries] == \
        [("pending", "approved", 2), ("approved", "retracted", 3)]
    assert entries[1]["reason"] == "libel" and entries[1]["action"] == "retract"
    response = await client.post(f"/v1/moderation/comments/{rejected}/retract", json={}, headers=lan)
    assert response.status == 409 and (await response.json())["code"] == "not_approved"
    assert len(await history(client, rejected)) == 1


# -- bulk ------------------------------------------------------------------------------------------------------

async def test_bulk_by_ids_reports_each_outcome(client: Client) -> None:
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    decided, leased = [(await submit(client))["id"] for _ in range(2)]
    await decide(client, lan, decided, "approve")
    await client.post("/v1/moderation/claims", json={"limit": 5}, headers=minh)
    fresh = (await submit(client))["id"]
    missing = "0" * 26
    response = await client.post("/v1/moderation/decisions", headers=lan, json={
        "action": "reject", "reason": "spam run", "ids": [fresh, decided, leased, missing]})
    assert response.status == 200
    result = await response.json()
    assert result["matched"] == 4
    outcomes = {o["id"]: (o["status"], o["code"], o["state"]) for o in result["outcomes"]}
    assert outcomes == {fresh: (200, None, "rejected"), decided: (409, "already_decided", None),
                        leased: (409, "leased_to_other", None), missing: (404, "not_found", None)}
    assert len(await history(client, fresh)) == 1
    response = await client.post("/v1/moderation/decisions", headers=lan, json={"action": "reject"})
    assert response.status == 422
    response = await client.post("/v1/moderation/decisions", headers=lan,
                                 json={"action": "reject", "ids": ["../etc"]})
    assert response.status == 422


async def test_bulk_by_filter(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    proxied = settings.model_copy(update={"trusted_proxies": [ipaddress.ip_network("127.0.0.1/32")]})
    client = await aiohttp_client(make_app(proxied))
    from_a = {"X-Forwarded-For": "203.0.113.7"}
    from_b = {"X-Forwarded-For": "198.51.100.9"}
    ids: dict[str, str] = {}
    ids["other_article"] = (await submit(client, "b2", headers=from_b))["id"]
    ids["ip_a"] = (await submit(client, "a1", headers=from_a, body="xin chào"))["id"]
    ids["email"] = (await submit(client, "a1", headers=from_b, email="Troll@Example.com"))["id"]
    ids["link"] = (await submit(client, "a1", headers=from_b, body="mua ngay tại http://spam.example/x"))["id"]
    ids["text"] = (await submit(client, "a1", headers=from_b, body="Bạn là Đồ NGỐC"))["id"]
    ids["plain"] = (await submit(client, "a1", headers=from_b, body="bài viết hay"))["id"]

    queue = await get_json(client, "/v1/moderation/queue", ADMIN)
    by_id = {c["id"]: c for c in queue["comments"]}
    assert by_id[ids["ip_a"]]["ip_hash"] != by_id[ids["plain"]]["ip_hash"]
    assert "links" in by_id[ids["link"]]["risk"]

    async def bulk(selector: Json, action: str = "reject") -> Json:
        response = await client.post("/v1/moderation/decisions", json={"action": action, "filter": selector},
                                     headers=ADMIN)
        assert response.status == 200, await response.text()
        result: Json = await response.json()
        return result

    result = await bulk({"ip_hash": by_id[ids["ip_a"]]["ip_hash"]})
    assert [(o["id"], o["status"], o["state"]) for o in result["outcomes"]] == [(ids["ip_a"], 200, "rejected")]
    result = await bulk({"email": "troll@example.com"}, "spam")
    assert [(o["id"], o["state"]) for o in result["outcomes"]] == [(ids["email"], "spam")]
    result = await bulk({"risk": "links", "article_id": "a1"})
    assert [o["id"] for o in result["outcomes"]] == [ids["link"]]
    result = await bulk({"text_contains": "do ngoc"})
    assert [o["id"] for o in result["outcomes"]] == [ids["text"]]
    assert (await bulk({"text_contains": "không có"}))["matched"] == 0
    result = await bulk({"article_id": "a1"}, "approve")
    assert [(o["id"], o["state"]) for o in result["outcomes"]] == [(ids["plain"], "approved")]
    remaining = await get_json(client, "/v1/moderation/queue", ADMIN)
    assert [c["id"] for c in remaining["comments"]] == [ids["other_article"]]
    for comment_id in ids.values():
        if comment_id != ids["other_article"]:
            assert len(await history(client, comment_id)) == 1


# -- retraction, stats, articles, reputation --------------------------------------------------------------------

async def test_retracting_unpublishes_and_the_feed_carries_it(client: Client) -> None:
    keep, drop = [(await submit(client, "a1", title=t))["id"] for t in ("keep", "drop")]
    for comment_id in (keep, drop):
        assert (await decide(client, ADMIN, comment_id, "approve"))[0] == 200
    public = await get_json(client, "/v1/articles/a1/comments")
    assert [c["id"] for c in public["comments"]] == [keep, drop] and public["total"] == 2
    response = await client.post(f"/v1/moderation/comments/{drop}/retract", json={"reason": "libel"},
                                 headers=ADMIN)
    assert response.status == 200
    await asyncio.sleep(0.25)  # public_cache_seconds
    public = await get_json(client, "/v1/articles/a1/comments")
    assert [c["id"] for c in public["comments"]] == [keep] and public["total"] == 1
    counts = await get_json(client, "/v1/counts", article_id="a1")
    assert counts["counts"] == {"a1": 1}
    feed = await get_json(client, "/v1/feed", ADMIN)
    assert [(e["type"], e["comment"]["id"]) for e in feed["events"]] == [
        ("comment.approved", keep), ("comment.approved", drop), ("comment.retracted", drop)]
    assert feed["events"][2]["article_id"] == "a1"


async def test_stats_show_depth_oldest_age_and_decisions(client: Client) -> None:
    empty = await get_json(client, "/v1/moderation/stats", ADMIN)
    assert empty["queue_depth"] == 0 and empty["oldest_pending_age_seconds"] is None
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    articles = articles_in_distinct_partitions(3)
    ids = [(await submit(client, articles[n % 3]))["id"] for n in range(7)]
    await asyncio.sleep(0.3)
    for comment_id in ids[:2]:
        await decide(client, lan, comment_id, "approve")
    await decide(client, lan, ids[2], "reject")
    await decide(client, minh, ids[3], "spam")
    stats = await get_json(client, "/v1/moderation/stats", minh)
    assert stats["queue_depth"] == 3
    assert 0.3 <= stats["oldest_pending_age_seconds"] < 30
    assert stats["decisions_per_moderator"] == {"Lan": {"approve": 2, "reject": 1}, "Minh": {"spam": 1}}
    hours = stats["decisions_per_hour"]
    assert sum(n for per_action in hours.values() for n in per_action.values()) == 4
    assert all(label.endswith(":00:00.000Z") for label in hours)


async def test_closing_an_article_refuses_submissions_and_shows_in_the_list(
        client: Client) -> None:
    lan = await token(client, "moderator", "Lan")
    feed = await token(client, "feed", "site")
    assert (await get_json(client, "/v1/articles/a1/comments"))["open"] is True
    response = await client.post("/v1/moderation/articles/a1/close", headers=feed)
    assert response.status == 403
    response = await client.post("/v1/moderation/articles/a1/close", headers=lan)
    assert response.status == 200 and await response.json() == {"article_id": "a1", "open": False}
    problem = await submit(client, "a1", expect=409)
    assert problem["code"] == "comments_closed"
    await submit(client, "other")  # only that article is closed
    await asyncio.sleep(0.25)
    assert (await get_json(client, "/v1/articles/a1/comments"))["open"] is False
    response = await client.post("/v1/moderation/articles/a1/open", headers=ADMIN)
    assert response.status == 200 and (await response.json())["open"] is True
    await submit(client, "a1")
    await asyncio.sleep(0.25)
    assert (await get_json(client, "/v1/articles/a1/comments"))["open"] is True


async def test_spam_decisions_teach_email_and_ip_reputation(aiohttp_client: AiohttpClient,
                                                            settings: Settings) -> None:
    proxied = settings.model_copy(update={"trusted_proxies": [ipaddress.ip_network("127.0.0.1/32")]})
    client = await aiohttp_client(make_app(proxied))
    spammer_ip = {"X-Forwarded-For": "203.0.113.50"}
    other_ip = {"X-Forwarded-For": "198.51.100.60"}
    first = (await submit(client, headers=spammer_ip, email="spammer@example.com", body="lần một"))["id"]
    assert (await decide(client, ADMIN, first, "spam"))[0] == 200
    same_email = (await submit(client, headers=other_ip, email="spammer@example.com", body="lần hai"))["id"]
    same_ip = (await submit(client, headers=spammer_ip, email="someone@example.com", body="lần ba"))["id"]
    neither = (await submit(client, headers=other_ip, email="reader@example.com", body="lần bốn"))["id"]
    risk = {c["id"]: c["risk"] for c in (await get_json(client, "/v1/moderation/queue", ADMIN))["comments"]}
    assert "email_reputation" in risk[same_email] and "ip_reputation" not in risk[same_email]
    assert "ip_reputation" in risk[same_ip] and "email_reputation" not in risk[same_ip]
    assert "ip_reputation" not in risk[neither] and "email_reputation" not in risk[neither]
    # A plain rejection teaches nothing.
    assert (await decide(client, ADMIN, neither, "reject"))[0] == 200
    later = (await submit(client, headers=other_ip, email="reader@example.com", body="lần năm"))["id"]
    risk = {c["id"]: c["risk"] for c in (await get_json(client, "/v1/moderation/queue", ADMIN))["comments"]}
    assert "email_reputation" not in risk[later]


async def test_email_reputation_ignores_the_case_of_the_address(client: Client) -> None:
    first = (await submit(client, email="spammer@example.com", body="lần một"))["id"]
    assert (await decide(client, ADMIN, first, "spam"))[0] == 200
    again = (await submit(client, email="SPAMMER@example.com", body="lần hai"))["id"]
    risk = {c["id"]: c["risk"] for c in (await get_json(client, "/v1/moderation/queue", ADMIN))["comments"]}
    assert "email_reputation" in risk[again]
