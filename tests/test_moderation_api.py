"""What the moderator console needs from the public API, against a real redis-server over real HTTP: lease
renewal and release, undo, lists by state, search (with and without diacritics), an author's record, and the
time-to-decision stats (`service.moderation`, `service.search`, `lua/lease.lua`, `lua/decide.lua`)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from support import articles_in_distinct_partitions

from service import keys
from service.appkeys import MODERATION
from service.doctor import doctor
from service.moderation import wait_quantiles

Client = TestClient[Any, Any]
Headers = dict[str, str]
Json = dict[str, Any]
ADMIN: Headers = {"Authorization": "Bearer test-admin-token"}


async def submit(client: Client, article: str, *, email: str = "reader@example.com", name: str = "Lan",
                 title: str = "Tiêu đề", body: str = "Nội dung bình luận") -> Json:
    captcha_id = (await (await client.post("/v1/captchas")).json())["id"]
    form = {"name": name, "email": email, "title": title, "body": body, "captcha_id": captcha_id,
            "captcha_answer": "ABCDE"}
    response = await client.post(f"/v1/articles/{article}/comments", json=form)
    assert response.status == 202, await response.text()
    accepted: Json = await response.json()
    return accepted


async def token(client: Client, role: str, name: str) -> Headers:
    response = await client.post("/v1/tokens", json={"role": role, "name": name}, headers=ADMIN)
    assert response.status == 201, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def decide(client: Client, who: Headers, comment_id: str, action: str) -> tuple[int, Json]:
    response = await client.post(f"/v1/moderation/comments/{comment_id}/decision", json={"action": action},
                                 headers=who)
    return response.status, await response.json()


async def get_json(client: Client, path: str, who: Headers | None = None, **params: Any) -> Json:
    response = await client.get(path, headers=who, params=params)
    assert response.status == 200, await response.text()
    result: Json = await response.json()
    return result


async def history(client: Client, comment_id: str) -> list[Json]:
    entries: list[Json] = (await get_json(client, f"/v1/moderation/comments/{comment_id}", ADMIN))["history"]
    return entries


def at(client: Client, offset_seconds: float) -> None:
    """Move the service's clock `offset_seconds` from the real now (decisions, leases and stats read it)."""
    base = int(time.time() * 1000)
    client.app[MODERATION].clock = lambda: base + int(offset_seconds * 1000)


async def post(client: Client, path: str, who: Headers, body: Json | None = None) -> tuple[int, Json]:
    response = await client.post(path, json=body if body is not None else {}, headers=who)
    return response.status, await response.json()


# -- leases: renewal and release ---------------------------------------------------------------------------------

async def test_only_the_holder_renews_and_releases_a_lease(client: Client, redis: Redis) -> None:
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    ids = [(await submit(client, article))["id"] for article in articles_in_distinct_partitions(3)]
    status, claimed = await post(client, "/v1/moderation/claims", lan, {"limit": 2})
    assert status == 200
    mine = [c["id"] for c in claimed["comments"]]
    assert mine == ids[:2]
    unknown = ids[0][:2] + "0" * 24

    status, answer = await post(client, "/v1/moderation/claims/renew", minh, {"ids": mine, "lease_seconds": 60})
    assert (status, answer["held"], answer["not_held"]) == (200, [], mine)
    status, answer = await post(client, "/v1/moderation/claims/renew", lan,
                                {"ids": [*mine, ids[2], unknown], "lease_seconds": 3600})
    assert (status, answer["held"], answer["not_held"]) == (200, mine, [ids[2], unknown])
    expiry = await redis.zscore(keys.leases(keys.partition_of_comment(mine[0])), mine[0])
    assert expiry is not None and expiry > time.time() * 1000 + 3000 * 1000
    assert answer["lease_expires_at"] is not None

    status, answer = await post(client, "/v1/moderation/claims/release", minh, {"ids": mine})
    assert (status, answer["held"], answer["lease_expires_at"]) == (200, [], None)
    status, answer = await post(client, "/v1/moderation/claims/release", lan, {"ids": [mine[0]]})
    assert (status, answer["held"], answer["not_held"]) == (200, [mine[0]], [])
    # Released: claimable at once by another moderator, while the other lease still keeps Minh off.
    status, claimed = await post(client, "/v1/moderation/claims", minh, {"limit": 5})
    assert [c["id"] for c in claimed["comments"]] == [mine[0], ids[2]]
    status, refused = await decide(client, minh, mine[1], "approve")
    assert (status, refused["code"]) == (409, "leased_to_other")

    refused_bodies: list[Json] = [{"ids": ["nope\n"]}, {"ids": []}, {"ids": mine, "lease_seconds": 1},
                                  {"ids": mine, "x": 1}]
    for body in refused_bodies:
        response = await client.post("/v1/moderation/claims/renew", json=body, headers=lan)
        assert response.status == 422, body
    response = await client.post("/v1/moderation/claims/release", json={"ids": mine})
    assert response.status == 401


# -- undo ----------------------------------------------------------------------------------------------------

async def test_undo_puts_the_last_decision_back_to_pending(client: Client, redis: Redis) -> None:
    lan = await token(client, "moderator", "Lan")
    article = "bai-undo"
    approved, rejected, spam = [(await submit(client, article, title=f"t{n}"))["id"] for n in range(3)]
    submitted = {c: await redis.hget(keys.comment(c), "t") for c in (approved, rejected, spam)}
    for comment_id, action in ((approved, "approve"), (rejected, "reject"), (spam, "spam")):
        assert (await decide(client, lan, comment_id, action))[0] == 200
    listing = await get_json(client, f"/v1/articles/{article}/comments")
    assert [c["id"] for c in listing["comments"]] == [approved]

    for comment_id in (approved, rejected, spam):
        status, record = await post(client, f"/v1/moderation/comments/{comment_id}/undo", lan)
        assert status == 200, record
        assert (record["state"], record["version"], record["decided_at"]) == ("pending", 3, None)
        entries = await history(client, comment_id)
        assert [(e["action"], e["to_state"]) for e in entries][-1] == ("undo", "pending")
        # Back in the queue at its submission time, and leased to Lan, who undid it: not claimable by others.
        partition = keys.partition_of_comment(comment_id)
        for queue in (keys.pending(partition), keys.article_pending(article)):
            assert await redis.zscore(queue, comment_id) == float(submitted[comment_id] or 0)
        assert (await redis.zscore(keys.leases(partition), comment_id) or 0) > time.time() * 1000
        assert await redis.hget(keys.holders(partition), comment_id) == b"Lan"
        assert record["claimed_by"] == "Lan" and record["lease_expires_at"] is not None

    # Unpublished (read from Redis: the public list is cached for a moment by each worker).
    assert await redis.zrange(keys.article_order(article), 0, -1) == []
    # The approval's own fields go with it; the text was never copied out of the record (`d`).
    assert await redis.hmget(keys.comment(approved), "ap", "dt", "db") == [None, None, None]
    assert not await redis.keys(f"*:ap:{article}")
    assert await redis.hmget(keys.article(article), "count", "ver") == [b"0", b"2"]
    events: Any = await redis.xrange(keys.feed(keys.partition_of_article(article)))
    assert [fields[b"type"] for _, fields in events] == [b"comment.approved", b"comment.retracted"]
    queued = await get_json(client, "/v1/moderation/queue", ADMIN, article_id=article)
    assert [c["id"] for c in queued["comments"]] == [approved, rejected, spam]
    # Another moderator's claim does not take them, nor may they decide them while Lan's lease lives.
    minh = await token(client, "moderator", "Minh")
    assert (await post(client, "/v1/moderation/claims", minh, {"limit": 10}))[1]["comments"] == []
    assert (await decide(client, minh, rejected, "approve"))[1]["code"] == "leased_to_other"
    # Decided again after the undo: published again, once.
    assert (await decide(client, lan, approved, "approve"))[0] == 200
    assert await redis.zrange(keys.article_order(article), 0, -1) == [approved.encode()]
    assert await redis.hget(keys.article(article), "count") == b"1"


async def test_undo_only_by_its_maker_or_an_admin_within_the_window(client: Client) -> None:
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    first, second, third = [(await submit(client, "bai-cua-so", title=f"t{n}"))["id"] for n in range(3)]
    for comment_id in (first, second, third):
        assert (await decide(client, lan, comment_id, "reject"))[0] == 200

    status, refused = await post(client, f"/v1/moderation/comments/{first}/undo", minh)
    assert (status, refused["code"]) == (409, "undo_not_allowed")
    assert "Lan" in refused["detail"]
    status, record = await post(client, f"/v1/moderation/comments/{first}/undo", ADMIN)
    assert (status, record["state"]) == (200, "pending")
    status, refused = await post(client, f"/v1/moderation/comments/{first}/undo", lan)
    assert (status, refused["code"]) == (409, "undo_not_allowed")  # nothing left to undo

    at(client, 9)
    assert (await post(client, f"/v1/moderation/comments/{second}/undo", lan))[0] == 200
    at(client, 11)
    status, refused = await post(client, f"/v1/moderation/comments/{third}/undo", lan)
    assert (status, refused["code"]) == (409, "undo_not_allowed")
    assert "10" in refused["detail"]
    status, refused = await post(client, f"/v1/moderation/comments/{third}/undo", ADMIN)
    assert (status, refused["code"]) == (409, "undo_not_allowed")  # the window holds for admins too

    # A retraction is not undone.
    at(client, 0)
    approved = (await submit(client, "bai-cua-so"))["id"]
    assert (await decide(client, lan, approved, "approve"))[0] == 200
    assert (await post(client, f"/v1/moderation/comments/{approved}/retract", lan))[0] == 200
    status, refused = await post(client, f"/v1/moderation/comments/{approved}/undo", lan)
    assert (status, refused["code"]) == (409, "undo_not_allowed")
    assert (await post(client, "/v1/moderation/comments/zz/undo", lan))[0] == 404
    assert (await post(client, f"/v1/moderation/comments/{first[:2]}{'0' * 24}/undo", lan))[0] == 404


# -- lists by state ------------------------------------------------------------------------------------------

async def page_through(client: Client, path: str, **params: Any) -> tuple[list[str], int]:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = await get_json(client, path, ADMIN, **query)
        seen += [c["id"] for c in page["comments"]]
        pages += 1
        cursor = page["next_cursor"]
        assert page["complete"] is (cursor is None)
        if cursor is None:
            return seen, pages


async def test_lists_by_state_page_newest_decided_first(client: Client) -> None:
    articles = articles_in_distinct_partitions(4)
    ids = [(await submit(client, articles[n % 4]))["id"] for n in range(10)]
    for n, comment_id in enumerate(ids[:7]):
        at(client, n)  # distinct decision times: "newest first" is one order
        assert (await decide(client, ADMIN, comment_id, "approve" if n < 5 else "reject"))[0] == 200
    at(client, 7)
    assert (await post(client, f"/v1/moderation/comments/{ids[0]}/retract", ADMIN))[0] == 200

    approved, pages = await page_through(client, "/v1/moderation/comments", state="approved", limit=2)
    assert (approved, pages) == (ids[4:0:-1], 2)
    assert (await page_through(client, "/v1/moderation/comments", state="rejected"))[0] == [ids[6], ids[5]]
    assert (await page_through(client, "/v1/moderation/comments", state="retracted"))[0] == [ids[0]]
    assert (await page_through(client, "/v1/moderation/comments", state="spam"))[0] == []
    assert (await page_through(client, "/v1/moderation/comments", state="pending", limit=2))[0] == ids[7:]
    kept, _ = await page_through(client, "/v1/moderation/comments", state="approved", article_id=articles[1],
                                 limit=1)
    assert kept == [ids[1]]
    page = await get_json(client, "/v1/moderation/comments", ADMIN, state="approved", limit=1)
    assert page["comments"][0]["decided_by"] == "admin" and page["comments"][0]["email"] == "reader@example.com"

    for params in ({}, {"state": "all"}, {"state": "approved\n"}, {"state": "approved", "cursor": "1:x"},
                   {"state": "approved", "limit": "٣"}, {"state": "approved", "article_id": "a\n"}):
        response = await client.get("/v1/moderation/comments", params=params, headers=ADMIN)
        assert response.status == 422, params
    assert (await client.get("/v1/moderation/comments", params={"state": "approved"})).status == 401


# -- search ----------------------------------------------------------------------------------------------------

async def test_search_finds_words_without_diacritics_and_every_criterion(client: Client) -> None:
    articles = articles_in_distinct_partitions(3)
    road = (await submit(client, articles[0], name="Nguyễn Văn Đức", email="Duc@Example.com",
                         title="Đường phố Huế", body="Con đường này rất đẹp vào mùa thu."))["id"]
    other = (await submit(client, articles[1], name="Trần Thị Lan", email="lan@example.com",
                          title="Góp ý", body="Duong khong co dau cung tim thay."))["id"]
    unrelated = (await submit(client, articles[2], name="Minh", email="minh@example.com", title="Thời tiết",
                              body="Hôm nay trời mưa."))["id"]

    async def found(**params: Any) -> list[str]:
        return (await page_through(client, "/v1/moderation/search", **params))[0]

    assert await found(q="duong") == [other, road]
    assert await found(q="ĐƯỜNG") == [other, road]
    assert await found(q="đường phố hue") == [road]
    assert await found(q="duong troi") == []
    assert await found(q="mưa") == [unrelated, road]  # folded, "mưa" (rain) and "mùa" (season) are one word
    assert await found(name="van duc") == [road]
    assert await found(email="duc@example.com") == [road]
    assert await found(email="DUC@example.COM", q="thu") == [road]
    assert await found(email="nobody@example.com") == []
    assert await found(q="duong", article_id=articles[1]) == [other]
    record = await get_json(client, f"/v1/moderation/comments/{road}", ADMIN)
    assert await found(ip_hash=record["ip_hash"], limit=1) == [unrelated, other, road]

    assert (await decide(client, ADMIN, road, "approve"))[0] == 200
    assert await found(q="duong", state="approved") == [road]
    assert await found(q="duong", state="pending") == [other]
    today = record["created_at"][:10]
    assert await found(q="duong", since=today, until=today) == [other, road]
    assert await found(q="duong", until="2000-01-01") == []
    assert await found(q="duong", since=record["created_at"]) == [other, road]

    for params in ({"q": "   "}, {"q": "x" * 201}, {"email": "not an email"}, {"ip_hash": "ABC"},
                   {"since": "2024-13-01"}, {"since": "2024-01-01\n"}, {"state": "gone"}, {"cursor": "9"},
                   {"name": "a\u202eb"}):
        response = await client.get("/v1/moderation/search", params=params, headers=ADMIN)
        assert response.status == 422, params


async def test_search_pages_and_says_how_far_it_looked(client: Client) -> None:
    ids = [(await submit(client, "bai-tim", body=f"Bình luận số {n} về con đường"))["id"] for n in range(7)]
    seen, pages = await page_through(client, "/v1/moderation/search", q="con duong", limit=3)
    assert (seen, pages) == (ids[::-1], 3)
    page = await get_json(client, "/v1/moderation/search", ADMIN, q="duong", limit=100)
    assert (page["scanned"], page["complete"], page["next_cursor"]) == (7, True, None)


async def test_doctor_indexes_comments_stored_before_the_search_indexes(client: Client, redis: Redis) -> None:
    article = "bai-cu"
    old = (await submit(client, article, title="Đường cũ"))["id"]
    assert (await decide(client, ADMIN, old, "reject"))[0] == 200
    partition = keys.partition_of_article(article)
    assert await doctor(redis, repair=False) == []
    # As stored before the search index: no number, no map, no terms.
    await redis.hdel(keys.comment(old), "n")
    tag = keys.search_seq(partition)[:-2]
    index = [k for pattern in ("n", "n:*", "w:*", "e:*", "i:*", "b:*")
             for k in [key async for key in redis.scan_iter(f"{tag}:{pattern}")]]
    assert keys.search_seq(partition).encode() in index and keys.word_index(partition, "duong").encode() not in index
    await redis.delete(*index, keys.state_index(partition, "rejected"))
    assert await get_json(client, "/v1/moderation/search", ADMIN, q="duong") == {
        "comments": [], "next_cursor": None, "scanned": 0, "complete": True}
    found = await doctor(redis, repair=True)
    assert sorted((f.kind, f.id, f.mended) for f in found) == [
        ("not_in_search_index", old, True), ("state_list_missing", old, True)]
    assert all("duong" not in f.line() for f in found)  # no words of a comment in the report
    assert await doctor(redis, repair=False) == []
    page = await get_json(client, "/v1/moderation/search", ADMIN, q="duong")
    assert [c["id"] for c in page["comments"]] == [old]
    assert (await page_through(client, "/v1/moderation/comments", state="rejected"))[0] == [old]


# -- an author's record ------------------------------------------------------------------------------------------

async def test_an_authors_record_lists_earlier_comments_by_email_and_address(client: Client) -> None:
    articles = articles_in_distinct_partitions(4)
    earlier = [(await submit(client, articles[n], email="Hoa@example.com", title=f"cũ {n}"))["id"]
               for n in range(3)]
    stranger = (await submit(client, articles[3], email="khac@example.com"))["id"]
    assert (await decide(client, ADMIN, earlier[0], "approve"))[0] == 200
    assert (await decide(client, ADMIN, earlier[1], "spam"))[0] == 200
    latest = (await submit(client, articles[3], email="hoa@example.com"))["id"]
    later = (await submit(client, articles[0], email="hoa@example.com"))["id"]

    record = await get_json(client, f"/v1/moderation/comments/{latest}/author", ADMIN)
    assert record["comment_id"] == latest
    by_email = record["by_email"]
    assert [c["id"] for c in by_email["comments"]] == earlier[::-1] and later not in str(record)
    assert [c["state"] for c in by_email["comments"]] == ["pending", "spam", "approved"]
    assert (by_email["total"], by_email["states"]) == (3, {"pending": 1, "spam": 1, "approved": 1})
    assert by_email["comments"][2]["decided_at"] is not None and by_email["comments"][0]["decided_at"] is None
    assert [c["id"] for c in record["by_ip"]["comments"]] == [stranger, *earlier[::-1]]

    limited = await get_json(client, f"/v1/moderation/comments/{latest}/author", ADMIN, limit=1)
    assert ([c["id"] for c in limited["by_email"]["comments"]], limited["by_email"]["total"]) == ([earlier[2]], 3)
    first = await get_json(client, f"/v1/moderation/comments/{earlier[0]}/author", ADMIN)
    assert (first["by_email"]["comments"], first["by_email"]["total"]) == ([], 0)
    assert (await client.get(f"/v1/moderation/comments/{latest[:2]}{'0' * 24}/author", headers=ADMIN)).status == 404
    assert (await client.get(f"/v1/moderation/comments/{latest}/author", params={"limit": "0"},
                             headers=ADMIN)).status == 422


# -- stats ---------------------------------------------------------------------------------------------------------

def test_wait_quantiles_from_buckets() -> None:
    assert wait_quantiles({}).model_dump() == {"decisions": 0, "median_seconds": None, "p90_seconds": None}
    spread = wait_quantiles({"10": 5, "120": 4, "1800": 1})
    assert (spread.decisions, spread.median_seconds, spread.p90_seconds) == (10, 10.0, 120.0)
    assert wait_quantiles({"60": 4}).median_seconds == 45.0  # rank 2 of 4 in (30, 60]
    assert wait_quantiles({"inf": 1}).p90_seconds == 604800.0


async def test_stats_give_time_to_decision_and_decisions_per_hour_per_moderator(client: Client) -> None:
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    ids = [(await submit(client, f"bai-{n % 3}"))["id"] for n in range(10)]
    for comment_id, (offset, who) in zip(ids, [(5, lan)] * 5 + [(100, minh)] * 4 + [(1000, lan)], strict=True):
        at(client, offset)
        assert (await decide(client, who, comment_id, "approve"))[0] == 200
    stats = await get_json(client, "/v1/moderation/stats", ADMIN)
    for period in ("day", "week"):
        assert stats["time_to_decision"][period] == {"decisions": 10, "median_seconds": 10.0, "p90_seconds": 120.0}
    per_hour = stats["decisions_per_hour_per_moderator"]
    assert sum(m.get("Lan", 0) for m in per_hour.values()) == 6
    assert sum(m.get("Minh", 0) for m in per_hour.values()) == 4
    # An undo is counted apart and adds no wait.
    at(client, 1001)
    assert (await post(client, f"/v1/moderation/comments/{ids[9]}/undo", lan))[0] == 200
    stats = await get_json(client, "/v1/moderation/stats", ADMIN)
    assert stats["decisions_per_moderator"]["Lan"] == {"approve": 6, "undo": 1}
    assert stats["time_to_decision"]["day"]["decisions"] == 10


async def test_the_routes_are_in_the_openapi_document(client: Client) -> None:
    document = orjson.loads(await (await client.get("/openapi.json")).read())
    paths = document["paths"]
    for path, method in (("/v1/moderation/comments", "get"), ("/v1/moderation/search", "get"),
                         ("/v1/moderation/comments/{comment_id}/author", "get"),
                         ("/v1/moderation/claims/renew", "post"), ("/v1/moderation/claims/release", "post"),
                         ("/v1/moderation/comments/{comment_id}/undo", "post")):
        assert method in paths[path], path


# -- the console's address without its slash ------------------------------------------------------------------

async def test_the_console_without_its_slash_redirects_and_keeps_one_operation_id(client: Client) -> None:
    for path, location in (("/moderation", "/moderation/"), ("/moderation?lang=en", "/moderation/?lang=en")):
        response = await client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (308, location)
    assert (await client.get("/moderation")).status == 200  # followed: the page
    document = await get_json(client, "/openapi.json")
    assert document["paths"]["/moderation"]["get"]["operationId"] == "get_moderation_redirect"
    assert document["paths"]["/moderation/"]["get"]["operationId"] == "get_moderation"
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


# -- totals per state -----------------------------------------------------------------------------------------

async def test_stats_count_every_comment_of_each_decided_state(client: Client) -> None:
    lan = await token(client, "moderator", "Lan")
    ids = [(await submit(client, article))["id"] for article in articles_in_distinct_partitions(5)]
    for comment_id, action in zip(ids, ("approve", "approve", "reject", "spam"), strict=False):
        assert (await decide(client, lan, comment_id, action))[0] == 200
    assert (await post(client, f"/v1/moderation/comments/{ids[1]}/retract", lan))[0] == 200
    stats = await get_json(client, "/v1/moderation/stats", lan)
    assert stats["queue_depth"] == 1
    assert stats["totals"] == {"approved": 1, "rejected": 1, "spam": 1, "retracted": 1}
