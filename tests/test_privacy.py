"""A reader's data (`service.privacy`, `lua/erase.lua`, `service.api.privacy`) against a real redis-server: the
export holds exactly the person's data; erasure (delete, anonymise) removes every public trace, the feed and
webhooks tell site backends, the log records it without personal data; the self-service link; the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from pytest_aiohttp import AiohttpServer
from redis.asyncio import Redis
from support import ADMIN, articles_in_distinct_partitions, decide, make_app, submit_comment

from service import keys
from service.appkeys import METRICS, SETTINGS
from service.settings import Settings

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]
SECRET = "a-webhook-secret-of-some-length"


async def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait for a background worker (webhooks) to make `condition` true; the deadline only stops a hang."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true"
        await asyncio.sleep(0.02)


async def export(client: Client, email: str) -> Json:
    response = await client.get("/v1/privacy/export", params={"email": email}, headers=ADMIN)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body: Json = await response.json()
    return body


async def erase(client: Client, expect: int = 200, **body: Any) -> Json:
    response = await client.post("/v1/privacy/erasures", json={"requested_by": "ticket 4711", **body},
                                 headers=ADMIN)
    assert response.status == expect, await response.text()
    result: Json = await response.json()
    return result


async def public_list(client: Client, article: str) -> Json:
    response = await client.get(f"/v1/articles/{article}/comments")
    assert response.status == 200
    body: Json = await response.json()
    return body


async def feed_events(client: Client) -> list[Json]:
    response = await client.get("/v1/feed", params={"limit": "500"}, headers=ADMIN)
    assert response.status == 200
    events: list[Json] = (await response.json())["events"]
    return events


async def test_an_export_holds_exactly_the_persons_data(client: Client) -> None:
    first, second = articles_in_distinct_partitions(2, prefix="exp-")
    lan = [await submit_comment(client, first, email="Lan.Nguyen@Example.com", name="Lan", body="Cầu mới đẹp."),
           await submit_comment(client, second, email="lan.nguyen@example.com", name="Lan N.", body="Đường xấu."),
           await submit_comment(client, second, email="lan.nguyen@example.com", name="Lan", body="Chờ duyệt.")]
    binh = [await submit_comment(client, first, email="binh@example.com", name="Bình", body="Ý kiến khác của Bình."),
            await submit_comment(client, second, email="binh@example.com", name="Bình", body="Thêm một ý của Bình.")]
    await decide(client, lan[0]["id"], "approve")
    await decide(client, lan[1]["id"], "reject")
    await decide(client, binh[0]["id"], "approve")
    await decide(client, binh[1]["id"], "spam")
    # Lan reports Bình's comment and gives her address; Bình reports Lan's without one.
    response = await client.post(f"/v1/comments/{binh[0]['id']}/reports",
                                 json={"reason": "offensive", "text": "Lời lẽ khó nghe",
                                       "email": "lan.nguyen@example.com"})
    assert response.status == 202, await response.text()
    response = await client.post(f"/v1/comments/{lan[0]['id']}/reports", json={"reason": "spam"})
    assert response.status == 202

    exported = await export(client, "LAN.NGUYEN@example.com")
    assert [c["id"] for c in exported["comments"]] == [c["id"] for c in lan]
    assert [c["state"] for c in exported["comments"]] == ["approved", "rejected", "pending"]
    assert [c["body"] for c in exported["comments"]] == ["Cầu mới đẹp.", "Đường xấu.", "Chờ duyệt."]
    assert [len(c["history"]) for c in exported["comments"]] == [1, 1, 0]
    assert exported["comments"][0]["history"][0]["action"] == "approve"
    assert all(c["ip_hash"] for c in exported["comments"])
    assert exported["reports"] == [{"comment_id": binh[0]["id"], "reason": "offensive", "text": "Lời lẽ khó nghe",
                                    "reported_at": exported["reports"][0]["reported_at"]}]
    text = orjson.dumps(exported).decode()
    for foreign in ("binh@example.com", "Bình", "Ý kiến khác", "Thêm một ý", binh[1]["id"]):
        assert foreign not in text
    # the same by POST (the address out of the URL); an unknown address has nothing
    response = await client.post("/v1/privacy/export", json={"email": "lan.nguyen@example.com"}, headers=ADMIN)
    assert [c["id"] for c in (await response.json())["comments"]] == [c["id"] for c in lan]
    nobody = await export(client, "nobody@example.com")
    assert nobody["comments"] == nobody["reports"] == nobody["subscriptions"] == []
    # admins only, and the address is checked whole
    assert (await client.get("/v1/privacy/export", params={"email": "lan.nguyen@example.com"})).status == 401
    response = await client.get("/v1/privacy/export", params={"email": "lan@example"}, headers=ADMIN)
    assert response.status == 422


async def test_erasure_by_email_removes_every_public_trace(client: Client, aiohttp_server: AiohttpServer,
                                                           settings: Settings) -> None:
    received: list[Json] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(orjson.loads(await request.read()))
        return web.Response()

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    server = await aiohttp_server(receiver)
    response = await client.post("/v1/webhooks", headers=ADMIN, json={
        "url": str(server.make_url("/hook")), "events": ["comment.erased"], "secret": SECRET})
    assert response.status == 201, await response.text()

    article, other = articles_in_distinct_partitions(2, prefix="del-")
    mine = [await submit_comment(client, article, email="hoa@example.vn", name="Hoa", body="Văn bản riêng của Hoa."),
            await submit_comment(client, other, email="hoa@example.vn", name="Hoa", body="Hoa ở bài khác."),
            await submit_comment(client, article, email="hoa@example.vn", name="Hoa", body="Hoa đang chờ.")]
    theirs = await submit_comment(client, article, email="minh@example.vn", name="Minh", body="Của Minh.")
    for item in (mine[0], mine[1], theirs):
        await decide(client, item["id"], "approve")
    before = await public_list(client, article)  # now cached by this worker
    assert before["total"] == 2
    counts = await (await client.get("/v1/counts", params=[("article_id", article), ("article_id", other)])).json()
    assert counts["counts"] == {article: 2, other: 1}

    result = await erase(client, email="HOA@example.vn", mode="delete")
    assert sorted(result["erased"]) == sorted(i["id"] for i in mine)
    assert result["already"] == result["missing"] == []

    await asyncio.sleep(settings.public_cache_seconds + 0.1)  # the cache interval passes
    after = await public_list(client, article)
    assert [c["id"] for c in after["comments"]] == [theirs["id"]] and after["total"] == 1
    assert (await public_list(client, other))["comments"] == []
    counts = await (await client.get("/v1/counts", params=[("article_id", article), ("article_id", other)])).json()
    assert counts["counts"] == {article: 1, other: 0}
    # the pending one left the queue
    queue = await (await client.get("/v1/moderation/queue", headers=ADMIN)).json()
    assert mine[2]["id"] not in [c["id"] for c in queue["comments"]]

    # the feed: an erased event per published comment, a tombstone, and no copy of the text left
    events = await feed_events(client)
    erased = [e for e in events if e["type"] == "comment.erased"]
    assert sorted(e["comment"]["id"] for e in erased) == sorted([mine[0]["id"], mine[1]["id"]])
    assert all(e["comment"]["name"] == e["comment"]["body"] == "" for e in erased)
    assert [e for e in events if "Hoa" in orjson.dumps(e).decode()] == []
    await until(lambda: len(received) == 2)
    assert sorted(p["data"]["comment_id"] for p in received) == sorted([mine[0]["id"], mine[1]["id"]])
    assert {p["type"] for p in received} == {"comment.erased"}

    # nothing personal is left in the record or its history; a later export is empty
    record = await (await client.get(f"/v1/moderation/comments/{mine[0]['id']}", headers=ADMIN)).json()
    assert (record["name"], record["email"], record["body"], record["ip_hash"]) == ("", "", "", "")
    assert record["state"] == "retracted" and record["history"][-1]["action"] == "erase"
    exported = await export(client, "hoa@example.vn")
    assert exported["comments"] == [] and exported["reports"] == []

    # idempotent: again by email finds nothing, by id changes nothing
    assert (await erase(client, email="hoa@example.vn", mode="delete"))["erased"] == []
    again = await erase(client, comment_ids=[mine[0]["id"], "0f" + "0" * 24], mode="delete")
    assert again["already"] == [mine[0]["id"]] and again["missing"] == ["0f" + "0" * 24]

    # the log: who asked, who ran it, how many, which ids; no address
    log = await (await client.get("/v1/privacy/log", headers=ADMIN)).json()
    first = log["entries"][-1]
    assert (first["kind"], first["mode"], first["requested_by"], first["run_by"], first["count"]) == (
        "erase", "delete", "ticket 4711", "admin", 3)
    assert sorted(first["ids"]) == sorted(i["id"] for i in mine)
    assert "hoa" not in orjson.dumps(log).decode().lower()
    metrics = client.app[METRICS].erasures.labels("delete")._value.get()
    assert metrics == 3


async def test_anonymise_keeps_the_text(client: Client, settings: Settings) -> None:
    article = "anon-1"
    item = await submit_comment(client, article, email="tuan@example.vn", name="Tuấn", body="Giữ lại nội dung này.")
    pending = await submit_comment(client, article, email="tuan@example.vn", name="Tuấn", body="Vẫn chờ.")
    await decide(client, item["id"], "approve")
    await public_list(client, article)
    result = await erase(client, comment_ids=[item["id"], pending["id"]], mode="anonymise")
    assert sorted(result["erased"]) == sorted([item["id"], pending["id"]])
    await asyncio.sleep(settings.public_cache_seconds + 0.1)
    shown = (await public_list(client, article))["comments"]
    assert [(c["name"], c["body"], c["avatar"]) for c in shown] == [("Bạn đọc", "Giữ lại nội dung này.", "")]
    events = [e for e in await feed_events(client) if e["type"] == "comment.anonymised"]
    assert [e["comment"]["name"] for e in events] == ["Bạn đọc"]
    assert "Tuấn" not in orjson.dumps(await feed_events(client)).decode()
    record = await (await client.get(f"/v1/moderation/comments/{pending['id']}", headers=ADMIN)).json()
    assert (record["name"], record["email"], record["ip_hash"], record["state"]) == ("Bạn đọc", "", "", "pending")
    assert (await export(client, "tuan@example.vn"))["comments"] == []
    assert (await erase(client, comment_ids=[item["id"]], mode="anonymise"))["already"] == [item["id"]]
    # a deletion still goes further
    assert (await erase(client, comment_ids=[item["id"]], mode="delete"))["erased"] == [item["id"]]


@pytest.mark.parametrize("body", [
    {"mode": "delete"},
    {"mode": "delete", "email": "a@example.com", "comment_ids": ["0f" + "0" * 24]},
    {"mode": "forget", "email": "a@example.com"},
    {"mode": "delete", "comment_ids": ["0f" + "0" * 24 + "\n"]},
    {"mode": "delete", "email": "a@example.com", "extra": 1},
])
async def test_erasure_requests_are_checked_whole(client: Client, body: Json) -> None:
    await erase(client, expect=422, **body)


async def test_erasure_needs_an_admin(client: Client) -> None:
    response = await client.post("/v1/privacy/erasures", json={"mode": "delete", "email": "a@example.com",
                                                                "requested_by": "x"})
    assert response.status == 401


async def test_self_service_requests_keep_the_link_to_themselves(aiohttp_client: Any, settings: Settings,
                                                                  redis: Redis) -> None:
    """The request's record and mail item (the email itself: tests/test_mail.py, which follows the link)."""
    client: Client = await aiohttp_client(make_app(with_mail(settings)))
    response = await client.post("/v1/privacy/requests", json={"email": "mai@example.vn", "kind": "export",
                                                               "lang": "en"})
    assert response.status == 202 and (await response.json()) == {"status": "sent"}
    assert b"/privacy/" not in await response.read()
    response = await client.post("/v1/privacy/requests", json={"email": "mai@example.vn", "kind": "erase",
                                                               "extra": 1})
    assert response.status == 422
    stored = [await redis.hgetall(key) async for key in redis.scan_iter(match=keys.data_request("*"))]
    assert [(r[b"email"], r[b"kind"]) for r in stored] == [(b"mai@example.vn", b"export")]


async def test_self_service_requests_are_limited(aiohttp_client: Any, settings: Settings) -> None:
    client: Client = await aiohttp_client(make_app(with_mail(settings)))
    count, _ = client.app[SETTINGS].rate_limit_data_request
    statuses = [(await client.post("/v1/privacy/requests", json={"email": "many@example.vn", "kind": "export"})).status
                for _ in range(count + 1)]
    assert statuses == [202] * count + [429]


def with_mail(settings: Settings) -> Settings:
    """Email on (self-service needs it), towards a port where nothing listens: no email is looked at here."""
    return settings.model_copy(update={"smtp_url": SecretStr("smtp://127.0.0.1:1"),
                                       "mail_from": "binhluan@bao.example.vn"})


def test_cli_exports_and_erases(redis_server: Any, settings: Settings) -> None:
    env = {**os.environ, "COMMENTS_REDIS_URL": redis_server.url, "COMMENTS_SECRET_KEY": "s" * 48,
           "COMMENTS_DATA_DIR": str(settings.data_dir)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "service", "privacy", *args], env=env, capture_output=True,
                              text=True, timeout=60, check=False)

    done = cli("export", "--email", "nobody@example.com")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["comments"] == []
    done = cli("erase", "--email", "nobody@example.com", "--mode", "anonymise", "--requested-by", "test")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["erased"] == []
    done = cli("retention", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["dry_run"] is True
