"""Webhooks: receivers an admin registers, and the background delivery of comment events to them.

Owns the registrations (`keys.webhooks()`), the deliveries (`keys.delivery(id)`, `keys.deliveries_due()`,
`keys.deliveries_recent()`) and the consumer group `keys.FEED_GROUP` on every outbox stream.

Flow, every step in Redis so that a restart or a crash loses nothing:

1. **Dispatcher** (`dispatch_once`): reads new outbox entries with XREADGROUP (one consumer per process) and
   takes over entries another process read but never acknowledged (XAUTOCLAIM after `STALE_ENTRY_MS`). For
   each entry and each webhook subscribed to its type it creates one delivery and schedules it in the due
   zset, then XACKs. Delivery ids derive from (partition, entry id, webhook id) and creation is guarded by
   EXISTS inside a script, so dispatching an entry twice creates nothing twice.
2. **Deliverer** (`deliver_due_once`): leases due deliveries in one atomic script (moves the score to
   now + timeout + margin and counts the attempt), so concurrent processes never send the same attempt
   twice; POSTs; records the outcome only if the attempt is still the current one. 2xx is delivered; anything
   else (a redirect included: redirects are not followed) is retried after
   `webhook_backoff_base_seconds * 2 ** (attempt - 1)` seconds (at most an hour, ±10% jitter) until
   `webhook_max_attempts`, then failed. Finished deliveries are kept for `DONE_TTL_SECONDS`.

Receivers must be public addresses (`service.egress`, checked at registration and again on every connection,
after DNS); `COMMENTS_WEBHOOK_ALLOWED_NETWORKS` admits deliberate internal ones. A failed attempt is recorded
as a class, never the client library's message (which would tell an admin which internal ports are open):
`timeout`, `refused`, `dns`, `tls`, `blocked_address`, `connection` (reset, unreachable...), `protocol` (not
valid HTTP), `http_<status>`.

Delivery is at least once: a process killed between sending and recording leaves the lease to expire, and
the next attempt goes out with the same `Webhook-Id`. Receivers deduplicate on it. Events of one comment may
arrive out of order (a retried `comment.submitted` after `comment.approved`); `created_at` orders them.

What a receiver gets::

    POST <url>
    Content-Type: application/json
    Webhook-Id: <delivery id, the same on every attempt>
    Webhook-Timestamp: <unix seconds when this attempt was signed>
    Webhook-Signature: v1=<hex HMAC-SHA256(secret, f"{Webhook-Timestamp}.{raw body}")>

    {"id": <delivery id>, "type": "comment.approved", "created_at": "2024-05-01T12:00:00.000Z",
     "data": {"comment_id": ..., "article_id": ..., "action": "approve"}}

To verify: recompute the HMAC over the timestamp header, a dot and the raw body bytes, compare in constant
time, and refuse timestamps more than a few minutes old (replays). This is Stripe's scheme (Standard Webhooks
signs `id.timestamp.body` and encodes base64 instead). The payload carries ids only: never the commenter's
email or IP.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import hmac
import logging
import os
import random
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, TypeAlias, get_args
from urllib.parse import urlsplit

import aiohttp
import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StrictStr
from pydantic_core import PydanticCustomError
from redis.exceptions import RedisError, ResponseError

from service import egress, keys
from service.connections import RedisClient
from service.errors import Conflict, FieldError, NotFound, ValidationFailed
from service.models import iso
from service.scripts import Arg, Scripts
from service.settings import Settings

log = logging.getLogger(__name__)

EventType = Literal["comment.submitted", "comment.approved", "comment.rejected", "comment.retracted"]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)

#: Bounds the fan-out of one event (one script call writes a delivery per subscribed webhook).
MAX_WEBHOOKS: Final = 100
WEBHOOK_ID_RE: Final = re.compile(r"\A[0-9a-f]{16}\Z")  # \Z: `$` would accept a trailing newline
#: Finished (delivered or failed) deliveries stay readable this long.
DONE_TTL_SECONDS: Final = 7 * 86_400
#: The admin listing keeps about this many of the newest deliveries.
RECENT_KEEP: Final = 10_000
MAX_BACKOFF_SECONDS: Final = 3600.0
#: An outbox entry read but not acknowledged for this long belongs to a process that died mid-dispatch.
STALE_ENTRY_MS: Final = 30_000
#: How often a dispatcher looks for such entries (XAUTOCLAIM on every partition).
RECLAIM_EVERY_SECONDS: Final = 5.0
#: Every process start adds a consumer name to each group; names idle this long with nothing pending are removed.
CONSUMER_IDLE_MS: Final = 86_400_000
PRUNE_EVERY_SECONDS: Final = 600.0
#: A lease outlives the HTTP timeout by this much, so a slow but finished attempt is still recorded.
LEASE_MARGIN_SECONDS: Final = 30.0
READ_BATCH: Final = 100
LEASE_BATCH: Final = 32
MAX_IN_FLIGHT: Final = 64
IDLE_SECONDS: Final = 0.2
ERROR_PAUSE_SECONDS: Final = 1.0
USER_AGENT: Final = "comments-service-webhooks/1"


# -- scripts (to move to service/lua/ and `Scripts`; kept here while that module is not mine) --------------







# -- models ------------------------------------------------------------------------------------------------

def _receiver_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("invalid_url", "must be an absolute http or https URL")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise PydanticCustomError("invalid_url", "must be an absolute http or https URL")
    return value


def _unique_events(value: list[EventType]) -> list[EventType]:
    return sorted(set(value), key=EVENT_TYPES.index)


class WebhookRegistration(BaseModel):
    """What an admin sends: `POST /v1/webhooks`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: Annotated[StrictStr, Field(min_length=1, max_length=2000, description=(
        "The receiver: an absolute http or https URL, POSTed one JSON event per delivery.")),
        AfterValidator(_receiver_url)]
    events: Annotated[list[EventType], Field(min_length=1, max_length=16, description=(
        "The event types to send to it (repeats are dropped).")), AfterValidator(_unique_events)]
    #: Signs every delivery; stored, never shown again.
    secret: Annotated[SecretStr, Field(min_length=16, max_length=200, strict=True, description=(
        "Signs every delivery: `Webhook-Signature: v1=<hex HMAC-SHA256(secret, \"{Webhook-Timestamp}.{body}\")>`. "
        "Stored, never shown again."))]


class Webhook(BaseModel):
    """A registration as the admin API shows it: without its secret."""

    id: str = Field(description="The webhook's id, for deleting it and listing its deliveries.")
    url: str = Field(description="Where deliveries are POSTed.")
    events: list[EventType] = Field(description="The event types it receives.")
    created_at: str = Field(description="When it was registered (ISO 8601, UTC).")


class _StoredWebhook(BaseModel):
    """A registration as `keys.webhooks()` holds it (JSON per webhook id)."""

    id: str
    url: str
    events: list[EventType]
    #: Kept out of reprs, so a logged record does not leak it.
    secret: str = Field(repr=False)
    created: int

    def public(self) -> Webhook:
        return Webhook(id=self.id, url=self.url, events=self.events, created_at=iso(self.created))


class DeliveryState(StrEnum):
    #: Created, not attempted yet.
    PENDING = "pending"
    #: At least one attempt failed; another is scheduled at `next_attempt_at`.
    RETRYING = "retrying"
    #: The receiver answered 2xx. Final.
    DELIVERED = "delivered"
    #: `webhook_max_attempts` attempts failed. Final.
    FAILED = "failed"


class Delivery(BaseModel):
    id: str = Field(description="The delivery's id, sent as `Webhook-Id` on every attempt: receivers drop "
                                 "repeats by it.")
    webhook_id: str = Field(description="The webhook it is for.")
    type: EventType = Field(description="The event delivered.")
    state: DeliveryState = Field(description="pending (not attempted yet), retrying (an attempt failed, another "
                                             "is scheduled), delivered (the receiver answered 2xx) or failed "
                                             "(every attempt failed; final).")
    #: Attempts started, including one in flight.
    attempts: int = Field(description="Attempts started, including one in flight.")
    last_status: int | None = Field(description="The HTTP status of the last attempt; null when it got no answer "
                                                "or none was made.")
    last_error: str | None = Field(description="Why the last attempt failed, as a class: timeout, refused, dns, "
                                               "tls, blocked_address (an internal destination), connection, "
                                               "protocol or http_<status>; null when it did not.")
    next_attempt_at: str | None = Field(description="When the next attempt is due (ISO 8601, UTC); null when "
                                                    "none is scheduled.")
    created_at: str = Field(description="When the event happened (ISO 8601, UTC); orders events that arrive out "
                                        "of order.")
    updated_at: str = Field(description="When this delivery last changed (ISO 8601, UTC).")
    delivered_at: str | None = Field(description="When the receiver accepted it (ISO 8601, UTC); null until then.")


Outcome = Literal["delivered", "retrying", "failed"]
#: Outbox entries of one stream: (entry id, fields, or None for an entry trimmed away).
_Entries: TypeAlias = list[tuple[str, dict[str, str] | None]]


@dataclass(frozen=True, slots=True)
class _Lease:
    delivery_id: str
    attempt: int
    webhook: _StoredWebhook
    type: str
    body: bytes


# -- helpers -----------------------------------------------------------------------------------------------

def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now_ms() -> int:
    return int(time.time() * 1000)


def delivery_id(partition: int, entry_id: str, webhook_id: str) -> str:
    """Deterministic, so dispatching one entry twice names the same delivery; prefixed by its webhook."""
    digest = hashlib.sha256(f"{partition}:{entry_id}:{webhook_id}".encode()).hexdigest()[:24]
    return f"{webhook_id}-{digest}"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Webhook-Signature` header value for one attempt."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def backoff_seconds(base: float, attempt: int) -> float:
    """Delay after failed attempt `attempt` (1-based): doubling, capped at an hour, ±10% so retries spread."""
    delay = min(base * 2.0 ** min(attempt - 1, 60), MAX_BACKOFF_SECONDS)
    return delay * random.uniform(0.9, 1.1)


def event_payload(delivery: str, fields: dict[str, str]) -> bytes:
    data = {"comment_id": fields["id"], "article_id": fields["article"]}
    if fields.get("action"):
        data["action"] = fields["action"]
    return orjson.dumps({"id": delivery, "type": fields["type"], "created_at": iso(int(fields["at"])),
                         "data": data})


def _is_event(fields: dict[str, str]) -> bool:
    return (fields.get("type") in EVENT_TYPES and bool(fields.get("id")) and bool(fields.get("article"))
            and fields.get("at", "").isdigit())


def _stream_entries(result: Any) -> _Entries:
    """Entries of an XREADGROUP / XAUTOCLAIM reply of one stream, whatever response shape the client uses."""
    if not result:
        return []
    if isinstance(result, dict):
        streams = list(result.values())
    elif isinstance(result[0], (bytes, str)):  # XAUTOCLAIM: [next start, entries, deleted ids]
        streams = [result[1]]
    else:
        streams = [item[1] for item in result]
    out: _Entries = []
    for entries in streams:
        if entries and isinstance(entries[0], list) and entries[0] and isinstance(entries[0][0], tuple):
            entries = entries[0]  # RESP3 legacy shape wraps the list once more
        for entry_id, fields in entries or []:
            if entry_id is None:
                continue
            decoded = None if fields is None else {_str(k): _str(v) for k, v in fields.items()}
            out.append((_str(entry_id), decoded))
    return out


def new_consumer_name() -> str:
    """Unique per process, so each process's unacknowledged entries can be told apart and taken over."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


# -- the service -------------------------------------------------------------------------------------------

def _stop_if_cancelled() -> None:
    """redis-py can swallow a cancellation that lands while a command is in flight; the task still counts it
    (`cancelling()`), so a loop that checks each round stops instead of running on forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Webhooks:
    def __init__(self, redis: RedisClient, scripts: Scripts, settings: Settings) -> None:
        self._redis = redis
        # Kept for when the scripts above move into `Scripts`.
        self._scripts = scripts
        self._settings = settings
        self.consumer = new_consumer_name()
        #: Called once per recorded attempt with (event type, outcome); e.g. Prometheus counters.
        self.on_delivery: Callable[[str, str], None] | None = None
        #: Tests lower these to take over entries of a "dead" process at once.
        self.stale_entry_ms = STALE_ENTRY_MS
        self.reclaim_every_seconds = RECLAIM_EVERY_SECONDS
        self._last_reclaim = float("-inf")
        self._last_prune = time.monotonic()
        self._session: aiohttp.ClientSession | None = None
        #: How receivers' names are resolved (aiohttp's default); tests point names at chosen addresses.
        self.resolver: aiohttp.abc.AbstractResolver | None = None

    @property
    def _lease_ms(self) -> int:
        return int((self._settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS) * 1000)

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the consumer groups at `$`: events from now on are delivered, older ones never."""
        for partition in range(keys.PARTITIONS):
            await self._create_group(keys.outbox(partition))

    async def _create_group(self, stream: str) -> None:
        try:
            await self._redis.xgroup_create(stream, keys.FEED_GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self) -> None:
        """Dispatch and deliver until cancelled. Redis or receiver trouble is logged and waited out."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._forever("dispatcher", self.dispatch_once))
                group.create_task(self._deliver_forever())
        finally:
            await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _forever(self, name: str, step: Callable[[], Awaitable[int]]) -> None:
        while True:
            _stop_if_cancelled()
            try:
                done = await step()
            except RedisError as exc:  # Redis away or failing over: say so once a round, without a traceback
                log.warning("webhook %s: Redis unavailable (%s); retrying in %.0f s", name, exc, ERROR_PAUSE_SECONDS)
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
                continue
            except Exception:
                log.exception("webhook %s failed; retrying in %.0f s", name, ERROR_PAUSE_SECONDS)
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
                continue
            if not done:
                await asyncio.sleep(IDLE_SECONDS)

    async def _deliver_forever(self) -> None:
        """Keep up to `MAX_IN_FLIGHT` attempts going, so one slow receiver does not hold up the others."""
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                _stop_if_cancelled()
                free = MAX_IN_FLIGHT - len(in_flight)
                leases: builtins.list[_Lease] = []
                if free > 0:
                    try:
                        leases = await self._lease(min(free, LEASE_BATCH))
                    except RedisError as exc:
                        log.warning("leasing webhook deliveries: Redis unavailable (%s); retrying in %.0f s",
                                    exc, ERROR_PAUSE_SECONDS)
                        await asyncio.sleep(ERROR_PAUSE_SECONDS)
                        continue
                    except Exception:
                        log.exception("leasing webhook deliveries failed; retrying in %.0f s",
                                      ERROR_PAUSE_SECONDS)
                        await asyncio.sleep(ERROR_PAUSE_SECONDS)
                        continue
                for lease in leases:
                    task = asyncio.create_task(self._attempt(lease))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if not leases:
                    await asyncio.sleep(IDLE_SECONDS)
        finally:
            # Interrupted attempts are retried once their lease runs out (same Webhook-Id).
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    # -- registrations --------------------------------------------------------------------------------------

    async def register(self, registration: WebhookRegistration) -> Webhook:
        try:
            await egress.check_url(registration.url, self._settings.webhook_allowed_networks)
        except egress.DestinationNotAllowed as exc:
            # No detail that echoes the resolved addresses: the field code says what is wrong.
            raise ValidationFailed(fields=[FieldError("url", "destination_not_allowed")]) from exc
        if await self._redis.hlen(keys.webhooks()) >= MAX_WEBHOOKS:
            raise Conflict("at most {max} webhooks", params={"max": MAX_WEBHOOKS})
        stored = _StoredWebhook(id=secrets.token_hex(8), url=registration.url, events=registration.events,
                                secret=registration.secret.get_secret_value(), created=_now_ms())
        await self._redis.hset(keys.webhooks(), stored.id, stored.model_dump_json())
        log.info("webhook %s registered for %s", stored.id, ",".join(stored.events))
        return stored.public()

    async def _stored(self) -> builtins.list[_StoredWebhook]:
        raw: dict[Any, Any] = await self._redis.hgetall(keys.webhooks())
        return sorted((_StoredWebhook.model_validate_json(value) for value in raw.values()),
                      key=lambda hook: (hook.created, hook.id))

    async def list(self) -> builtins.list[Webhook]:
        return [hook.public() for hook in await self._stored()]

    async def delete(self, webhook_id: str) -> None:
        """Remove the registration and every delivery of it, pending or done; attempts in flight finish."""
        if not WEBHOOK_ID_RE.match(webhook_id) or not await self._redis.hdel(keys.webhooks(), webhook_id):
            raise NotFound("no such webhook")
        # Delivery ids start with their webhook's id, so its deliveries are found without reading records.
        pattern = f"{webhook_id}-*"
        ids: set[str] = set()
        for zset in (keys.deliveries_due(), keys.deliveries_recent()):
            async for member, _score in self._redis.zscan_iter(zset, match=pattern, count=500):
                ids.add(_str(member))
        batch = sorted(ids)
        for start in range(0, len(batch), 500):
            chunk = batch[start:start + 500]
            pipe = self._redis.pipeline(transaction=False)
            pipe.zrem(keys.deliveries_due(), *chunk)
            pipe.zrem(keys.deliveries_recent(), *chunk)
            pipe.delete(*(keys.delivery(item) for item in chunk))
            await pipe.execute()
        log.info("webhook %s deleted with %d deliveries", webhook_id, len(ids))

    async def deliveries(self, webhook_id: str, limit: int = 50) -> builtins.list[Delivery]:
        """The newest deliveries of one webhook (most recently changed first)."""
        if not WEBHOOK_ID_RE.match(webhook_id) or not await self._redis.hexists(keys.webhooks(), webhook_id):
            raise NotFound("no such webhook")
        prefix = f"{webhook_id}-"
        found: builtins.list[str] = []
        chunk, start = 1000, 0
        # The recent zset is shared by all webhooks and holds at most ~RECENT_KEEP ids: scanning it is cheap
        # enough for an admin listing (a per-webhook index would avoid it; see the report).
        while len(found) < limit:
            members = await self._redis.zrevrange(keys.deliveries_recent(), start, start + chunk - 1)
            if not members:
                break
            found.extend(m for m in map(_str, members) if m.startswith(prefix))
            start += chunk
        found = found[:limit]
        pipe = self._redis.pipeline(transaction=False)
        for item in found:
            pipe.hgetall(keys.delivery(item))
        records: builtins.list[dict[Any, Any]] = await pipe.execute() if found else []
        out: builtins.list[Delivery] = []
        for item, record in zip(found, records, strict=True):
            if record:  # a finished record may have expired before the recent zset was trimmed
                out.append(_delivery_view(item, {_str(k): _str(v) for k, v in record.items()}))
        return out

    # -- dispatcher -----------------------------------------------------------------------------------------

    async def dispatch_once(self) -> int:
        """Turn new (and abandoned) outbox entries into deliveries; returns how many entries were handled."""
        reclaim = time.monotonic() - self._last_reclaim >= self.reclaim_every_seconds
        pipe = self._redis.pipeline(transaction=False)
        for partition in range(keys.PARTITIONS):
            stream = keys.outbox(partition)
            if reclaim:
                pipe.xautoclaim(stream, keys.FEED_GROUP, self.consumer, self.stale_entry_ms, "0-0",
                                count=READ_BATCH)
            # No BLOCK: the client's socket timeout is short; the idle loop polls instead.
            pipe.xreadgroup(keys.FEED_GROUP, self.consumer, {stream: ">"}, count=READ_BATCH)
        results: builtins.list[Any] = await pipe.execute(raise_on_error=False)
        if reclaim:
            self._last_reclaim = time.monotonic()
        if time.monotonic() - self._last_prune >= PRUNE_EVERY_SECONDS:
            self._last_prune = time.monotonic()
            await self.prune_consumers()
        per_partition = 2 if reclaim else 1
        hooks: builtins.list[_StoredWebhook] | None = None
        handled = 0
        for partition in range(keys.PARTITIONS):
            entries: _Entries = []
            for result in results[partition * per_partition:(partition + 1) * per_partition]:
                if isinstance(result, ResponseError) and "NOGROUP" in str(result):
                    # The stream (and its group) vanished, e.g. a flushed or failed-over Redis.
                    log.warning("outbox %d had no consumer group; creating it at $", partition)
                    await self._create_group(keys.outbox(partition))
                elif isinstance(result, Exception):
                    raise result
                else:
                    entries.extend(_stream_entries(result))
            if not entries:
                continue
            if hooks is None:
                hooks = await self._stored()
            await self._dispatch(partition, entries, hooks)
            handled += len(entries)
        return handled

    async def prune_consumers(self, idle_ms: int = CONSUMER_IDLE_MS) -> int:
        """Forget consumers of processes long gone. Only those with nothing pending: deleting a consumer drops
        its pending entries, which then could never be reclaimed. A live one is idle for at most a poll, and
        would be recreated by its next read anyway."""
        removed = 0
        for partition in range(keys.PARTITIONS):
            stream = keys.outbox(partition)
            try:
                consumers: list[dict[str, Any]] = await self._redis.xinfo_consumers(stream, keys.FEED_GROUP)
            except ResponseError:  # no stream or no group yet
                continue
            for consumer in consumers:
                name = _str(consumer["name"])
                if name != self.consumer and not consumer["pending"] and consumer["idle"] >= idle_ms:
                    await self._redis.xgroup_delconsumer(stream, keys.FEED_GROUP, name)
                    removed += 1
        return removed

    async def _dispatch(self, partition: int, entries: _Entries,
                        hooks: builtins.list[_StoredWebhook]) -> None:
        seen: set[str] = set()
        for entry_id, fields in entries:
            if entry_id in seen:  # reclaimed and read in the same round
                continue
            seen.add(entry_id)
            if fields is None:  # trimmed from the stream before anyone read it
                continue
            if not _is_event(fields):
                log.error("outbox %d entry %s is not an event we know; skipped: %r", partition, entry_id,
                          fields)
                continue
            event_type = fields["type"]
            subscribed = [hook for hook in hooks if event_type in hook.events]
            if not subscribed:
                continue
            deliveries = [(delivery_id(partition, entry_id, hook.id), hook) for hook in subscribed]
            args: builtins.list[Arg] = [_now_ms(), RECENT_KEEP]
            for item, hook in deliveries:
                args += [item, hook.id, event_type, event_payload(item, fields)]
            await self._scripts.run(
                "webhook_enqueue", [keys.webhooks(), keys.deliveries_due(), keys.deliveries_recent(),
                            *(keys.delivery(item) for item, _ in deliveries)],
                           args)
        # Acknowledged only now: a crash before this leaves the entries to be reclaimed and dispatched again.
        await self._redis.xack(keys.outbox(partition), keys.FEED_GROUP, *(entry for entry, _ in entries))

    # -- deliverer ------------------------------------------------------------------------------------------

    async def deliver_due_once(self) -> int:
        """Attempt every delivery due now (up to a batch), concurrently; returns how many were attempted."""
        leases = await self._lease(LEASE_BATCH)
        await asyncio.gather(*(self._attempt(lease) for lease in leases))
        return len(leases)

    async def _lease(self, count: int) -> builtins.list[_Lease]:
        now = _now_ms()
        # Candidates are read outside the script (whose keys must all be known up front); the script leases
        # only those still due. Sampling from a wider window makes concurrent deliverers collide less.
        candidates = [_str(m) for m in await self._redis.zrangebyscore(
            keys.deliveries_due(), "-inf", now, start=0, num=count * 4)]
        if not candidates:
            return []
        if len(candidates) > count:
            candidates = random.sample(candidates, count)
        result: builtins.list[Any] = await self._scripts.run(
            "webhook_lease",
            [keys.deliveries_due(), keys.webhooks(), keys.deliveries_recent(),
             *(keys.delivery(item) for item in candidates)],
            [now, self._lease_ms, self._settings.webhook_max_attempts, DONE_TTL_SECONDS, *candidates])
        leases = []
        for i in range(0, len(result), 5):
            item, attempt, hook, event_type, body = result[i:i + 5]
            leases.append(_Lease(_str(item), int(attempt), _StoredWebhook.model_validate_json(hook),
                                 _str(event_type), body if isinstance(body, bytes) else body.encode()))
        return leases

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout_seconds),
                headers={"User-Agent": USER_AGENT},
                # Receivers are configured by URL only; proxies from the environment would surprise.
                trust_env=False,
                # Every connection attempt, to an IP literal or to each address DNS gave, is checked here.
                connector=aiohttp.TCPConnector(
                    socket_factory=egress.guarded_socket(self._settings.webhook_allowed_networks),
                    resolver=self.resolver),
            )
        return self._session

    async def _attempt(self, lease: _Lease) -> None:
        try:
            status, error = await self._post(lease)
            await self._record(lease, status, error)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the delivery is attempted again.
            log.exception("webhook delivery %s attempt %d could not be recorded", lease.delivery_id,
                          lease.attempt)

    async def _post(self, lease: _Lease) -> tuple[int | None, str]:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Webhook-Id": lease.delivery_id,
            "Webhook-Timestamp": str(timestamp),
            "Webhook-Signature": sign(lease.webhook.secret, timestamp, lease.body),
        }
        try:
            async with self._client().post(lease.webhook.url, data=lease.body, headers=headers,
                                           allow_redirects=False) as response:
                return response.status, ""
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            return None, delivery_error(exc)

    async def _record(self, lease: _Lease, status: int | None, error: str) -> None:
        now = _now_ms()
        next_ms = 0
        outcome: Outcome
        if status is not None and 200 <= status < 300:
            outcome = "delivered"
        elif lease.attempt >= self._settings.webhook_max_attempts:
            outcome = "failed"
        else:
            outcome = "retrying"
            delay = backoff_seconds(self._settings.webhook_backoff_base_seconds, lease.attempt)
            next_ms = now + int(delay * 1000)
        if status is not None and not error and outcome != "delivered":
            error = f"http_{status}"
        recorded = await self._scripts.run(
            "webhook_record",
            [keys.delivery(lease.delivery_id), keys.deliveries_due(), keys.deliveries_recent()],
            [lease.delivery_id, lease.attempt, outcome, next_ms, "" if status is None else status, error, now,
             DONE_TTL_SECONDS, RECENT_KEEP])
        if not recorded:
            log.info("webhook delivery %s attempt %d was superseded", lease.delivery_id, lease.attempt)
            return
        if outcome != "delivered":
            log.warning("webhook %s delivery %s attempt %d: %s -> %s", lease.webhook.id, lease.delivery_id,
                        lease.attempt, error, outcome)
        if self.on_delivery is not None:
            self.on_delivery(lease.type, outcome)


def delivery_error(exc: BaseException) -> str:
    """The class of a failed attempt (see the module docstring), from the exception aiohttp raised."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or getattr(current, "os_error", None)
        if current in chain:
            break
    if any(isinstance(item, egress.BlockedAddress) for item in chain):
        return "blocked_address"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns"
    if isinstance(exc, (aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch)):
        return "tls"
    if any(isinstance(item, ConnectionRefusedError) for item in chain):
        return "refused"
    if isinstance(exc, (aiohttp.ClientResponseError, aiohttp.ClientPayloadError, aiohttp.InvalidURL,
                        ValueError)):
        return "protocol"
    return "connection"


def _delivery_view(item: str, record: dict[str, str]) -> Delivery:
    next_ms = record.get("next")
    status = record.get("status")
    delivered = record.get("delivered")
    return Delivery(
        id=item,
        webhook_id=record["webhook"],
        type=record["type"],
        state=DeliveryState(record["state"]),
        attempts=int(record["attempts"]),
        last_status=int(status) if status else None,
        last_error=record.get("error") or None,
        next_attempt_at=iso(int(next_ms)) if next_ms else None,
        created_at=iso(int(record["created"])),
        updated_at=iso(int(record["updated"])),
        delivered_at=iso(int(delivered)) if delivered else None,
    )
