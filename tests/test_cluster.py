"""The API against a real Redis Cluster (3 masters, 3 replicas on loopback): articles spread over the masters,
and submissions, claims, decisions, public lists and counts, the feed and webhooks behave as on one server,
with no CROSSSLOT (or any other) error."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpServer
from redis import Redis
from redis.asyncio.cluster import RedisCluster
from redis_topologies import Cluster
from support import (
    ADMIN,
    LOOPBACK,
    articles_in_distinct_partitions,
    bearer,
    comment_form,
    create_token,
    decide,
    issue_captcha,
    make_app,
    service_settings,
    submit_comment,
)

from service import keys
from service.appkeys import REDIS
from service.connections import create_redis
from service.doctor import doctor
from service.models import iso
from service.scripts import Arg, Scripts
from service.settings import Settings
from service.submissions import OUTBOX_MAXLEN, new_comment_id

pytestmark = pytest.mark.slow


def master_of(client: RedisCluster, key: str) -> str:
    node = client.get_node_from_key(key)
    assert node is not None
    return node.name


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster() as started:
        yield started


@pytest.fixture
def flushed(cluster: Cluster) -> Cluster:
    for port in cluster.masters():
        with Redis(port=port) as node:
            node.flushall()
    return cluster


@pytest.fixture
def cluster_settings(flushed: Cluster, tmp_path: Path) -> Settings:
    return service_settings(flushed.url, tmp_path, captcha_pool_size=2, public_cache_seconds=0,
                            webhook_backoff_base_seconds=0.2, webhook_allowed_networks=LOOPBACK)


@pytest.fixture
def errors_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """After the test: nothing anywhere logged an error, and no log line mentions CROSSSLOT."""
    caplog.set_level(logging.INFO)
    yield caplog
    text = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "CROSSSLOT" not in text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.fixture
async def api(aiohttp_client: Any, cluster_settings: Settings,
              errors_logged: pytest.LogCaptureFixture) -> AsyncIterator[TestClient[Any, Any]]:
    client: TestClient[Any, Any] = await aiohttp_client(make_app(cluster_settings))
    yield client
    metrics = (await (await client.get("/metrics")).read()).decode()
    server_errors = [line for line in metrics.splitlines()
                     if line.startswith("comments_http_requests_total{") and 'status="500"' in line]
    assert server_errors == []


@pytest.fixture
async def cluster_client(flushed: Cluster) -> AsyncIterator[RedisCluster]:
    client = create_redis(flushed.url)
    assert isinstance(client, RedisCluster)
    yield client
    await client.aclose()


async def submit(api: TestClient[Any, Any], article: str, body: str) -> dict[str, Any]:
    return await submit_comment(api, article, body=body)


async def test_articles_spread_over_every_master(cluster_client: RedisCluster) -> None:
    articles = articles_in_distinct_partitions(keys.PARTITIONS)
    await cluster_client.initialize()
    masters = {master_of(cluster_client, keys.article(a)) for a in articles}
    assert len(masters) >= 3
    # what one script touches shares a slot: the partition's keys of an article and of its comments
    for article in articles:
        slots = {cluster_client.keyslot(key) for key in
                 keys.decide_keys(f"{keys.partition_of_article(article):02x}" + "0" * 24, article, 1)}
        assert len(slots) == 1


async def test_submit_claim_decide_list_and_count(api: TestClient[Any, Any],
                                                  cluster_client: RedisCluster) -> None:
    articles = articles_in_distinct_partitions(12)
    submitted: dict[str, list[str]] = {a: [] for a in articles}
    for article in articles:
        for n in range(3):
            accepted = await submit(api, article, f"Bình luận {n} về {article}")
            submitted[article].append(accepted["id"])
    all_ids = {i for ids in submitted.values() for i in ids}
    await cluster_client.initialize()
    comment_masters = {master_of(cluster_client, keys.comment(i)) for i in all_ids}
    assert len(comment_masters) >= 3

    queued: set[str] = set()
    cursor: str | None = None
    while True:
        params = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        page = await (await api.get("/v1/moderation/queue", params=params, headers=ADMIN)).json()
        queued.update(c["id"] for c in page["comments"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert queued == all_ids

    claim = await api.post("/v1/moderation/claims", json={"limit": 100}, headers=ADMIN)
    assert claim.status == 200
    assert {c["id"] for c in (await claim.json())["comments"]} == all_ids

    # per article: approve the first, reject the second, spam the third (through the bulk route)
    for first, second, _ in submitted.values():
        assert (await decide(api, first, "approve"))["state"] == "approved"
        assert (await decide(api, second, "reject"))["state"] == "rejected"
    bulk = await api.post("/v1/moderation/decisions", headers=ADMIN, json={
        "action": "spam", "ids": [ids[2] for ids in submitted.values()]})
    assert bulk.status == 200
    assert [o["status"] for o in (await bulk.json())["outcomes"]] == [200] * len(articles)
    retracted_article = articles[0]
    retract = await api.post(f"/v1/moderation/comments/{submitted[retracted_article][0]}/retract",
                             json={"reason": "sai sự thật"}, headers=ADMIN)
    assert retract.status == 200
    assert (await retract.json())["state"] == "retracted"

    for article in articles:
        listing = await (await api.get(f"/v1/articles/{article}/comments")).json()
        expected = [] if article == retracted_article else [submitted[article][0]]
        assert [c["id"] for c in listing["comments"]] == expected
        assert listing["total"] == len(expected)
    counts = await (await api.get("/v1/counts", params=[("article_id", a) for a in articles])).json()
    assert counts["counts"] == {a: 0 if a == retracted_article else 1 for a in articles}

    stats = await (await api.get("/v1/moderation/stats", headers=ADMIN)).json()
    assert stats["queue_depth"] == 0
    assert stats["decisions_per_moderator"]["admin"] == {
        "approve": len(articles), "reject": len(articles), "spam": len(articles), "retract": 1}

    history = await (await api.get(f"/v1/moderation/comments/{submitted[retracted_article][0]}",
                                   headers=ADMIN)).json()
    assert [h["to_state"] for h in history["history"]] == ["approved", "retracted"]


async def test_receipts_replies_idempotency_and_closing(api: TestClient[Any, Any]) -> None:
    article = articles_in_distinct_partitions(5)[4]
    parent = await submit(api, article, "Gốc")
    await decide(api, parent["id"], "approve")
    status = await api.get(f"/v1/comments/{parent['id']}/status",
                           headers={"Authorization": f"Receipt {parent['receipt']}"})
    assert (await status.json())["status"] == "approved"

    captcha = await issue_captcha(api)
    form = comment_form(captcha, body="Trả lời", parent_id=parent["id"])
    first = await api.post(f"/v1/articles/{article}/comments", json=form, headers={"Idempotency-Key": "k-1"})
    again = await api.post(f"/v1/articles/{article}/comments", json=form, headers={"Idempotency-Key": "k-1"})
    assert (first.status, again.status) == (202, 202)
    assert (await first.json())["id"] == (await again.json())["id"]

    closed = await api.post(f"/v1/moderation/articles/{article}/close", headers=ADMIN)
    assert closed.status == 200
    captcha = await issue_captcha(api)
    refused = await api.post(f"/v1/articles/{article}/comments", json=comment_form(captcha))
    assert refused.status == 409
    assert (await refused.json())["code"] == "comments_closed"


async def test_the_gate_runs_in_its_own_slot(api: TestClient[Any, Any], cluster_settings: Settings,
                                            aiohttp_client: Any) -> None:
    """On a Cluster the gate (captcha use, rate limits, repeats, idempotency) is a script of its own: each of its
    answers reaches the client as on one server."""
    article = articles_in_distinct_partitions(6)[5]
    captcha = await issue_captcha(api)
    form = comment_form(captcha, body="Lặp lại")
    assert (await api.post(f"/v1/articles/{article}/comments", json=form)).status == 202
    used = await api.post(f"/v1/articles/{article}/comments", json=form)
    assert used.status == 422 and (await used.json())["code"] == "captcha_invalid"

    # A first attempt that failed its captcha, then a retry with a new one under the same key.
    wrong = await api.post(f"/v1/articles/{article}/comments", headers={"Idempotency-Key": "k-2"},
                           json=comment_form(await issue_captcha(api), "WRONG", body="Lặp lại"))
    assert wrong.status == 422
    retry = await api.post(f"/v1/articles/{article}/comments", headers={"Idempotency-Key": "k-2"},
                           json=comment_form(await issue_captcha(api), body="Lặp lại"))
    assert retry.status == 202
    record = await (await api.get(f"/v1/moderation/comments/{(await retry.json())['id']}", headers=ADMIN)).json()
    assert record["risk"] == ["repeated_text"]
    other = await api.post(f"/v1/articles/{article}/comments", headers={"Idempotency-Key": "k-2"},
                           json=comment_form(await issue_captcha(api), body="Khác hẳn"))
    assert other.status == 422 and (await other.json())["code"] == "idempotency_key_reused"

    limited = await aiohttp_client(make_app(cluster_settings.model_copy(
        update={"rate_limit_enabled": True, "rate_limit_ip": (1, 60)})))
    first = await submit(limited, article, "Một")
    assert first["id"]
    captcha = await issue_captcha(limited)
    refused = await limited.post(f"/v1/articles/{article}/comments", json=comment_form(captcha, body="Hai"))
    assert refused.status == 429 and int(refused.headers["Retry-After"]) > 0


async def test_feed_merges_partitions_in_decision_order_and_resumes(api: TestClient[Any, Any]) -> None:
    feed = bearer((await create_token(api, "feed", "site"))["token"])
    articles = articles_in_distinct_partitions(6)
    ids = [(await submit(api, article, f"Bình luận {n}"))["id"] for n in range(2) for article in articles]
    decided: list[tuple[str, str]] = []
    for comment_id in ids:
        # Events of different partitions come from different masters and merge by their stream time (ms);
        # let the clock move on so that the decision order is unambiguous.
        await asyncio.sleep(0.003)
        await decide(api, comment_id, "approve")
        decided.append(("comment.approved", comment_id))
    await asyncio.sleep(0.003)
    await api.post(f"/v1/moderation/comments/{ids[3]}/retract", json={}, headers=ADMIN)
    decided.append(("comment.retracted", ids[3]))

    whole = await (await api.get("/v1/feed", params={"limit": "1000"}, headers=feed)).json()
    assert [(e["type"], e["comment"]["id"]) for e in whole["events"]] == decided
    assert len({keys.partition_of_comment(e["comment"]["id"]) for e in whole["events"]}) == len(articles)

    paged: list[dict[str, Any]] = []
    cursors: list[str] = []
    cursor = ""
    while True:
        page = await (await api.get("/v1/feed", params={"limit": "5", "after": cursor} if cursor
                                    else {"limit": "5"}, headers=feed)).json()
        if not page["events"]:
            break
        paged.extend(page["events"])
        cursor = page["next_cursor"]
        cursors.append(cursor)
    assert [e["cursor"] for e in paged] == [e["cursor"] for e in whole["events"]]
    # the same cursor gives the same events: a consumer that crashed resumes without a gap
    resumed = await (await api.get("/v1/feed", params={"limit": "1000", "after": cursors[0]},
                                   headers=feed)).json()
    assert [e["cursor"] for e in resumed["events"]] == [e["cursor"] for e in whole["events"][5:]]


async def test_webhook_delivers_an_approval(api: TestClient[Any, Any], aiohttp_server: AiohttpServer) -> None:
    received: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        arrived.set()
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    server = await aiohttp_server(receiver)
    registered = await api.post("/v1/webhooks", headers=ADMIN, json={
        "url": str(server.make_url("/hook")), "events": ["comment.approved"], "secret": "x" * 24})
    assert registered.status == 201
    article = articles_in_distinct_partitions(3)[2]
    comment = await submit(api, article, "Gửi tới webhook")
    await decide(api, comment["id"], "approve")
    await asyncio.wait_for(arrived.wait(), timeout=15)
    assert [(r["type"], r["data"]["comment_id"], r["data"]["article_id"]) for r in received] == [
        ("comment.approved", comment["id"], article)]
    hook_id = (await registered.json())["id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the outcome is recorded just after the receiver answered
        deliveries = await (await api.get(f"/v1/webhooks/{hook_id}/deliveries", headers=ADMIN)).json()
        if deliveries["deliveries"] and deliveries["deliveries"][0]["state"] == "delivered":
            break
        await asyncio.sleep(0.05)
    assert [d["state"] for d in deliveries["deliveries"]] == ["delivered"]


async def test_ready_on_a_safely_configured_cluster(api: TestClient[Any, Any]) -> None:
    response = await api.get("/readyz")
    assert response.status == 200, await response.text()


async def test_ready_notices_a_cluster_node_without_aof(api: TestClient[Any, Any], cluster: Cluster) -> None:
    app = api.app
    assert app is not None
    default = app[REDIS].get_default_node()
    assert default is not None
    nodes = [port for port in cluster.masters() if port != default.port]
    try:
        for port in nodes:
            with Redis(port=port) as node:
                node.config_set("appendonly", "no")
        response = await api.get("/readyz")
        assert response.status == 503
    finally:
        for port in nodes:
            with Redis(port=port) as node:
                node.config_set("appendonly", "yes")


async def test_article_filters_find_comments_behind_a_long_partition(api: TestClient[Any, Any],
                                                                    cluster_client: RedisCluster) -> None:
    """The article's pending index shares its partition's slot: the queue filtered by article, a claim kept to the
    article and a bulk decision by article find its comments behind 1,000 older ones of other articles in the
    partition, with no CROSSSLOT."""
    article = articles_in_distinct_partitions(9)[8]
    partition = keys.partition_of_article(article)
    others = [a for a in (f"khac-{n}" for n in range(2000)) if keys.partition_of_article(a) == partition][:20]
    scripts = Scripts(cluster_client)
    old = int(time.time() * 1000) - 3_600_000
    batch = scripts.batch()
    for n in range(1000):
        other, ms = others[n % len(others)], old + n
        comment_id = new_comment_id(other, ms)
        record = orjson.dumps({"name": "Lan", "email": "lan@example.com", "title": "T", "body": f"cũ {n}",
                               "parent_id": None, "ip_hash": "ip", "email_hash": "e", "avatar": "a",
                               "created_at": iso(ms), "risk": []})
        args: list[Arg] = [comment_id, other, ms, record, "", "f", OUTBOX_MAXLEN, ""]
        batch.script("submit_store", keys.submit_keys(comment_id, other), args)
    assert {tuple(answer) for answer in await batch.execute()} == {(b"ok",)}
    ours = [(await submit(api, article, f"Bình luận {n}"))["id"] for n in range(3)]

    listed: list[str] = []
    cursor: str | None = None
    while True:
        params = {"article_id": article, "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await api.get("/v1/moderation/queue", params=params, headers=ADMIN)).json()
        listed += [c["id"] for c in page["comments"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert listed == ours

    claim = await api.post("/v1/moderation/claims", json={"article_id": article, "limit": 10}, headers=ADMIN)
    assert claim.status == 200
    assert [c["id"] for c in (await claim.json())["comments"]] == ours
    bulk = await api.post("/v1/moderation/decisions", json={"action": "approve", "filter": {"article_id": article}},
                          headers=ADMIN)
    assert bulk.status == 200
    result = await bulk.json()
    assert [(o["id"], o["state"]) for o in result["outcomes"]] == [(i, "approved") for i in ours]
    assert result["complete"] is True
    assert await cluster_client.zcard(keys.pending(partition)) == 1000


async def test_an_article_named_like_another_articles_key_stays_apart(api: TestClient[Any, Any],
                                                                      cluster_client: RedisCluster) -> None:
    """`X:order` on X's partition once named X's order set (`a:X:order`): approving on it made X's list a hash.
    Now each article's keys are its own, and an id with `:` goes through submission, decision, list and count."""
    article = next(f"urn:news:{n}" for n in range(10_000)
                   if keys.partition_of_article(f"urn:news:{n}:order") == keys.partition_of_article(f"urn:news:{n}"))
    twin = f"{article}:order"
    on_article = await submit(api, article, "Bình luận về bài gốc")
    on_twin = await submit(api, twin, "Bình luận về bài có tên giống khóa")
    await decide(api, on_twin["id"], "approve")
    await decide(api, on_article["id"], "approve")
    for name, comment in ((article, on_article), (twin, on_twin)):
        listing = await (await api.get(f"/v1/articles/{name}/comments")).json()
        assert [c["id"] for c in listing["comments"]] == [comment["id"]]
    counts = await (await api.get("/v1/counts", params=[("article_id", article), ("article_id", twin)])).json()
    assert counts["counts"] == {article: 1, twin: 1}
    await cluster_client.initialize()
    assert await cluster_client.type(keys.article_order(article)) == b"zset"
    assert await cluster_client.type(keys.article(twin)) == b"hash"
    # The doctor scans every master and finds the data healthy; a count made wrong there is found and mended.
    assert await doctor(cluster_client, repair=False) == []
    await cluster_client.hset(keys.article(twin), "count", 5)
    assert [(f.kind, f.key, f.mended) for f in await doctor(cluster_client, repair=True)] == [
        ("count_mismatch", keys.article(twin), True)]
    assert await doctor(cluster_client, repair=False) == []


async def test_search_state_lists_author_and_leases_fan_out_over_the_masters(api: TestClient[Any, Any]) -> None:
    """Each partition's search indexes and state lists share its slot: a search, a list by state and an author's
    record fan out to every partition and merge newest first; renewal, release and undo keep to one slot."""
    articles = articles_in_distinct_partitions(6)
    ids = [(await submit(api, article, f"Con đường số {n}"))["id"] for n, article in enumerate(articles)]
    found: list[str] = []
    cursor: str | None = None
    while True:
        params = {"q": "duong", "limit": "4", **({"cursor": cursor} if cursor else {})}
        page = await (await api.get("/v1/moderation/search", params=params, headers=ADMIN)).json()
        found += [c["id"] for c in page["comments"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert found == ids[::-1]

    for comment_id in ids[:4]:
        await decide(api, comment_id, "approve")
    listed = await (await api.get("/v1/moderation/comments", params={"state": "approved", "limit": "3"},
                                  headers=ADMIN)).json()
    assert [c["id"] for c in listed["comments"]] == ids[3:0:-1] and listed["next_cursor"] is not None
    undone = await api.post(f"/v1/moderation/comments/{ids[3]}/undo", headers=ADMIN)
    assert undone.status == 200 and (await undone.json())["state"] == "pending"

    record = await (await api.get(f"/v1/moderation/comments/{ids[5]}/author", headers=ADMIN)).json()
    assert [c["id"] for c in record["by_email"]["comments"]] == ids[4::-1]

    claim = await api.post("/v1/moderation/claims", json={"limit": 10}, headers=ADMIN)
    claimed = [c["id"] for c in (await claim.json())["comments"]]
    # The undone comment came back already leased to whoever undid it: the claim takes the others.
    assert sorted(claimed) == sorted(ids[4:])
    held = [ids[3], *claimed]
    renewed = await (await api.post("/v1/moderation/claims/renew", json={"ids": held}, headers=ADMIN)).json()
    assert sorted(renewed["held"]) == sorted(held)
    released = await (await api.post("/v1/moderation/claims/release", json={"ids": held}, headers=ADMIN)).json()
    assert sorted(released["held"]) == sorted(held)


async def test_export_and_erasure_fan_out_over_the_masters(api: TestClient[Any, Any]) -> None:
    """A reader's comments on articles of every master: exported, then erased (delete and anonymise), each comment
    by erase.lua in its own slot, with no CROSSSLOT."""
    articles = articles_in_distinct_partitions(6, prefix="gdpr-")
    mine = [await submit_comment(api, article, email="hoa@example.vn", name="Hoa", body=f"Của Hoa {n}")
            for n, article in enumerate(articles)]
    other = await submit_comment(api, articles[0], email="minh@example.vn", name="Minh", body="Của Minh")
    for item in [*mine[:4], other]:
        await decide(api, item["id"])
    exported = await (await api.post("/v1/privacy/export", json={"email": "hoa@example.vn"}, headers=ADMIN)).json()
    assert sorted(c["id"] for c in exported["comments"]) == sorted(i["id"] for i in mine)

    anonymised = await api.post("/v1/privacy/erasures", headers=ADMIN, json={
        "comment_ids": [mine[0]["id"]], "mode": "anonymise", "requested_by": "test"})
    assert (await anonymised.json())["erased"] == [mine[0]["id"]]
    response = await api.post("/v1/privacy/erasures", headers=ADMIN, json={
        "email": "hoa@example.vn", "mode": "delete", "requested_by": "test"})
    assert response.status == 200, await response.text()
    assert sorted((await response.json())["erased"]) == sorted(i["id"] for i in mine[1:])

    for n, article in enumerate(articles):
        listed = await (await api.get(f"/v1/articles/{article}/comments")).json()
        shown = [(c["name"], c["body"]) for c in listed["comments"]]
        assert shown == ([("Bạn đọc", "Của Hoa 0"), ("Minh", "Của Minh")] if n == 0 else [])
    exported = await (await api.post("/v1/privacy/export", json={"email": "hoa@example.vn"}, headers=ADMIN)).json()
    assert exported["comments"] == []
    again = await api.post("/v1/privacy/erasures", headers=ADMIN, json={
        "comment_ids": [i["id"] for i in mine[1:]], "mode": "delete", "requested_by": "test"})
    assert sorted((await again.json())["already"]) == sorted(i["id"] for i in mine[1:])
