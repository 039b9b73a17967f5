"""Takedowns on record (`service.takedowns`, POST/GET /v1/takedowns) against a real redis-server: the named
comments are retracted at once (the feed carries it), the register lists the request with its timestamps."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from support import ADMIN, bearer, create_token, decide, submit_comment

from service.settings import Settings

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]
UNKNOWN = "0f" + "0" * 24


def request_body(ids: list[str], **changes: Any) -> Json:
    return {"authority": "Bộ Thông tin và Truyền thông", "reference": "CV 123/2026", "date": "2026-03-02",
            "comment_ids": ids, **changes}


async def test_a_takedown_retracts_at_once_and_is_on_record(client: Client, settings: Settings) -> None:
    article = "td-1"
    first = await submit_comment(client, article, body="Nội dung bị yêu cầu gỡ")
    second = await submit_comment(client, article, body="Cũng bị gỡ")
    pending = await submit_comment(client, article, body="Chưa duyệt")
    for item in (first, second):
        await decide(client, item["id"], "approve")
    response = await client.post(f"/v1/comments/{first['id']}/reports", json={"reason": "unlawful"})
    assert response.status == 202

    response = await client.post("/v1/takedowns", json=request_body(
        [first["id"], second["id"], pending["id"], UNKNOWN], note="Hạn 24 giờ"), headers=ADMIN)
    assert response.status == 201, await response.text()
    takedown = await response.json()
    assert [(o["comment_id"], o["outcome"]) for o in takedown["outcomes"]] == [
        (first["id"], "retracted"), (second["id"], "retracted"), (pending["id"], "not_published"),
        (UNKNOWN, "not_found")]
    assert takedown["recorded_by"] == "admin" and takedown["recorded_at"] <= takedown["completed_at"]

    await asyncio.sleep(settings.public_cache_seconds + 0.1)
    listed = await (await client.get(f"/v1/articles/{article}/comments")).json()
    assert listed["comments"] == [] and listed["total"] == 0
    feed = await (await client.get("/v1/feed", headers=ADMIN)).json()
    assert sorted(e["comment"]["id"] for e in feed["events"] if e["type"] == "comment.retracted") == sorted(
        [first["id"], second["id"]])
    record = await (await client.get(f"/v1/moderation/comments/{first['id']}", headers=ADMIN)).json()
    assert record["history"][-1]["reason"].startswith("takedown: Bộ Thông tin và Truyền thông, CV 123/2026")
    reports = await (await client.get("/v1/moderation/reports", headers=ADMIN)).json()
    assert reports["comments"] == []  # its reports were resolved with it

    again = await (await client.post("/v1/takedowns", json=request_body([first["id"]], reference="CV 124/2026"),
                                     headers=ADMIN)).json()
    assert again["outcomes"] == [{"comment_id": first["id"], "outcome": "already_retracted"}]

    register = await (await client.get("/v1/takedowns", headers=ADMIN)).json()
    assert [t["reference"] for t in register["takedowns"]] == ["CV 124/2026", "CV 123/2026"]
    assert register["takedowns"][1]["date"] == "2026-03-02" and register["takedowns"][1]["note"] == "Hạn 24 giờ"
    page = await (await client.get("/v1/takedowns", params={"limit": "1"}, headers=ADMIN)).json()
    assert [t["reference"] for t in page["takedowns"]] == ["CV 124/2026"]
    older = await (await client.get("/v1/takedowns", params={"limit": "1", "before": page["next_cursor"]},
                                    headers=ADMIN)).json()
    assert [t["reference"] for t in older["takedowns"]] == ["CV 123/2026"] and older["next_cursor"] is None


@pytest.mark.parametrize("changes", [{"date": "2026-3-2"}, {"date": "2026-03-02\n"}, {"comment_ids": []},
                                     {"comment_ids": ["nope"]}, {"authority": ""}, {"extra": True}])
async def test_takedown_requests_are_checked_whole(client: Client, changes: Json) -> None:
    response = await client.post("/v1/takedowns", json=request_body([UNKNOWN], **changes), headers=ADMIN)
    assert response.status == 422


async def test_only_admins_record_and_read_takedowns(client: Client) -> None:
    moderator = bearer((await create_token(client, "moderator", "Lan"))["token"])
    assert (await client.post("/v1/takedowns", json=request_body([UNKNOWN]), headers=moderator)).status == 403
    assert (await client.get("/v1/takedowns", headers=moderator)).status == 403
    assert (await client.get("/v1/takedowns")).status == 401
    response = await client.get("/v1/takedowns", params={"before": "12-3\n"}, headers=ADMIN)
    assert response.status == 422
    for oldest in ("0-0", "000-00"):  # nothing is older; Redis refuses the bound `(0-0`, which was a 500
        response = await client.get("/v1/takedowns", params={"before": oldest}, headers=ADMIN)
        assert response.status == 200, await response.text()
        assert (await response.json()) == {"takedowns": [], "next_cursor": None}
