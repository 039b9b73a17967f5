"""The moderation queue: listing, claims with leases, decisions (single and bulk), retraction, history, stats,
and opening or closing an article.

Every state change goes through `lua/decide.lua`, the one place that knows the allowed transitions
(`State`). This module turns its answers into domain results and errors.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import heapq
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, Literal, NoReturn

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator
from redis.exceptions import ResponseError

from service import keys, text
from service.clients import email_hash
from service.errors import AlreadyDecided, LeasedToOther, NotApproved, NotFound, StaleVersion, ValidationFailed
from service.models import ARTICLE_ID_PATTERN, iso
from service.scripts import Arg, Scripts, as_text, scored
from service.submissions import OUTBOX_MAXLEN
from service.tokens import Principal

STATS_TTL_SECONDS: Final = 8 * 86400
REPUTATION_TTL_SECONDS: Final = 90 * 86400
BULK_MAX: Final = 1000
QUEUE_CURSOR_PATTERN: Final = r"^[0-9]{1,15}:[0-9a-z]{26}$"
QUEUE_CURSOR_RE: Final = re.compile(QUEUE_CURSOR_PATTERN)
ARTICLE_CACHE_ENTRIES: Final = 100_000
#: Times a claim plans again when concurrent claims took what it planned to lease.
CLAIM_ROUNDS: Final = 4


class State(enum.StrEnum):
    PENDING = "pending"  #: waiting for a moderator; the only state a reader's comment starts in
    APPROVED = "approved"  #: public: in the article's list and the approvals feed
    REJECTED = "rejected"  #: never shown
    SPAM = "spam"  #: never shown; teaches the sender's reputation
    RETRACTED = "retracted"  #: was approved, then unpublished; the feed carries a retraction


Action = Literal["approve", "reject", "spam"]


class ModeratorComment(BaseModel):
    """All a moderator needs to decide, including what the public never sees."""

    id: str
    article_id: str
    parent_id: str | None
    name: str
    email: str
    title: str
    body: str
    created_at: str
    ip_hash: str
    risk: list[str]
    state: State
    version: int
    claimed_by: str | None = None
    lease_expires_at: str | None = None
    decided_at: str | None = None
    decided_by: str | None = None


class HistoryEntry(BaseModel):
    at: str
    by: str
    action: str
    from_state: str | None
    to_state: str
    reason: str
    version: int


class CommentWithHistory(ModeratorComment):
    history: list[HistoryEntry]


class QueuePage(BaseModel):
    comments: list[ModeratorComment]
    next_cursor: str | None


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    limit: int = Field(default=10, ge=1, le=100)
    lease_seconds: int = Field(default=300, ge=5, le=86400)
    article_id: str | None = Field(default=None, pattern=ARTICLE_ID_PATTERN)


class ClaimResult(BaseModel):
    comments: list[ModeratorComment]
    lease_expires_at: str


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    action: Action
    reason: str = Field(default="", max_length=500)
    version: int | None = Field(default=None, ge=1)


class RetractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    reason: str = Field(default="", max_length=500)


class BulkFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    article_id: str | None = Field(default=None, pattern=ARTICLE_ID_PATTERN)
    ip_hash: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    risk: str | None = Field(default=None, max_length=64)
    text_contains: str | None = Field(default=None, min_length=1, max_length=200)


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    action: Action
    reason: str = Field(default="", max_length=500)
    ids: list[str] | None = Field(default=None, min_length=1, max_length=BULK_MAX)
    filter: BulkFilter | None = None

    @model_validator(mode="after")
    def _one_selector(self) -> BulkRequest:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter")
        return self


class BulkOutcome(BaseModel):
    id: str
    status: int
    code: str | None = None
    state: State | None = None


class BulkResult(BaseModel):
    matched: int
    outcomes: list[BulkOutcome]


class Stats(BaseModel):
    queue_depth: int
    oldest_pending_age_seconds: float | None
    decisions_per_hour: dict[str, dict[str, int]]
    decisions_per_moderator: dict[str, dict[str, int]]


class ArticleState(BaseModel):
    article_id: str
    open: bool


#: The fields of a comment record that a moderator's view is made of, in the order `_record` reads them (also
#: the order of decide.lua's answer).
RECORD_FIELDS: Final = ("a", "t", "s", "v", "d", "dt", "db")


def _record(comment_id: str, row: Sequence[bytes | None], holder: str | None = None,
            lease_expires_at: str | None = None) -> ModeratorComment | None:
    """A record from the `RECORD_FIELDS` of its hash; None when the comment does not exist."""
    article, created, state, version, private, decided_at, decided_by = row
    if article is None or created is None or state is None or version is None or private is None:
        return None
    # The stored JSON already has most fields (and a few the model leaves out): validated as one dict, which
    # costs pydantic less than keyword arguments.
    data = orjson.loads(private)
    if "created_at" not in data:
        data["created_at"] = _iso(int(created))
    data.update(id=comment_id, article_id=article.decode(), state=state.decode(), version=int(version),
                claimed_by=holder, lease_expires_at=lease_expires_at,
                decided_at=_iso(int(decided_at)) if decided_at else None,
                decided_by=decided_by.decode() if decided_by is not None else None)
    return ModeratorComment.model_validate(data)


@functools.lru_cache(maxsize=1024)
def _iso(ms: int) -> str:
    """`iso` for the few instants a burst of decisions shares (a decision's time is also its record's)."""
    return iso(ms)


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


def _refuse(result: Sequence[bytes]) -> NoReturn:
    """decide.lua's refusals as domain errors."""
    status, detail = _text(result[0]), _text(result[1]) if len(result) > 1 else ""
    if status == "missing":
        raise NotFound("no such comment")
    if status == "stale":
        raise StaleVersion(f"the comment is at version {detail}")
    if status == "decided":
        raise AlreadyDecided(f"the comment is already {detail}")
    if status == "not_approved":
        raise NotApproved(f"the comment is {detail}, not approved")
    if status == "leased":
        raise LeasedToOther(f"{detail} holds this comment")
    if status == "error":  # as if the failing command had been sent on its own
        raise ResponseError(detail)
    raise RuntimeError(f"the decide script answered {status!r}")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _now_ms() -> int:
    return int(time.time() * 1000)


class Moderation:
    def __init__(self, scripts: Scripts, secret: bytes) -> None:
        self._scripts = scripts
        self._redis = scripts.redis
        self._secret = secret
        # comment -> article never changes; knowing it saves a round trip before each decision.
        self._article_of: OrderedDict[str, str] = OrderedDict()
        self._every_partition = [key for p in range(keys.PARTITIONS) for key in keys.claim_keys(p)]
        self._decide_keys_of: dict[tuple[str, int, int], list[str]] = {}

    def _remember_article(self, comment_id: str, article_id: str) -> None:
        self._article_of[comment_id] = article_id
        if len(self._article_of) > ARTICLE_CACHE_ENTRIES:
            self._article_of.popitem(last=False)

    # -- reading ---------------------------------------------------------------------------------------

    async def _records(self, ids: Sequence[str]) -> list[ModeratorComment]:
        """Records with their live claim state, in the order given; ids that vanished are skipped."""
        if not ids:
            return []
        batch = self._scripts.batch()
        for comment_id in ids:
            partition = keys.partition_of_comment(comment_id)
            batch.command("HMGET", keys.comment(comment_id), *RECORD_FIELDS)
            batch.command("HGET", keys.holders(partition), comment_id)
            batch.command("ZSCORE", keys.leases(partition), comment_id)
        results = await batch.execute()
        now = _now_ms()
        out = []
        for index, comment_id in enumerate(ids):
            row, holder, lease = results[3 * index: 3 * index + 3]
            live = lease is not None and float(lease) > now
            record = _record(comment_id, row, _text(holder) if live and holder is not None else None,
                             iso(int(float(lease))) if live else None)
            if record is not None:
                self._remember_article(comment_id, record.article_id)
                out.append(record)
        return out

    async def _leased(self, ids: Sequence[str], holder: str, lease_expires_at: str) -> list[ModeratorComment]:
        """Records of comments this claim just leased: their holder and lease are known, only the records are
        read (in one round trip, shared with other requests'). One decided meanwhile is shown as it is now,
        without the lease it lost."""
        if not ids:
            return []
        rows = await asyncio.gather(*(self._scripts.command_soon("HMGET", keys.comment(comment_id), *RECORD_FIELDS)
                                      for comment_id in ids))
        out = []
        for comment_id, row in zip(ids, rows, strict=True):
            pending = row[2] == b"pending"
            record = _record(comment_id, row, holder if pending else None, lease_expires_at if pending else None)
            if record is not None:
                self._remember_article(comment_id, record.article_id)
                out.append(record)
        return out

    async def queue(self, article_id: str | None, limit: int, cursor: str | None) -> QueuePage:
        """Pending comments, oldest first, across partitions; the cursor is the last (submitted ms, id)."""
        after_score, after_id = 0.0, ""
        if cursor is not None:
            if not QUEUE_CURSOR_RE.match(cursor):
                raise ValidationFailed("the cursor is not one this service gave out")
            score_text, _, after_id = cursor.partition(":")
            after_score = float(score_text)
        partitions = [keys.partition_of_article(article_id)] if article_id else list(range(keys.PARTITIONS))
        scan = limit + 1 if not article_id else max(200, limit * 4)
        batch = self._scripts.batch()
        for partition in partitions:
            batch.command("ZRANGEBYSCORE", keys.pending(partition), after_score, "+inf",
                          "WITHSCORES", "LIMIT", 0, scan + 50)
        per_partition = await batch.execute()
        candidates: list[tuple[float, str, int]] = []
        for partition, rows in zip(partitions, per_partition, strict=True):
            for member, score in scored(rows):
                comment_id = member.decode()
                if (score, comment_id) > (after_score, after_id):
                    candidates.append((score, comment_id, partition))
        candidates = heapq.nsmallest(len(candidates), candidates)
        if article_id:
            partition = keys.partition_of_article(article_id)
            owners = await self._redis.hmget(keys.pending_articles(partition), [c[1] for c in candidates]) \
                if candidates else []
            candidates = [c for c, owner in zip(candidates, owners, strict=True)
                          if owner is not None and as_text(owner) == article_id]
        page = candidates[:limit]
        comments = await self._records([c[1] for c in page])
        next_cursor = f"{page[-1][0]:.0f}:{page[-1][1]}" if len(candidates) > limit and page else None
        return QueuePage(comments=comments, next_cursor=next_cursor)

    async def get(self, comment_id: str) -> CommentWithHistory:
        records = await self._records([comment_id])
        if not records:
            raise NotFound("no such comment")
        raw_history = await self._redis.lrange(keys.history(comment_id), 0, -1)
        history = [HistoryEntry(at=iso(int(e["at"])), by=e["by"], action=e["action"], from_state=e["from"],
                                to_state=e["to"], reason=e["reason"], version=int(e["version"]))
                   for e in map(orjson.loads, raw_history)]
        return CommentWithHistory(**records[0].model_dump(), history=history)

    # -- claims ----------------------------------------------------------------------------------------

    async def claim(self, who: Principal, request: ClaimRequest) -> ClaimResult:
        now = _now_ms()
        expiry = now + request.lease_seconds * 1000
        if request.article_id:
            claimed = await self._lease(keys.claim_keys(keys.partition_of_article(request.article_id)),
                                        [now, expiry, who.name, request.limit, request.article_id, 5000])
        elif self._scripts.one_server:
            # One script over every partition: it takes the oldest claimable comments in one atomic step.
            claimed = await self._lease(self._every_partition, [now, expiry, who.name, request.limit, "", 0])
        else:
            claimed = await self._claim_partitioned(now, expiry, who.name, request.limit)
        lease_expires_at = iso(expiry)
        return ClaimResult(comments=await self._leased(claimed, who.name, lease_expires_at),
                           lease_expires_at=lease_expires_at)

    async def _lease(self, claim_keys: list[str], args: list[Arg]) -> list[str]:
        return [_text(i) for i in await self._scripts.run_soon("claim", claim_keys, args)]

    async def _claim_partitioned(self, now: int, expiry: int, holder: str, limit: int) -> list[str]:
        """On a Redis Cluster, where a script keeps to one partition: plan how many to lease from each, then
        lease them, every partition in the same round trip. Another moderator may take some of the planned
        ones meanwhile: plan again for what is missing."""
        claimed: list[str] = []
        for _ in range(CLAIM_ROUNDS):
            quotas = await self._oldest_claimable(now, limit - len(claimed))
            if not quotas:
                break
            batch = self._scripts.batch()
            for partition, count in quotas.items():
                batch.script("claim", keys.claim_keys(partition), [now, expiry, holder, count, "", 0])
            claimed.extend(_text(i) for ids in await batch.execute() for i in ids)
            if len(claimed) >= limit:
                break
        return claimed

    async def _oldest_claimable(self, now: int, limit: int) -> dict[int, int]:
        """How many comments to lease from each partition so the claim takes the `limit` oldest claimable ones
        over all partitions (unleased, or with a lease that ran out), partitions ordered by their oldest."""
        batch = self._scripts.batch()
        for partition in range(keys.PARTITIONS):
            batch.command("ZRANGE", keys.ready(partition), 0, limit - 1, "WITHSCORES")
            batch.command("ZRANGEBYSCORE", keys.leases(partition), "-inf", now, "LIMIT", 0, limit)
        heads = await batch.execute()
        candidates = [(score, partition) for partition in range(keys.PARTITIONS)
                      for _, score in scored(heads[2 * partition])]
        expired = [(partition, member) for partition in range(keys.PARTITIONS) for member in heads[2 * partition + 1]]
        if expired:
            batch = self._scripts.batch()
            for partition, member in expired:
                batch.command("ZSCORE", keys.pending(partition), member)
            for (partition, _), score in zip(expired, await batch.execute(), strict=True):
                if score is not None:
                    candidates.append((float(score), partition))
        quotas: dict[int, int] = {}
        for _, partition in heapq.nsmallest(limit, candidates):
            quotas[partition] = quotas.get(partition, 0) + 1
        return quotas

    # -- decisions -------------------------------------------------------------------------------------

    async def decide(self, who: Principal, comment_id: str, action: str, reason: str = "",
                     version: int | None = None) -> ModeratorComment:
        article_id = self._article_of.get(comment_id)
        if article_id is None:
            stored = await self._scripts.command_soon("HGET", keys.comment(comment_id), "a")
            if stored is None:
                raise NotFound("no such comment")
            article_id = _text(stored)
            self._remember_article(comment_id, article_id)
        now = _now_ms()
        # One call of decide.lua for the decisions of a loop turn: on one server all of them, on a Cluster
        # those of one partition (a script's keys must share a slot).
        together = 0 if self._scripts.one_server else keys.partition_of_comment(comment_id)
        result = await self._scripts.run_soon(
            "decide", self._decide_keys(comment_id, article_id, now // 3_600_000),
            [comment_id, action, who.name, reason, "" if version is None else version, now, _iso(now),
             secrets.token_hex(8), OUTBOX_MAXLEN, STATS_TTL_SECONDS], together=together)
        if result[0] != b"ok":
            _refuse(result)
        record = _record(comment_id, result[1:])
        if record is None:
            raise NotFound("no such comment")
        if action == "spam":
            await self._learn_spam(record)
        return record

    def _decide_keys(self, comment_id: str, article_id: str, hour: int) -> list[str]:
        """`keys.decide_keys`, of which all but the comment's own two keys (KEYS[1] and KEYS[2] of decide.lua)
        are the same for every decision on an article within the hour: kept, they are not built again."""
        shared_key = (article_id, keys.partition_of_comment(comment_id), hour)
        shared = self._decide_keys_of.get(shared_key)
        if shared is None:
            if len(self._decide_keys_of) > ARTICLE_CACHE_ENTRIES:
                self._decide_keys_of.clear()
            built = keys.decide_keys(comment_id, article_id, hour)
            self._decide_keys_of[shared_key] = built[2:]
            return built
        return [keys.comment(comment_id), keys.history(comment_id), *shared]

    async def _learn_spam(self, record: ModeratorComment) -> None:
        """Spam decisions teach: later comments from the same address or email carry a risk signal."""
        batch = self._scripts.batch()
        email_digest = email_hash(self._secret, record.email)
        for key in (keys.reputation("ip", record.ip_hash), keys.reputation("email", email_digest)):
            batch.command("INCR", key)
            batch.command("EXPIRE", key, REPUTATION_TTL_SECONDS)
        await batch.execute()

    async def bulk(self, who: Principal, request: BulkRequest) -> BulkResult:
        ids = request.ids if request.ids is not None else await self._matching(request.filter)
        outcomes = []
        for comment_id in ids:
            try:
                record = await self.decide(who, comment_id, request.action, request.reason)
            except (NotFound, AlreadyDecided, LeasedToOther, StaleVersion, NotApproved) as exc:
                outcomes.append(BulkOutcome(id=comment_id, status=exc.status, code=exc.code))
            else:
                outcomes.append(BulkOutcome(id=comment_id, status=200, state=record.state))
        return BulkResult(matched=len(ids), outcomes=outcomes)

    async def _matching(self, selector: BulkFilter | None) -> list[str]:
        assert selector is not None
        matched: list[str] = []
        cursor: str | None = None
        needle = text.fold(selector.text_contains) if selector.text_contains else None
        email = selector.email.strip().lower() if selector.email else None
        while len(matched) < BULK_MAX:
            page = await self.queue(selector.article_id, 200, cursor)
            for comment in page.comments:
                if selector.ip_hash and comment.ip_hash != selector.ip_hash:
                    continue
                if email and comment.email.lower() != email:
                    continue
                if selector.risk and selector.risk not in comment.risk:
                    continue
                if needle and needle not in text.fold(f"{comment.name}\n{comment.title}\n{comment.body}"):
                    continue
                matched.append(comment.id)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return matched[:BULK_MAX]

    async def retract(self, who: Principal, comment_id: str, reason: str) -> ModeratorComment:
        return await self.decide(who, comment_id, "retract", reason)

    # -- articles and stats ------------------------------------------------------------------------------

    async def set_open(self, article_id: str, is_open: bool) -> ArticleState:
        await self._scripts.run("set_open", [keys.article(article_id)], ["0" if is_open else "1"])
        return ArticleState(article_id=article_id, open=is_open)

    async def queue_health(self) -> tuple[int, float | None]:
        """Queue depth and the age in seconds of the oldest pending comment (for metrics at scrape time)."""
        batch = self._scripts.batch()
        for partition in range(keys.PARTITIONS):
            batch.command("ZCARD", keys.pending(partition))
            batch.command("ZRANGE", keys.pending(partition), 0, 0, "WITHSCORES")
        results = await batch.execute()
        depth = sum(int(results[2 * p]) for p in range(keys.PARTITIONS))
        heads = [scored(results[2 * p + 1])[0][1] for p in range(keys.PARTITIONS) if results[2 * p + 1]]
        return depth, (_now_ms() - min(heads)) / 1000 if heads else None

    async def stats(self, hours: int = 24) -> Stats:
        hour = _now_ms() // 3_600_000
        batch = self._scripts.batch()
        for partition in range(keys.PARTITIONS):
            for h in range(hour - hours + 1, hour + 1):
                batch.command("HGETALL", keys.stats(partition, h))
        (depth, oldest), results = await asyncio.gather(self.queue_health(), batch.execute())
        per_hour: dict[str, dict[str, int]] = {}
        per_moderator: dict[str, dict[str, int]] = {}
        for index, row in enumerate(results):
            h = hour - hours + 1 + index % hours
            row = row if isinstance(row, dict) else _pairs(row)
            for field, count in row.items():
                action, _, moderator = field.decode().partition(":")
                label = iso(h * 3_600_000)
                per_hour.setdefault(label, {}).setdefault(action, 0)
                per_hour[label][action] += int(count)
                per_moderator.setdefault(moderator, {}).setdefault(action, 0)
                per_moderator[moderator][action] += int(count)
        return Stats(queue_depth=depth, oldest_pending_age_seconds=oldest,
                     decisions_per_hour=dict(sorted(per_hour.items())), decisions_per_moderator=per_moderator)

