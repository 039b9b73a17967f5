"""Filters on a real-size queue (`service.moderation`, `lua/claim.lua`, the article's pending index kept by
`lua/lib/store.lua` and `lua/decide.lua`): a partition holding more than 10,000 pending comments, of which a
handful belong to the article asked for. The queue, bulk decisions and claims kept to an article find every one
of them; a filter no index serves says how far it looked; and the bulk route accepts the 1,000 ids it documents.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from support import ADMIN, submit_comment

from service import keys
from service.api.moderation import BULK_BODY_MAX_BYTES
from service.models import iso
from service.moderation import BULK_MAX, FILTER_SCAN_MAX
from service.scripts import Arg, Scripts
from service.submissions import OUTBOX_MAXLEN, new_comment_id

PROBLEM: Final = "application/problem+json"
ARTICLE: Final = "bai-viet-x"
#: Comments of other articles queued in ARTICLE's partition, ahead of and between ARTICLE's own.
FILLER: Final = 10_000
#: Where ARTICLE's comments fall among the filler, in submission order: deep in the partition's queue.
ARTICLE_AT: Final = (3_000, 6_000, 9_000, 10_000, 10_000)
BASE_MS: Final = 1_700_000_000_000
Json = dict[str, Any]


def same_partition_articles(article: str, count: int) -> list[str]:
    """Other article ids in `article`'s partition."""
    partition = keys.partition_of_article(article)
    found: list[str] = []
    n = 0
    while len(found) < count:
        candidate = f"khac-{n}"
        if keys.partition_of_article(candidate) == partition:
            found.append(candidate)
        n += 1
    return found


async def store(redis: Redis, comments: list[tuple[str, int, str]]) -> list[str]:
    """Queue comments (article, submitted ms, body) through the store script, as a submission does, in
    pipelines of 2,000: a partition of 10,000 takes about a second, where HTTP would take minutes."""
    scripts = Scripts(redis)
    ids: list[str] = []
    for start in range(0, len(comments), 2_000):
        batch = scripts.batch()
        for article, ms, body in comments[start:start + 2_000]:
            comment_id = new_comment_id(article, ms)
            record = orjson.dumps({"name": "Lan", "email": "lan@example.com", "title": "Tiêu đề", "body": body,
                                   "parent_id": None, "ip_hash": "ip-1", "email_hash": "e-1", "avatar": "a",
                                   "created_at": iso(ms), "risk": []})
            args: list[Arg] = [comment_id, article, ms, record, "", "f", OUTBOX_MAXLEN, ""]
            batch.script("submit_store", keys.submit_keys(comment_id, article), args)
            ids.append(comment_id)
        assert all(answer[0] == b"ok" for answer in await batch.execute())
    return ids


async def long_partition(redis: Redis) -> list[str]:
    """FILLER comments of 50 other articles in ARTICLE's partition, and ARTICLE's 5 among them (at ARTICLE_AT);
    returns ARTICLE's ids, oldest first."""
    others = same_partition_articles(ARTICLE, 50)
    comments = [(others[n % len(others)], BASE_MS + 2 * n, f"bình luận {n}") for n in range(FILLER)]
    # One ms after the filler comment they follow; the last two share a millisecond.
    ours = [(ARTICLE, BASE_MS + 2 * at + 1, f"của bài X số {i}") for i, at in enumerate(ARTICLE_AT)]
    ids = await store(redis, [*comments, *ours])
    assert await redis.zcard(keys.pending(keys.partition_of_article(ARTICLE))) == FILLER + len(ARTICLE_AT)
    return [comment_id for _, comment_id in sorted(zip((ms for _, ms, _ in ours), ids[FILLER:], strict=True))]


async def get_json(client: TestClient[Any, Any], path: str, **params: str) -> Json:
    response = await client.get(path, headers=ADMIN, params=params)
    assert response.status == 200, await response.text()
    result: Json = await response.json()
    return result


async def post_json(client: TestClient[Any, Any], path: str, body: Json, status: int = 200) -> Json:
    response = await client.post(path, json=body, headers=ADMIN)
    assert response.status == status, await response.text()
    result: Json = await response.json(content_type=None)
    return result


async def article_queue(client: TestClient[Any, Any], article: str, limit: int) -> list[Json]:
    """Every page of the article's queue; a cursor comes with every page but the last."""
    pages: list[Json] = []
    cursor: str | None = None
    while True:
        params = {"article_id": article, "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        page = await get_json(client, "/v1/moderation/queue", **params)
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
        assert len(page["comments"]) == limit
        assert len(pages) < 1000


# -- the article's queue ------------------------------------------------------------------------------------------

async def test_the_article_queue_finds_every_pending_comment_deep_in_a_long_partition(
        client: TestClient[Any, Any], redis: Redis) -> None:
    ours = await long_partition(redis)
    page = await get_json(client, "/v1/moderation/queue", article_id=ARTICLE, limit="50")
    assert [c["id"] for c in page["comments"]] == ours
    assert {c["article_id"] for c in page["comments"]} == {ARTICLE}
    assert page["next_cursor"] is None
    # A page that is exactly full at the end has no cursor either: nothing follows it.
    page = await get_json(client, "/v1/moderation/queue", article_id=ARTICLE, limit=str(len(ours)))
    assert [c["id"] for c in page["comments"]] == ours and page["next_cursor"] is None


async def test_the_article_queue_pages_across_cursors_without_gaps_or_repeats(
        client: TestClient[Any, Any], redis: Redis) -> None:
    ours = await long_partition(redis)
    for limit in (1, 2, 4):
        pages = await article_queue(client, ARTICLE, limit)
        assert [c["id"] for page in pages for c in page["comments"]] == ours
        assert len(pages) == -(-len(ours) // limit)


async def test_many_comments_of_one_millisecond_page_without_gaps(
        client: TestClient[Any, Any], redis: Redis) -> None:
    """A cursor names a millisecond and an id: comments of that same millisecond after the id come next, however
    many share it (more than a page and the read-ahead)."""
    ids = sorted(await store(redis, [(ARTICLE, BASE_MS, f"cùng lúc {n}") for n in range(130)]))
    pages = await article_queue(client, ARTICLE, 7)
    assert [c["id"] for page in pages for c in page["comments"]] == ids
    unfiltered: list[str] = []
    cursor: str | None = None
    while True:
        page = await get_json(client, "/v1/moderation/queue", limit="7", **({"cursor": cursor} if cursor else {}))
        unfiltered += [c["id"] for c in page["comments"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert unfiltered == ids


# -- bulk decisions -----------------------------------------------------------------------------------------------

async def test_a_bulk_decision_by_article_decides_exactly_its_comments(
        client: TestClient[Any, Any], redis: Redis) -> None:
    ours = await long_partition(redis)
    result = await post_json(client, "/v1/moderation/decisions", {"action": "approve",
                                                                 "filter": {"article_id": ARTICLE}})
    assert [(o["id"], o["status"], o["state"]) for o in result["outcomes"]] == [(i, 200, "approved") for i in ours]
    assert (result["matched"], result["scanned"], result["complete"], result["next_cursor"]) == (5, 5, True, None)
    partition = keys.partition_of_article(ARTICLE)
    assert await redis.zcard(keys.pending(partition)) == FILLER
    assert await redis.zcard(keys.article_pending(ARTICLE)) == 0
    listing = await get_json(client, f"/v1/articles/{ARTICLE}/comments")
    assert sorted(c["id"] for c in listing["comments"]) == sorted(ours)
    again = await post_json(client, "/v1/moderation/decisions", {"action": "approve",
                                                                "filter": {"article_id": ARTICLE}})
    assert (again["matched"], again["complete"]) == (0, True)


async def test_a_filter_without_an_index_says_how_far_it_looked(
        client: TestClient[Any, Any], redis: Redis) -> None:
    """Text has no index: each request reads at most FILTER_SCAN_MAX queued comments and answers where it
    stopped; sent again with that cursor, it goes on until it has seen the whole queue."""
    ours = await long_partition(redis)
    selector = {"text_contains": "BÀI X"}
    seen: list[str] = []
    answers: list[Json] = []
    cursor: str | None = None
    while True:
        result = await post_json(client, "/v1/moderation/decisions",
                                 {"action": "reject", "filter": selector, **({"cursor": cursor} if cursor else {})})
        answers.append(result)
        seen += [o["id"] for o in result["outcomes"] if o["status"] == 200]
        cursor = result["next_cursor"]
        assert (cursor is None) == result["complete"]
        if cursor is None:
            break
        assert result["scanned"] == FILTER_SCAN_MAX
        assert len(answers) < 10
    assert seen == ours
    assert sum(a["scanned"] for a in answers) == FILLER + len(ours)
    assert [a["complete"] for a in answers] == [False] * (len(answers) - 1) + [True]
    # With the article as well, the article's index is walked: one answer, complete.
    result = await post_json(client, "/v1/moderation/decisions",
                             {"action": "reject", "filter": {"article_id": ARTICLE, "text_contains": "x"}})
    assert (result["matched"], result["scanned"], result["complete"]) == (0, 0, True)


async def test_a_bulk_cursor_needs_a_filter(client: TestClient[Any, Any]) -> None:
    refused = await post_json(client, "/v1/moderation/decisions",
                              {"action": "reject", "ids": ["0" * 26], "cursor": f"1:{'0' * 26}"}, status=422)
    assert refused["code"] == "validation_failed"
    refused = await post_json(client, "/v1/moderation/decisions",
                              {"action": "reject", "filter": {}, "cursor": "not-a-cursor"}, status=422)
    assert refused["code"] == "validation_failed"


# -- claims ---------------------------------------------------------------------------------------------------------

async def test_a_claim_kept_to_an_article_finds_its_comments_deep_in_a_long_partition(
        client: TestClient[Any, Any], redis: Redis) -> None:
    ours = await long_partition(redis)
    first = await post_json(client, "/v1/moderation/claims", {"article_id": ARTICLE, "limit": 3})
    assert [c["id"] for c in first["comments"]] == ours[:3]
    rest = await post_json(client, "/v1/moderation/claims", {"article_id": ARTICLE, "limit": 100})
    assert [c["id"] for c in rest["comments"]] == ours[3:]
    assert {c["claimed_by"] for c in [*first["comments"], *rest["comments"]]} == {"admin"}
    none_left = await post_json(client, "/v1/moderation/claims", {"article_id": ARTICLE, "limit": 100})
    assert none_left["comments"] == []
    # Leased comments are still pending: the article's queue still lists them.
    page = await get_json(client, "/v1/moderation/queue", article_id=ARTICLE)
    assert [c["id"] for c in page["comments"]] == ours


async def test_the_article_index_follows_each_comment_in_and_out_of_the_queue(
        client: TestClient[Any, Any], redis: Redis) -> None:
    comment_id = (await submit_comment(client, ARTICLE, title="T", body="Nội dung"))["id"]
    submitted = await redis.hget(keys.comment(comment_id), "t")
    assert submitted is not None
    assert await redis.zscore(keys.article_pending(ARTICLE), comment_id) == int(submitted)
    await post_json(client, f"/v1/moderation/comments/{comment_id}/decision", {"action": "reject"})
    assert await redis.exists(keys.article_pending(ARTICLE)) == 0


# -- the bulk route's body limit --------------------------------------------------------------------------------------

def longest_ids(count: int) -> list[str]:
    """Valid comment ids of the longest form (none exists: each is answered 404 on its own)."""
    return [f"{n % 16:02x}{n:024d}" for n in range(count)]


async def post_raw(client: TestClient[Any, Any], body: bytes) -> Any:
    return await client.post("/v1/moderation/decisions", data=body,
                             headers={**ADMIN, "Content-Type": "application/json"})


async def test_the_documented_maximum_of_ids_fits_the_body_limit(client: TestClient[Any, Any]) -> None:
    ids = longest_ids(BULK_MAX)
    assert {len(i) for i in ids} == {26}
    reason = "ồ" * 500  # the longest reason, 3 bytes a character
    for body in (orjson.dumps({"action": "reject", "reason": reason, "ids": ids}),
                 orjson.dumps({"action": "reject", "reason": reason, "ids": ids}, option=orjson.OPT_INDENT_2)):
        assert len(body) <= BULK_BODY_MAX_BYTES
        response = await post_raw(client, body)
        assert response.status == 200, await response.text()
        result = await response.json()
        assert result["matched"] == BULK_MAX
        assert {o["code"] for o in result["outcomes"]} == {"not_found"}
    schema = await (await client.get("/openapi.json")).json()
    assert schema["components"]["schemas"]["BulkRequest"]["properties"]["ids"]["anyOf"][0]["maxItems"] == BULK_MAX


async def test_one_id_more_than_the_maximum_is_a_validation_problem(client: TestClient[Any, Any]) -> None:
    response = await post_raw(client, orjson.dumps({"action": "reject", "ids": longest_ids(BULK_MAX + 1)}))
    assert response.status == 422
    assert response.content_type == PROBLEM
    problem = await response.json(content_type=PROBLEM)
    assert problem["code"] == "validation_failed"
    assert [(e["field"], e["code"]) for e in problem["errors"]] == [("ids", "too_long")]


async def test_a_body_over_the_bulk_limit_is_refused_with_413(client: TestClient[Any, Any]) -> None:
    oversized = orjson.dumps({"action": "reject", "reason": "", "ids": longest_ids(BULK_MAX)})
    oversized = oversized[:-1] + b" " * (BULK_BODY_MAX_BYTES - len(oversized) + 1) + b"}"
    assert len(oversized) == BULK_BODY_MAX_BYTES + 1
    response = await post_raw(client, oversized)
    assert response.status == 413
    assert response.content_type == PROBLEM
    assert (await response.json(content_type=PROBLEM))["code"] == "payload_too_large"
    # Other routes keep the usual limit.
    response = await client.post("/v1/moderation/claims", data=b"{" + b" " * 17_000 + b"}",
                                 headers={**ADMIN, "Content-Type": "application/json"})
    assert response.status == 413
