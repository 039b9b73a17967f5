"""Issue 19: the text is stored once, in the record. No public view is stored (`pub`, the article's `ap:` hash),
feed events carry ids and are rendered from the record when read, and a comment decided once has no history list
(its fields describe the decision). Every reader sees what it saw before: pages, the feed, the history, exports.
Against a real redis-server, through the HTTP API (`service.records`, decide.lua, erase.lua, import.lua)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis
from support import ADMIN, Client, decide, submit_comment

from service import keys
from service.appkeys import SETTINGS
from service.exporting import export
from service.importing.importer import Importer, Options
from service.models import iso
from service.records import public_view
from service.scripts import Scripts
from service.settings import Settings

Json = dict[str, Any]
ARTICLE = "gon-nhe"
PUBLIC_FIELDS = ["id", "parent_id", "name", "title", "body", "created_at", "approved_at", "avatar"]


async def _json(client: Client, path: str, **params: Any) -> Json:
    response = await client.get(path, params=params, headers=ADMIN)
    assert response.status == 200, await response.text()
    body: Json = await response.json()
    return body


async def _history(client: Client, comment_id: str) -> list[Json]:
    entries: list[Json] = (await _json(client, f"/v1/moderation/comments/{comment_id}"))["history"]
    return entries


async def _post(client: Client, path: str, body: Json | None = None) -> Json:
    response = await client.post(path, json=body if body is not None else {}, headers=ADMIN)
    assert response.status == 200, await response.text()
    answer: Json = await response.json()
    return answer


async def test_an_approval_stores_the_text_once_and_readers_see_the_same_comment(
        client: Client, redis: Redis, settings: Settings) -> None:
    parent = await submit_comment(client, ARTICLE, name="Lan", title="Cha", body="Nội dung / cha")
    record = await decide(client, parent["id"], "approve")
    reply = await submit_comment(client, ARTICLE, name="Minh", body="Trả lời", parent_id=parent["id"])
    await decide(client, reply["id"], "approve")

    # Stored: the record (its `d` and `ap`), the article's order set and count; no other copy of the text.
    fields = await redis.hgetall(keys.comment(parent["id"]))
    assert b"pub" not in fields and b"ap" in fields
    assert await redis.exists(keys.history(parent["id"]), keys.legacy_article_public(ARTICLE)) == 0
    assert [m for m in await redis.zrange(keys.article_order(ARTICLE), 0, -1)] == [
        parent["id"].encode(), reply["id"].encode()]
    events: Any = await redis.xrange(keys.feed(keys.partition_of_article(ARTICLE)))
    assert [sorted(f) for _, f in events] == [[b"ap", b"article", b"id", b"type"]] * 2
    assert all("Nội".encode() not in b"".join(f.values()) for _, f in events)  # no text in the events

    # The page, the feed and the export show the view made from the record, the same everywhere.
    data = orjson.loads(fields[b"d"])
    expected = {"id": parent["id"], "parent_id": None, "name": "Lan", "title": "Cha", "body": "Nội dung / cha",
                "created_at": data["created_at"], "approved_at": iso(int(fields[b"ap"])), "avatar": data["avatar"]}
    assert expected["approved_at"] == record["decided_at"]
    page = await _json(client, f"/v1/articles/{ARTICLE}/comments")
    assert page["total"] == 2 and page["comments"][0] == expected
    assert list(page["comments"][0]) == PUBLIC_FIELDS
    assert page["comments"][1]["parent_id"] == parent["id"]
    feed = await _json(client, "/v1/feed")
    assert [e["comment"] for e in feed["events"]] == page["comments"]
    assert public_view(parent["id"], data, int(fields[b"ap"])) == expected


async def test_a_reply_needs_an_approved_parent_in_the_article(client: Client) -> None:
    pending = await submit_comment(client, ARTICLE)
    refused = await submit_comment(client, ARTICLE, expect=422, parent_id=pending["id"])
    assert refused["code"] == "invalid_parent"
    await decide(client, pending["id"], "approve")
    await submit_comment(client, ARTICLE, parent_id=pending["id"])
    other = await submit_comment(client, "bai-khac", expect=422, parent_id=pending["id"])
    assert other["code"] == "invalid_parent"  # approved, but in another article
    await _post(client, f"/v1/moderation/comments/{pending['id']}/retract")
    assert (await submit_comment(client, ARTICLE, expect=422, parent_id=pending["id"]))["code"] == "invalid_parent"


async def test_one_decision_lives_in_the_record_and_the_history_list_starts_at_the_second(
        client: Client, redis: Redis) -> None:
    comments = [(await submit_comment(client, ARTICLE))["id"] for _ in range(3)]
    approved, rejected, quiet = comments
    await _post(client, f"/v1/moderation/comments/{approved}/decision", {"action": "approve", "reason": "tốt"})
    await _post(client, f"/v1/moderation/comments/{rejected}/decision", {"action": "reject"})
    await _post(client, f"/v1/moderation/comments/{quiet}/decision", {"action": "spam", "reason": "quảng cáo"})
    assert await redis.exists(*(keys.history(c) for c in comments)) == 0
    assert await redis.hget(keys.comment(approved), "dr") == "tốt".encode()
    assert await redis.hget(keys.comment(rejected), "dr") is None  # no reason: no field
    first = await _history(client, approved)
    assert [(e["action"], e["from_state"], e["to_state"], e["reason"], e["version"], e["by"]) for e in first] == [
        ("approve", "pending", "approved", "tốt", 2, "admin")]
    assert [e["reason"] for e in await _history(client, rejected)] == [""]

    # The second change writes the first entry (made from the fields) and then its own; `dr` goes.
    await _post(client, f"/v1/moderation/comments/{approved}/retract", {"reason": "sai"})
    assert await redis.llen(keys.history(approved)) == 2
    assert await redis.hget(keys.comment(approved), "dr") is None
    second = await _history(client, approved)
    assert second[0] == first[0]
    assert [(e["action"], e["to_state"], e["reason"], e["version"]) for e in second[1:]] == [
        ("retract", "retracted", "sai", 3)]
    undone = await _post(client, f"/v1/moderation/comments/{quiet}/undo")
    assert undone["state"] == "pending"
    entries = await _history(client, quiet)
    assert [(e["action"], e["reason"]) for e in entries] == [("spam", "quảng cáo"), ("undo", "")]
    await _post(client, f"/v1/moderation/comments/{quiet}/decision", {"action": "approve", "reason": "nhầm"})
    entries = await _history(client, quiet)
    assert [(e["action"], e["reason"], e["version"]) for e in entries] == [
        ("spam", "quảng cáo", 2), ("undo", "", 3), ("approve", "nhầm", 4)]
    assert await redis.hget(keys.comment(quiet), "dr") is None


async def test_feed_events_keep_their_own_approval_time_and_follow_erasure(
        client: Client, redis: Redis, settings: Settings) -> None:
    comment_id = (await submit_comment(client, ARTICLE, name="Hoa", email="hoa@example.vn", body="Lần đầu"))["id"]
    first = await decide(client, comment_id, "approve")
    await asyncio.sleep(0.01)
    await _post(client, f"/v1/moderation/comments/{comment_id}/undo")
    await asyncio.sleep(0.01)
    second = await decide(client, comment_id, "approve")
    events = (await _json(client, "/v1/feed"))["events"]
    assert [(e["type"], e["comment"]["approved_at"]) for e in events] == [
        ("comment.approved", first["decided_at"]), ("comment.retracted", first["decided_at"]),
        ("comment.approved", second["decided_at"])]
    assert first["decided_at"] != second["decided_at"]
    cursor = events[0]["cursor"]

    # Anonymised: every event shows the record as it is now; nothing shows the name any more.
    response = await client.post("/v1/privacy/erasures", headers=ADMIN, json={
        "comment_ids": [comment_id], "mode": "anonymise", "requested_by": "ticket 1"})
    assert response.status == 200, await response.text()
    rest = (await _json(client, "/v1/feed", after=cursor))["events"]
    assert rest and {e["comment"]["name"] for e in rest} == {"Bạn đọc"}
    assert rest[-1]["type"] == "comment.anonymised"
    assert rest[-1]["comment"]["approved_at"] == second["decided_at"]

    # Deleted: the earlier events are scrubbed, and whatever a reader meets is the tombstone.
    response = await client.post("/v1/privacy/erasures", headers=ADMIN, json={
        "comment_ids": [comment_id], "mode": "delete", "requested_by": "ticket 2"})
    assert response.status == 200, await response.text()
    everything = (await _json(client, "/v1/feed"))["events"]
    assert [e["type"] for e in everything] == ["comment.anonymised", "comment.erased"]
    for event in everything:  # the anonymisation's event too: it is made from the record, erased now
        tombstone = event["comment"]
        assert (tombstone["name"], tombstone["title"], tombstone["body"], tombstone["avatar"]) == ("", "", "", "")
        assert tombstone["approved_at"] == second["decided_at"]
    assert "Lần đầu" not in orjson.dumps(everything).decode()
    await asyncio.sleep(settings.public_cache_seconds + 0.1)
    assert (await _json(client, f"/v1/articles/{ARTICLE}/comments"))["comments"] == []
    assert b"pub" not in await redis.hgetall(keys.comment(comment_id))


async def test_an_erasure_also_deletes_copies_an_older_version_left(client: Client, redis: Redis) -> None:
    comment_id = (await submit_comment(client, ARTICLE, name="Cũ", body="Bản sao cũ"))["id"]
    await decide(client, comment_id, "approve")
    legacy_copy = orjson.dumps({"id": comment_id, "name": "Cũ", "body": "Bản sao cũ"})
    await redis.hset(keys.legacy_article_public(ARTICLE), comment_id, legacy_copy)
    await redis.hset(keys.comment(comment_id), "pub", legacy_copy)
    response = await client.post("/v1/privacy/erasures", headers=ADMIN, json={
        "comment_ids": [comment_id], "mode": "anonymise", "requested_by": "ticket 3"})
    assert response.status == 200, await response.text()
    assert await redis.hget(keys.legacy_article_public(ARTICLE), comment_id) is None
    assert await redis.hget(keys.comment(comment_id), "pub") is None


async def test_export_shows_the_public_view_and_one_entry_and_a_restore_stores_neither(
        client: Client, redis: Redis, tmp_path: Path) -> None:
    approved = (await submit_comment(client, ARTICLE))["id"]
    await _post(client, f"/v1/moderation/comments/{approved}/decision", {"action": "approve", "reason": "ok"})
    retracted = (await submit_comment(client, ARTICLE))["id"]
    await decide(client, retracted, "approve")
    await _post(client, f"/v1/moderation/comments/{retracted}/retract")
    path = tmp_path / "export.json"
    await export(redis, path)
    exported = {c["id"]: c for c in orjson.loads(path.read_bytes())["comments"]}
    page = await _json(client, f"/v1/articles/{ARTICLE}/comments")
    assert exported[approved]["record"]["pub"] == page["comments"][0]
    assert "pub" in exported[retracted]["record"]  # as before: a retracted comment's last public view
    assert [(h["action"], h["reason"]) for h in exported[approved]["history"]] == [("approve", "ok")]
    assert [h["action"] for h in exported[retracted]["history"]] == ["approve", "retract"]

    await redis.flushdb()
    scripts = Scripts(redis)
    await scripts.load()
    report = await Importer(scripts, client.app[SETTINGS].secret, frozenset(), Options("json", path)).run()
    assert report.imported_total == 2 and not report.failed
    assert await redis.exists(keys.history(approved)) == 0 and await redis.llen(keys.history(retracted)) == 2
    assert await redis.hget(keys.comment(approved), "pub") is None
    again = tmp_path / "again.json"
    await export(redis, again)
    assert again.read_bytes() == path.read_bytes()

