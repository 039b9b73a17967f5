"""Webhooks against a real redis-server and a real HTTP receiver on loopback (`service.webhooks`,
`service.api.webhooks`)."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import ValidationError
from pytest_aiohttp import AiohttpServer
from redis.asyncio import Redis
from support import Client

from service import keys
from service.embedded import free_port
from service.jobs import backoff_seconds
from service.scripts import Scripts
from service.settings import Settings
from service.webhooks import (
    DeliveryState,
    Webhook,
    WebhookRegistration,
    Webhooks,
    sign,
)

SECRET = "s3cret-s3cret-s3cret"
ADMIN = {"Authorization": "Bearer test-admin-token"}


# -- a receiver --------------------------------------------------------------------------------------------

@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Records every request; answers `statuses` in order, then 200 (or 500 to each id's first attempt)."""

    url: str = ""
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    fail_first_attempt: bool = False
    delay: float = 0.0
    _seen: set[str] = field(default_factory=set)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(Received(dict(request.headers), body, time.monotonic()))
        if self.delay:
            await asyncio.sleep(self.delay)
        webhook_id = request.headers.get("Webhook-Id", "")
        if self.fail_first_attempt and webhook_id not in self._seen:
            self._seen.add(webhook_id)
            return web.Response(status=500)
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    def ids(self) -> list[str]:
        return [r.headers["Webhook-Id"] for r in self.requests]


@pytest.fixture
async def receiver(aiohttp_server: AiohttpServer) -> Receiver:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    server = await aiohttp_server(app)
    recv.url = str(server.make_url("/hook"))
    return recv


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_backoff_base_seconds": 0.05, "webhook_timeout_seconds": 2.0,
                                       "webhook_max_attempts": 12})


@pytest.fixture
async def hooks(redis: Redis, hook_settings: Settings) -> AsyncIterator[Webhooks]:
    service = Webhooks(redis, Scripts(redis), hook_settings)
    await service.start()
    yield service
    await service.close()


# -- helpers -----------------------------------------------------------------------------------------------

def comment_id(n: int, partition: int = 3) -> str:
    return f"{partition:02x}{n:024d}"


async def emit(redis: Redis, event: str, cid: str, *, article: str = "a1", action: str | None = None) -> str:
    """An outbox entry with the fields `submit.lua` / `decide.lua` write."""
    fields = {"type": event, "id": cid, "article": article, "at": str(int(time.time() * 1000))}
    if action:
        fields["action"] = action
    entry = await redis.xadd(keys.outbox(keys.partition_of_comment(cid)), fields)  # type: ignore[arg-type]
    return entry.decode() if isinstance(entry, bytes) else entry


async def register(service: Webhooks, url: str, events: list[str], secret: str = SECRET) -> Webhook:
    return await service.register(WebhookRegistration.model_validate({"url": url, "events": events,
                                                                      "secret": secret}))


async def settle(condition: Callable[[], bool], *services: Webhooks, seconds: float = 10.0) -> None:
    """Dispatch and deliver with every service (at least once) until `condition` holds."""
    deadline = time.monotonic() + seconds
    while True:
        for service in services:
            await service.dispatch_once()
            await service.deliver_due_once()
        if condition():
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


# -- registrations -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"url": "ftp://example.com/x", "events": ["comment.approved"], "secret": SECRET},
    {"url": "/relative", "events": ["comment.approved"], "secret": SECRET},
    {"url": "https://example.com/x y", "events": ["comment.approved"], "secret": SECRET},
    {"url": "https://example.com/x", "events": [], "secret": SECRET},
    {"url": "https://example.com/x", "events": ["comment.deleted"], "secret": SECRET},
    {"url": "https://example.com/x", "events": ["comment.approved"], "secret": "short"},
    {"url": "https://example.com/x", "events": ["comment.approved"], "secret": "x" * 201},
    {"url": "https://example.com/x", "events": ["comment.approved"], "secret": SECRET, "extra": 1},
])
def test_registration_refuses_bad_input(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WebhookRegistration.model_validate(body)


def test_registration_keeps_events_once_and_hides_the_secret() -> None:
    events = ["comment.rejected", "comment.approved", "comment.rejected"]
    reg = WebhookRegistration.model_validate({"url": "https://x.example", "secret": SECRET, "events": events})
    assert reg.events == ["comment.approved", "comment.rejected"]
    assert SECRET not in repr(reg)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    for attempt, expected in [(1, 2.0), (2, 4.0), (3, 8.0), (12, 3600.0), (50, 3600.0)]:
        for _ in range(20):
            assert expected * 0.9 <= backoff_seconds(2.0, attempt) <= expected * 1.1


# -- delivery ----------------------------------------------------------------------------------------------

async def test_delivery_is_signed_and_carries_ids_only(redis: Redis, hooks: Webhooks,
                                                       receiver: Receiver) -> None:
    outcomes: list[tuple[str, str]] = []
    hooks.on_delivery = lambda event, outcome: outcomes.append((event, outcome))
    hook = await register(hooks, receiver.url, ["comment.approved"])
    cid = comment_id(1)
    await emit(redis, "comment.submitted", cid)  # not subscribed
    await emit(redis, "comment.approved", cid, action="approve")

    before = int(time.time())
    await settle(lambda: len(receiver.requests) == 1, hooks)
    request = receiver.requests[0]
    timestamp = int(request.headers["Webhook-Timestamp"])
    assert before <= timestamp <= int(time.time())
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["Webhook-Signature"], f"v1={expected}")
    assert sign(SECRET, timestamp, request.body) == f"v1={expected}"
    assert request.headers["Content-Type"] == "application/json"

    payload = orjson.loads(request.body)
    assert payload["id"] == request.headers["Webhook-Id"]
    assert payload["type"] == "comment.approved"
    assert payload["created_at"].endswith("Z")
    assert payload["data"] == {"comment_id": cid, "article_id": "a1", "action": "approve"}

    [delivery] = await hooks.deliveries(hook.id)
    assert (delivery.state, delivery.attempts, delivery.last_status) == (DeliveryState.DELIVERED, 1, 200)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    assert outcomes == [("comment.approved", "delivered")]
    assert await redis.zcard(keys.deliveries_due()) == 0
    assert 0 < await redis.ttl(keys.delivery(delivery.id)) <= 7 * 86400
    # Nothing more: the submitted event had no subscriber, and the approval went out once.
    await settle(lambda: True, hooks)
    assert len(receiver.requests) == 1


async def test_three_failures_then_delivered_with_backoff(redis: Redis, hooks: Webhooks,
                                                          receiver: Receiver) -> None:
    receiver.statuses = [500, 500, 500]
    hook = await register(hooks, receiver.url, ["comment.approved"])
    await emit(redis, "comment.approved", comment_id(2), action="approve")

    await settle(lambda: len(receiver.requests) == 1, hooks)
    [first] = await hooks.deliveries(hook.id)
    assert first.state == DeliveryState.RETRYING
    assert (first.attempts, first.last_status, first.last_error) == (1, 500, "http_500")
    assert first.next_attempt_at is not None

    await settle(lambda: len(receiver.requests) == 4, hooks)
    [done] = await hooks.deliveries(hook.id)
    assert (done.state, done.attempts, done.last_status) == (DeliveryState.DELIVERED, 4, 200)
    # The same delivery, byte for byte, every time; waits of base * 2 ** (attempt - 1), less 10% jitter.
    assert len(set(receiver.ids())) == 1
    assert len({r.body for r in receiver.requests}) == 1
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    for attempt, gap in enumerate(gaps, start=1):
        assert gap >= 0.05 * 2 ** (attempt - 1) * 0.9 - 0.01, gaps


async def test_gives_up_after_max_attempts(redis: Redis, settings: Settings, receiver: Receiver) -> None:
    service = Webhooks(redis, Scripts(redis), settings.model_copy(
        update={"webhook_backoff_base_seconds": 0.02, "webhook_max_attempts": 3}))
    await service.start()
    try:
        outcomes: list[str] = []
        service.on_delivery = lambda _event, outcome: outcomes.append(outcome)
        receiver.statuses = [503] * 10
        hook = await register(service, receiver.url, ["comment.rejected"])
        await emit(redis, "comment.rejected", comment_id(3), action="spam")
        await settle(lambda: outcomes[-1:] == ["failed"], service)
        [delivery] = await service.deliveries(hook.id)
        assert (delivery.state, delivery.attempts, delivery.last_status) == (DeliveryState.FAILED, 3, 503)
        assert delivery.last_error == "http_503"
        assert outcomes == ["retrying", "retrying", "failed"]
        await asyncio.sleep(0.2)
        assert await service.deliver_due_once() == 0
        assert len(receiver.requests) == 3
    finally:
        await service.close()


async def test_timeout_and_refused_connection_are_failed_attempts(redis: Redis, settings: Settings,
                                                                  receiver: Receiver) -> None:
    service = Webhooks(redis, Scripts(redis), settings.model_copy(update={"webhook_timeout_seconds": 0.2}))
    await service.start()
    try:
        receiver.delay = 1.0
        slow = await register(service, receiver.url, ["comment.approved"])
        closed = await register(service, f"http://127.0.0.1:{free_port()}/hook", ["comment.approved"])
        await emit(redis, "comment.approved", comment_id(4), action="approve")
        await settle(lambda: True, service)
        [timed_out] = await service.deliveries(slow.id)
        [refused] = await service.deliveries(closed.id)
        assert timed_out.state == refused.state == DeliveryState.RETRYING
        assert timed_out.last_error is not None and "timeout" in timed_out.last_error
        assert refused.last_error is not None and refused.last_status is None
        # Classes, never the client's message (which would name internal hosts and ports).
        assert (timed_out.last_error, refused.last_error) == ("timeout", "refused")
    finally:
        await service.close()


# -- surviving restarts and crashes ------------------------------------------------------------------------

async def test_restart_between_event_and_delivery_loses_nothing(redis: Redis, hook_settings: Settings,
                                                                receiver: Receiver) -> None:
    first = Webhooks(redis, Scripts(redis), hook_settings)
    await first.start()
    hook = await register(first, receiver.url, ["comment.approved", "comment.retracted"])
    await emit(redis, "comment.approved", comment_id(5), action="approve")
    assert await first.dispatch_once() == 1  # a delivery exists, nothing was sent
    await emit(redis, "comment.retracted", comment_id(5), action="retract")  # not even dispatched
    await first.close()
    assert receiver.requests == []

    second = Webhooks(redis, Scripts(redis), hook_settings)
    await second.start()  # the groups exist: it keeps their position instead of starting at $
    task = asyncio.create_task(second.run())
    try:
        await wait_for(lambda: len(receiver.requests) == 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    types = sorted(orjson.loads(r.body)["type"] for r in receiver.requests)
    assert types == ["comment.approved", "comment.retracted"]
    assert {d.state for d in await second.deliveries(hook.id)} == {DeliveryState.DELIVERED}


async def test_entries_of_a_dead_dispatcher_are_taken_over_once(redis: Redis, hooks: Webhooks,
                                                                hook_settings: Settings,
                                                                receiver: Receiver) -> None:
    await register(hooks, receiver.url, ["comment.approved"])
    cid = comment_id(6, partition=9)
    await emit(redis, "comment.approved", cid, action="approve")
    stream = keys.outbox(9)
    # A process read the entry and died before creating the deliveries and acknowledging it.
    read: Any = await redis.xreadgroup(keys.outbox_group("webhooks"), "dead-process", {stream: ">"})
    assert read
    assert await hooks.dispatch_once() == 0  # not stale yet: another live process may be working on it

    hooks.stale_entry_ms, hooks.reclaim_every_seconds = 0, 0
    await settle(lambda: len(receiver.requests) == 1, hooks)
    # A dispatcher that created the deliveries but died before XACK: dispatching the entry again is harmless.
    [[_, [(entry_id, fields)]]] = read
    other = Webhooks(redis, Scripts(redis), hook_settings)
    await other._dispatch(9, [(entry_id.decode(), {k.decode(): v.decode() for k, v in fields.items()})],
                          await other._stored())
    assert await redis.zcard(keys.deliveries_due()) == 0
    await settle(lambda: True, hooks, other)
    assert len(receiver.requests) == 1
    assert (await redis.xpending(stream, keys.outbox_group("webhooks")))["pending"] == 0


async def test_consumers_of_gone_processes_are_pruned_unless_they_hold_entries(redis: Redis,
                                                                               hooks: Webhooks) -> None:
    stream = keys.outbox(2)
    await emit(redis, "comment.approved", comment_id(11, partition=2), action="approve")
    await redis.xreadgroup(keys.outbox_group("webhooks"), "holds-an-entry", {stream: ">"})
    await emit(redis, "comment.approved", comment_id(12, partition=2), action="approve")
    read: Any = await redis.xreadgroup(keys.outbox_group("webhooks"), "done", {stream: ">"})
    await redis.xack(stream, keys.outbox_group("webhooks"), read[0][1][0][0])
    await hooks.dispatch_once()
    assert await hooks.prune_consumers(idle_ms=0) == 1
    names = {c["name"].decode() for c in await redis.xinfo_consumers(stream, keys.outbox_group("webhooks"))}
    assert names == {"holds-an-entry"}


async def test_dispatch_recreates_a_lost_consumer_group(redis: Redis, hooks: Webhooks,
                                                        receiver: Receiver) -> None:
    await register(hooks, receiver.url, ["comment.approved"])
    await redis.delete(keys.outbox(3))  # e.g. a Redis that lost its data: the group goes with the stream
    assert await hooks.dispatch_once() == 0
    await emit(redis, "comment.approved", comment_id(7), action="approve")
    await settle(lambda: len(receiver.requests) == 1, hooks)


# -- deleting and concurrency ------------------------------------------------------------------------------

async def test_delete_stops_deliveries(redis: Redis, hooks: Webhooks, receiver: Receiver) -> None:
    receiver.statuses = [500]
    hook = await register(hooks, receiver.url, ["comment.approved"])
    kept = await register(hooks, receiver.url, ["comment.submitted"])
    await emit(redis, "comment.approved", comment_id(8), action="approve")
    await settle(lambda: len(receiver.requests) == 1, hooks)
    [pending] = await hooks.deliveries(hook.id)
    assert pending.state == DeliveryState.RETRYING

    await hooks.delete(hook.id)
    assert [h.id for h in await hooks.list()] == [kept.id]
    assert not await redis.exists(keys.delivery(pending.id))
    assert await redis.zcard(keys.deliveries_due()) == 0
    await emit(redis, "comment.approved", comment_id(9), action="approve")
    await asyncio.sleep(0.2)  # past the retry's backoff
    await settle(lambda: True, hooks)
    await settle(lambda: True, hooks)
    assert len(receiver.requests) == 1


async def test_a_delivery_whose_webhook_vanished_is_dropped_not_sent(redis: Redis, hooks: Webhooks,
                                                                     receiver: Receiver) -> None:
    hook = await register(hooks, receiver.url, ["comment.approved"])
    await emit(redis, "comment.approved", comment_id(10), action="approve")
    assert await hooks.dispatch_once() == 1
    [delivery] = await hooks.deliveries(hook.id)
    # The registration goes away between dispatch and delivery (as a delete racing the dispatcher would).
    await redis.hdel(keys.webhooks(), hook.id)
    assert await hooks.deliver_due_once() == 0
    assert not await redis.exists(keys.delivery(delivery.id))
    assert await redis.zcard(keys.deliveries_due()) == 0
    assert receiver.requests == []


async def test_concurrent_deliverers_never_send_one_attempt_twice(redis: Redis, redis_server: Any,
                                                                  hook_settings: Settings,
                                                                  receiver: Receiver) -> None:
    """Two processes (own clients) deliver 80 events failing once each: every event arrives exactly twice."""
    other_redis = Redis.from_url(redis_server.url)
    one = Webhooks(redis, Scripts(redis), hook_settings)
    two = Webhooks(other_redis, Scripts(other_redis), hook_settings)
    await one.start()
    try:
        receiver.fail_first_attempt = True
        receiver.delay = 0.005
        recorded = {"one": 0, "two": 0}
        one.on_delivery = lambda _event, _outcome: recorded.__setitem__("one", recorded["one"] + 1)
        two.on_delivery = lambda _event, _outcome: recorded.__setitem__("two", recorded["two"] + 1)
        await register(one, receiver.url, ["comment.submitted"])
        for n in range(80):
            await emit(redis, "comment.submitted", comment_id(n, partition=n % keys.PARTITIONS))

        async def work(service: Webhooks) -> None:
            deadline = time.monotonic() + 20
            while len(receiver.requests) < 160 and time.monotonic() < deadline:
                await service.dispatch_once()
                await service.deliver_due_once()
                await asyncio.sleep(0)

        await asyncio.gather(work(one), work(two))
        counts = collections.Counter(receiver.ids())
        assert len(counts) == 80
        assert set(counts.values()) == {2}
        assert recorded["one"] > 0 and recorded["two"] > 0  # both really took part
        await asyncio.sleep(0.3)
        await settle(lambda: True, one, two)
        assert len(receiver.requests) == 160
    finally:
        await one.close()
        await two.close()
        await other_redis.aclose()


async def test_run_survives_redis_being_down(hook_settings: Settings) -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    service = Webhooks(dead, Scripts(dead), hook_settings)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.sleep(1.5)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await dead.aclose()


# -- the admin API and real events, over HTTP --------------------------------------------------------------

async def test_admin_api(client: Client, receiver: Receiver) -> None:
    body = {"url": receiver.url, "events": ["comment.approved"], "secret": SECRET}
    response = await client.post("/v1/webhooks", json=body, headers=ADMIN)
    assert response.status == 201, await response.text()
    created = await response.json()
    assert set(created) == {"id", "url", "events", "created_at"}
    assert SECRET not in await response.text()
    hook_id = created["id"]

    response = await client.post("/v1/webhooks", json={**body, "secret": "short"}, headers=ADMIN)
    assert response.status == 422
    response = await client.post("/v1/webhooks", json={**body, "extra": True}, headers=ADMIN)
    assert response.status == 422

    response = await client.get("/v1/webhooks", headers=ADMIN)
    assert response.status == 200
    assert await response.json() == {"webhooks": [created]}
    response = await client.get(f"/v1/webhooks/{hook_id}/deliveries?limit=10", headers=ADMIN)
    assert (response.status, await response.json()) == (200, {"deliveries": []})
    response = await client.get(f"/v1/webhooks/{hook_id}/deliveries?limit=0", headers=ADMIN)
    assert response.status == 422
    response = await client.get("/v1/webhooks/0123456789abcdef/deliveries", headers=ADMIN)
    assert response.status == 404

    response = await client.post("/v1/tokens", json={"role": "moderator", "name": "mod"}, headers=ADMIN)
    assert response.status == 201, await response.text()
    moderator = {"Authorization": f"Bearer {(await response.json())['token']}"}
    routes = [("POST", "/v1/webhooks"), ("GET", "/v1/webhooks"), ("DELETE", f"/v1/webhooks/{hook_id}"),
              ("GET", f"/v1/webhooks/{hook_id}/deliveries")]
    for method, path in routes:
        payload = body if method == "POST" else None
        response = await client.request(method, path, json=payload, headers=moderator)
        assert response.status == 403, (method, path)
        response = await client.request(method, path)
        assert response.status == 401, (method, path)

    response = await client.delete(f"/v1/webhooks/{hook_id}", headers=ADMIN)
    assert response.status == 204
    response = await client.delete(f"/v1/webhooks/{hook_id}", headers=ADMIN)
    assert response.status == 404
    response = await client.get("/v1/webhooks", headers=ADMIN)
    assert await response.json() == {"webhooks": []}


async def test_submission_and_approval_reach_the_receiver(client: Client,
                                                          receiver: Receiver) -> None:
    """End to end: the app's own background worker delivers the events its Lua scripts write."""
    response = await client.post("/v1/webhooks", headers=ADMIN, json={
        "url": receiver.url, "events": ["comment.submitted", "comment.approved"], "secret": SECRET})
    assert response.status == 201, await response.text()
    hook_id = (await response.json())["id"]

    captcha = await (await client.post("/v1/captchas")).json()
    response = await client.post("/v1/articles/a1/comments", json={
        "name": "Lan", "email": "lan@example.com", "title": "Hi", "body": "Xin chào",
        "captcha_id": captcha["id"], "captcha_answer": "ABCDE"})
    assert response.status == 202, await response.text()
    cid = (await response.json())["id"]
    response = await client.post(f"/v1/moderation/comments/{cid}/decision", json={"action": "approve"},
                                 headers=ADMIN)
    assert response.status == 200, await response.text()

    await wait_for(lambda: len(receiver.requests) == 2)
    payloads = sorted((orjson.loads(r.body) for r in receiver.requests), key=lambda p: str(p["type"]))
    assert [p["type"] for p in payloads] == ["comment.approved", "comment.submitted"]
    assert payloads[0]["data"] == {"comment_id": cid, "article_id": "a1", "action": "approve"}
    assert payloads[1]["data"] == {"comment_id": cid, "article_id": "a1"}
    for request in receiver.requests:
        assert b"lan@example.com" not in request.body
        timestamp = request.headers["Webhook-Timestamp"]
        assert request.headers["Webhook-Signature"] == sign(SECRET, int(timestamp), request.body)

    async def listed() -> list[dict[str, Any]]:
        response = await client.get(f"/v1/webhooks/{hook_id}/deliveries", headers=ADMIN)
        assert response.status == 200
        deliveries: list[dict[str, Any]] = (await response.json())["deliveries"]
        return deliveries

    deadline = time.monotonic() + 5
    while {d["state"] for d in await listed()} != {"delivered"}:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert {d["attempts"] for d in await listed()} == {1}
