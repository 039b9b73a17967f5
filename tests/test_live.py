"""The live queue (`service.live`, `GET /v1/moderation/events`): server-sent events over real HTTP on a real Redis.
Waits are bounded by a generous timeout only; nothing asserts how fast an event comes."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import ClientResponse
from people import browser, person, sign_in
from test_moderation_api import ADMIN, Client, Headers, Json, decide, post, submit, token

from service.appkeys import LIVE

EVENTS = "/v1/moderation/events"
#: Generous: an event comes within about a second (`live.CHECK_SECONDS`); a busy machine may take longer.
PATIENCE_SECONDS = 30.0


async def next_event(response: ClientResponse) -> tuple[str, str]:
    """The next event or comment of the stream: (event name, data), or ("", comment) for a comment line."""
    name, data = "message", list[str]()
    async with asyncio.timeout(PATIENCE_SECONDS):
        while True:
            line = (await response.content.readline()).decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if line.startswith(":"):
                return "", line[1:].strip()
            if not line:
                if data:
                    return name, "\n".join(data)
                continue
            field, _, value = line.partition(":")
            if field == "event":
                name = value.strip()
            elif field == "data":
                data.append(value.removeprefix(" "))


async def counts_until(response: ClientResponse, wanted: Any) -> Json:
    """Read the stream's `counts` events until one satisfies `wanted`."""
    async with asyncio.timeout(PATIENCE_SECONDS):
        while True:
            name, data = await next_event(response)
            if name == "counts":
                counts: Json = orjson.loads(data)
                if wanted(counts):
                    return counts


async def open_events(client: Client, headers: Headers) -> ClientResponse:
    response = await client.get(EVENTS, headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    return response


async def test_an_event_follows_a_submission_a_decision_an_undo_a_claim_and_a_release(client: Client) -> None:
    lan = await token(client, "moderator", "Lan")
    stream = await open_events(client, lan)
    first = await counts_until(stream, lambda c: True)
    assert first["queue_depth"] == 0 and first["oldest_pending_age_seconds"] is None
    assert first["totals"] == {"approved": 0, "rejected": 0, "spam": 0, "retracted": 0}

    comment_id = (await submit(client, "bai-live"))["id"]
    arrived = await counts_until(stream, lambda c: c["queue_depth"] == 1)
    assert arrived["oldest_pending_age_seconds"] is not None

    assert (await decide(client, lan, comment_id, "reject"))[0] == 200
    decided = await counts_until(stream, lambda c: c["queue_depth"] == 0)
    assert decided["totals"]["rejected"] == 1

    # An undo back to pending writes no outbox entry; the stream still hears of it. It keeps the comment with
    # Lan, so it is counted as claimed.
    assert (await post(client, f"/v1/moderation/comments/{comment_id}/undo", lan))[0] == 200
    undone = await counts_until(stream, lambda c: c["queue_depth"] == 1)
    assert (undone["totals"]["rejected"], undone["claimed"]) == (0, 1)

    assert (await post(client, "/v1/moderation/claims/release", lan, {"ids": [comment_id]}))[0] == 200
    await counts_until(stream, lambda c: c["claimed"] == 0)
    assert (await post(client, "/v1/moderation/claims", lan, {"limit": 5}))[0] == 200
    await counts_until(stream, lambda c: c["claimed"] == 1)
    stream.close()


async def test_the_session_cookie_opens_a_stream_and_nothing_else_does(client: Client) -> None:
    assert (await client.get(EVENTS)).status == 401
    reader = await token(client, "moderator", "Minh")
    await person(client, "Lan")
    cookie, _ = await sign_in(client, "Lan")
    # A GET changes nothing: the cookie needs no CSRF header here, as for the other reads.
    stream = await open_events(client, browser(client, cookie))
    assert (await counts_until(stream, lambda c: True))["queue_depth"] == 0
    stream.close()
    assert (await client.get(EVENTS, headers={**reader, "Authorization": "Bearer nope"})).status == 401


async def test_a_worker_serves_a_bounded_number_of_streams(client: Client) -> None:
    lan = await token(client, "moderator", "Lan")
    live = client.app[LIVE]
    live.max_listeners = 1
    live.heartbeat_seconds = 0.2
    stream = await open_events(client, lan)
    for language, detail in ((None, "Máy chủ này đang phục vụ 1 luồng sự kiện"),
                             ("en", "this server already serves 1 event streams")):
        refused = await client.get(EVENTS, headers={**lan, **({"Accept-Language": language} if language else {})})
        assert refused.status == 503
        problem = await refused.json(content_type="application/problem+json")
        assert problem["code"] == "listeners_full" and problem["detail"].startswith(detail)
        assert refused.headers["Retry-After"] == "30"

    # Idle, the stream carries heartbeats; once its client went away, its place is given back.
    async with asyncio.timeout(PATIENCE_SECONDS):
        while await next_event(stream) != ("", "heartbeat"):
            pass  # the counts came first
    stream.close()
    async with asyncio.timeout(PATIENCE_SECONDS):
        while (again := await client.get(EVENTS, headers=lan)).status == 503:
            again.close()
            await asyncio.sleep(0.05)
    assert again.status == 200 and live.listeners == 1
    again.close()


async def test_streams_end_when_the_server_shuts_down(client: Client) -> None:
    stream = await open_events(client, ADMIN)
    await counts_until(stream, lambda c: True)
    client.app[LIVE].close()
    async with asyncio.timeout(PATIENCE_SECONDS):
        assert await stream.content.read() == b""


async def test_the_stream_is_documented_as_an_event_stream(client: Client) -> None:
    document = await (await client.get("/openapi.json")).json()
    operation = document["paths"][EVENTS]["get"]
    assert set(operation["responses"]["200"]["content"]) == {"text/event-stream"}
    event = operation["responses"]["200"]["content"]["text/event-stream"]["schema"]
    # Each event as its fields (OpenAPI 3.2's stream items): the counts are its data, as JSON.
    assert "QueueOverview" in event["properties"]["data"]["contentSchema"]["$ref"]
    assert "listeners_full" in operation["description"] and "heartbeat" in operation["description"]
    assert "503" in operation["responses"]
