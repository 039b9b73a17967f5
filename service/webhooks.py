"""Webhooks: receivers an admin registers, and the background delivery of comment events to them.

Owns the registrations (`keys.webhooks()`) and the deliveries (`keys.delivery(id)`, `keys.deliveries_due()`,
`keys.deliveries_recent()`). The machinery is shared with every other background consumer of the outbox:

1. **Dispatcher**: an `outbox.OutboxConsumer` in the group `webhooks` (at least once: entries of a dead process
   are taken over). For each entry and each webhook subscribed to its type it creates one delivery, a job of
   a `jobs.JobQueue` owned by the webhook. Delivery ids derive from (partition, entry id, webhook id) and the
   queue creates a job once, so dispatching an entry twice creates nothing twice.
2. **Deliverer**: the queue leases due deliveries (concurrent processes never send the same attempt twice),
   `_post` POSTs, and the queue records the outcome. 2xx is delivered; anything else (a redirect included:
   redirects are not followed) is retried after `webhook_backoff_base_seconds * 2 ** (attempt - 1)` seconds
   (at most an hour, ±10% jitter) until `webhook_max_attempts`, then failed. Finished deliveries are kept for
   `DONE_TTL_SECONDS`.

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
import re
import secrets
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, get_args
from urllib.parse import urlsplit

import aiohttp
import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StrictStr
from pydantic_core import PydanticCustomError

from service import egress, keys
from service.clock import now_ms
from service.connections import RedisClient
from service.errors import Conflict, FieldError, NotFound, ValidationFailed
from service.jobs import JobQueue, Lease, NewJob, Outcome, QueueKeys, Result
from service.metrics import Metrics
from service.models import iso
from service.outbox import Entry, OutboxConsumer
from service.scripts import Scripts, as_text
from service.settings import Settings

log = logging.getLogger(__name__)

#: comment.erased and comment.anonymised: a reader's data was erased (`service.privacy`); remove or replace copies.
EventType = Literal["comment.submitted", "comment.approved", "comment.rejected", "comment.retracted",
                    "comment.erased", "comment.anonymised"]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)

#: The consumer's name, and its consumer group on the outbox streams (kept: deployed data has this group).
CONSUMER: Final = "webhooks"
#: Bounds the fan-out of one event (one script call writes a delivery per subscribed webhook).
MAX_WEBHOOKS: Final = 100
WEBHOOK_ID_RE: Final = re.compile(r"\A[0-9a-f]{16}\Z")  # \Z: `$` would accept a trailing newline
#: Finished (delivered or failed) deliveries stay readable this long.
DONE_TTL_SECONDS: Final = 7 * 86_400
#: The admin listing keeps about this many of the newest deliveries.
RECENT_KEEP: Final = 10_000
#: A lease outlives the HTTP timeout by this much, so a slow but finished attempt is still recorded.
LEASE_MARGIN_SECONDS: Final = 30.0
USER_AGENT: Final = "comments-service-webhooks/1"
QUEUE_KEYS: Final = QueueKeys(owners=keys.webhooks(), due=keys.deliveries_due(), recent=keys.deliveries_recent(),
                              job=keys.delivery)


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


class WebhookListView(BaseModel):
    webhooks: list[Webhook] = Field(description="Every registered receiver.")


class DeliveryListView(BaseModel):
    deliveries: list[Delivery] = Field(description="The webhook's recent deliveries, newest change first.")


# -- helpers -----------------------------------------------------------------------------------------------

def delivery_id(partition: int, entry_id: str, webhook_id: str) -> str:
    """Deterministic, so dispatching one entry twice names the same delivery; prefixed by its webhook."""
    digest = hashlib.sha256(f"{partition}:{entry_id}:{webhook_id}".encode()).hexdigest()[:24]
    return f"{webhook_id}-{digest}"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Webhook-Signature` header value for one attempt."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={mac}"


def event_payload(delivery: str, fields: dict[str, str]) -> bytes:
    data = {"comment_id": fields["id"], "article_id": fields["article"]}
    if fields.get("action"):
        data["action"] = fields["action"]
    return orjson.dumps({"id": delivery, "type": fields["type"], "created_at": iso(int(fields["at"])),
                         "data": data})


def _is_event(fields: dict[str, str]) -> bool:
    return (fields.get("type") in EVENT_TYPES and bool(fields.get("id")) and bool(fields.get("article"))
            and fields.get("at", "").isdigit())




# -- the service -------------------------------------------------------------------------------------------

class Webhooks:
    def __init__(self, redis: RedisClient, scripts: Scripts, settings: Settings, *,
                 metrics: Metrics | None = None) -> None:
        self._redis = redis
        self._settings = settings
        self._outbox = OutboxConsumer(redis, CONSUMER, self._handle, metrics=metrics)
        self._queue = JobQueue(
            scripts, QUEUE_KEYS, self._post, name=CONSUMER, max_attempts=settings.webhook_max_attempts,
            backoff_base_seconds=settings.webhook_backoff_base_seconds,
            lease_seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS, done_ttl_seconds=DONE_TTL_SECONDS,
            recent_keep=RECENT_KEEP, metrics=metrics)
        self._session: aiohttp.ClientSession | None = None
        #: How receivers' names are resolved (aiohttp's default); tests point names at chosen addresses.
        self.resolver: aiohttp.abc.AbstractResolver | None = None

    @property
    def on_delivery(self) -> Callable[[str, Outcome], None] | None:
        """Called once per recorded attempt with (event type, outcome); e.g. Prometheus counters."""
        return self._queue.on_outcome

    @on_delivery.setter
    def on_delivery(self, callback: Callable[[str, Outcome], None] | None) -> None:
        self._queue.on_outcome = callback

    @property
    def stale_entry_ms(self) -> int:
        return self._outbox.stale_entry_ms

    @stale_entry_ms.setter
    def stale_entry_ms(self, value: int) -> None:
        self._outbox.stale_entry_ms = value

    @property
    def reclaim_every_seconds(self) -> float:
        return self._outbox.reclaim_every_seconds

    @reclaim_every_seconds.setter
    def reclaim_every_seconds(self, value: float) -> None:
        self._outbox.reclaim_every_seconds = value

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the consumer groups at `$`: events from now on are delivered, older ones never."""
        await self._outbox.start()

    async def run(self) -> None:
        """Dispatch and deliver until cancelled. Redis or receiver trouble is logged and waited out."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._outbox.run())
                group.create_task(self._queue.run())
        finally:
            await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def dispatch_once(self) -> int:
        """Turn new (and abandoned) outbox entries into deliveries; returns how many entries were read."""
        return await self._outbox.consume_once()

    async def deliver_due_once(self) -> int:
        """Attempt every delivery due now (up to a batch), concurrently; returns how many were attempted."""
        return await self._queue.work_once()

    async def prune_consumers(self, idle_ms: int | None = None) -> int:
        if idle_ms is None:
            return await self._outbox.prune_consumers()
        return await self._outbox.prune_consumers(idle_ms)

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
                                secret=registration.secret.get_secret_value(), created=now_ms())
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
                ids.add(as_text(member))
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
        # enough for an admin listing (a per-webhook index would avoid it).
        while len(found) < limit:
            members: builtins.list[Any] = await self._redis.zrevrange(keys.deliveries_recent(), start,
                                                                      start + chunk - 1)
            if not members:
                break
            found.extend(m for m in map(as_text, members) if m.startswith(prefix))
            start += chunk
        found = found[:limit]
        pipe = self._redis.pipeline(transaction=False)
        for item in found:
            pipe.hgetall(keys.delivery(item))
        records: builtins.list[dict[Any, Any]] = await pipe.execute() if found else []
        out: builtins.list[Delivery] = []
        for item, record in zip(found, records, strict=True):
            if record:  # a finished record may have expired before the recent zset was trimmed
                out.append(_delivery_view(item, {as_text(k): as_text(v) for k, v in record.items()}))
        return out

    # -- dispatcher: outbox entries become deliveries ----------------------------------------------------------

    async def _handle(self, partition: int, entries: builtins.list[Entry]) -> None:
        await self._dispatch(partition, entries, await self._stored())

    async def _dispatch(self, partition: int, entries: builtins.list[Entry],
                        hooks: builtins.list[_StoredWebhook]) -> None:
        for entry_id, fields in entries:
            if not _is_event(fields):
                log.error("outbox %d entry %s is not an event we know; skipped: %r", partition, entry_id, fields)
                continue
            event_type = fields["type"]
            jobs = [NewJob(item, hook.id, event_type, event_payload(item, fields))
                    for hook in hooks if event_type in hook.events
                    for item in [delivery_id(partition, entry_id, hook.id)]]
            await self._queue.enqueue(jobs)

    # -- deliverer ------------------------------------------------------------------------------------------

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

    async def _post(self, lease: Lease) -> Result:
        """One attempt at a delivery (a job of the queue, owned by its webhook)."""
        hook = _StoredWebhook.model_validate_json(lease.owner)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Webhook-Id": lease.id,
            "Webhook-Timestamp": str(timestamp),
            "Webhook-Signature": sign(hook.secret, timestamp, lease.body),
        }
        try:
            async with self._client().post(hook.url, data=lease.body, headers=headers,
                                           allow_redirects=False) as response:
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            return Result(ok=False, error=delivery_error(exc))
        if 200 <= status < 300:
            return Result(ok=True, status=status)
        return Result(ok=False, status=status, error=f"http_{status}")


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
        # Deliveries created before the queue was generic name their webhook in `webhook`.
        webhook_id=record.get("owner") or record["webhook"],
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
