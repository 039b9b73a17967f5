"""The moderation queue: listing, claims with leases (renewal, release), decisions (single and bulk), undo,
retraction, lists by state, search, an author's record, history, stats, and opening or closing an article.

Every state change goes through `lua/decide.lua`, the one place that knows the allowed transitions
(`State`). This module turns its answers into domain results and errors.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import heapq
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, NoReturn

import orjson
from cachetools import LRUCache
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service import keys, search, text
from service.clients import email_hash
from service.clock import now_ms
from service.connections import reply_error
from service.errors import (
    AlreadyDecided,
    LeasedToOther,
    NotApproved,
    NotFound,
    StaleVersion,
    StorageCorrupt,
    UndoNotAllowed,
    ValidationFailed,
)
from service.models import ARTICLE_ID_PATTERN, iso, whole_string
from service.records import HISTORY_FIELDS, history_of_row
from service.scripts import Arg, Scripts, as_text, corrupt, scored
from service.search import Entry as IndexEntry
from service.search import Source as IndexSource
from service.search import Stream as IndexStream
from service.submissions import OUTBOX_MAXLEN
from service.tokens import Principal, Role

STATS_TTL_SECONDS: Final = 8 * 86400
REPUTATION_TTL_SECONDS: Final = 90 * 86400
BULK_MAX: Final = 1000
QUEUE_CURSOR_PATTERN: Final = r"^[0-9]{1,15}:[0-9a-z]{26}$"
QUEUE_CURSOR_RE: Final = whole_string(QUEUE_CURSOR_PATTERN)
ARTICLE_CACHE_ENTRIES: Final = 100_000
#: Pending comments a filter that no index serves (ip_hash, email, risk, text) reads in one request at most: the
#: answer says how far it got (`next_cursor`, `complete`) and the next request goes on from there.
FILTER_SCAN_MAX: Final = 5000
#: Pending comments read per round trip while walking the queue for a filter.
FILTER_PAGE: Final = 500
#: Times a claim plans again when concurrent claims took what it planned to lease.
CLAIM_ROUNDS: Final = 4
#: How long after a decision its maker (or an admin) may undo it.
UNDO_WINDOW_SECONDS: Final = 10
#: The upper bounds (seconds) of the buckets in which decide.lua counts how long each decided comment waited.
LATENCY_BUCKETS: Final = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800,
                          604800)
#: Decided comments a list kept to an article reads in one request at most (no index by article and state).
LIST_SCAN_MAX: Final = 5000
#: Candidates read per round trip while walking lists and search indexes.
WALK_PAGE: Final = 200
#: A search's cursor: every partition's place (`search.encode_cursor`).
SEARCH_CURSOR_PATTERN: Final = r"^s1[A-Za-z0-9_-]{4,64}$"
SEARCH_CURSOR_RE: Final = whole_string(SEARCH_CURSOR_PATTERN)
#: An author's record counts earlier comments exactly while the sender's (or address's) terms hold at most this
#: many comments in all.
AUTHOR_COUNT_MAX: Final = 20_000
#: ISO 8601 dates or instants a search takes for its date range (checked whole; `datetime` reads the rest).
DATE_PATTERN: Final = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                       r"(Z|[+-][0-9]{2}:[0-9]{2})?)?$")
DATE_RE: Final = whole_string(DATE_PATTERN)
#: The keyed hash of an address, as `clients.keyed_hash` writes it.
IP_HASH_PATTERN: Final = r"^[0-9a-f]{24}$"
IP_HASH_RE: Final = whole_string(IP_HASH_PATTERN)


class State(enum.StrEnum):
    PENDING = "pending"  #: waiting for a moderator; the only state a reader's comment starts in
    APPROVED = "approved"  #: public: in the article's list and the approvals feed
    REJECTED = "rejected"  #: never shown
    SPAM = "spam"  #: never shown; teaches the sender's reputation
    RETRACTED = "retracted"  #: was approved, then unpublished; the feed carries a retraction


Action = Literal["approve", "reject", "spam"]
ListState = Literal["pending", "approved", "rejected", "spam", "retracted"]
#: The states with an index of their own in each partition (`keys.state_index`): what `StateTotals` counts.
DECIDED_STATES: Final = (State.APPROVED, State.REJECTED, State.SPAM, State.RETRACTED)


class ModeratorComment(BaseModel):
    """All a moderator needs to decide, including what the public never sees."""

    id: str = Field(description="The comment's id.")
    article_id: str = Field(description="The article it was submitted to.")
    parent_id: str | None = Field(description="The approved comment it replies to; null for a top-level comment.")
    name: str = Field(description="The name the author gave.")
    email: str = Field(description="The author's email (normalised); moderators only, never published.")
    title: str = Field(description="The comment's title.")
    body: str = Field(description="The comment's text.")
    created_at: str = Field(description="When it was submitted (ISO 8601, UTC).")
    ip_hash: str = Field(description="A keyed hash of the sender's address (IPv6: its /64): equal for comments "
                                     "from the same address, which is never stored; a bulk filter can select "
                                     "by it.")
    risk: list[str] = Field(description="Risk signals found at submission, to help sort the queue; they decide "
                                        "nothing. E.g. shouting, blocklisted_words, repeated_text, "
                                        "ip_reputation, email_reputation; web addresses in the text give "
                                        "signals of their own.")
    state: State = Field(description="pending (waiting for a moderator), approved (public), rejected, spam "
                                     "(never shown), or retracted (approved, then unpublished).")
    version: int = Field(description="Goes up by one with every change of state. Send the version you saw with "
                                     "a decision: if the comment changed meanwhile, the decision is refused "
                                     "with 409 `stale_version` instead of overriding it.")
    claimed_by: str | None = Field(
        default=None, description="The name of the moderator token whose claim (lease) holds the comment; null "
                                  "when unclaimed or the lease ran out.")
    lease_expires_at: str | None = Field(
        default=None, description="When that claim runs out (ISO 8601, UTC); until then other moderators get "
                                  "409 `leased_to_other` if they decide it.")
    decided_at: str | None = Field(default=None, description="When the last decision was made (ISO 8601, UTC); "
                                                             "null while pending.")
    decided_by: str | None = Field(default=None, description="The name of the moderator token that made the last "
                                                             "decision; null while pending.")


class HistoryEntry(BaseModel):
    at: str = Field(description="When it happened (ISO 8601, UTC).")
    by: str = Field(description="The name of the moderator token that acted.")
    action: str = Field(description="approve, reject, spam, retract or undo (back to pending).")
    from_state: str | None = Field(description="The state before this change.")
    to_state: str = Field(description="The state after it.")
    reason: str = Field(description="The reason the moderator gave; empty when none.")
    version: int = Field(description="The comment's version after this change.")


class CommentWithHistory(ModeratorComment):
    history: list[HistoryEntry] = Field(description="Every change of state, oldest first.")


class QueuePage(BaseModel):
    comments: list[ModeratorComment] = Field(description="Pending comments, oldest first, claimed ones "
                                                         "included (see `claimed_by`).")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    limit: int = Field(default=10, ge=1, le=100, description="How many pending comments to claim at most.")
    # 300 here, not `Settings.lease_seconds_default`: a model's default is part of the API's document, the same
    # for every deployment; the setting is the lease the moderation console asks for.
    lease_seconds: int = Field(default=300, ge=5, le=86400,
                               description="How long the claim keeps other moderators off these comments.")
    article_id: str | None = Field(default=None, pattern=ARTICLE_ID_PATTERN,
                                   description="Claim only comments of this article; any article when absent.")


class ClaimResult(BaseModel):
    comments: list[ModeratorComment] = Field(description="The oldest claimable pending comments, now leased to "
                                                         "you; empty when there are none.")
    lease_expires_at: str = Field(description="When these leases run out (ISO 8601, UTC); unclaimed comments "
                                              "can then be claimed by others.")


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    action: Action = Field(description="approve (publish it), reject, or spam (reject, and later comments from "
                                       "the same address or email carry a risk signal).")
    reason: str = Field(default="", max_length=500, description="Why, for the comment's history; never shown to "
                                                                "the public.")
    version: int | None = Field(
        default=None, ge=1, description="Optimistic concurrency: the `version` of the comment you read. If the "
                                        "comment has changed since, the decision is refused with 409 "
                                        "`stale_version`. Leave it out to decide whatever the version. Claiming "
                                        "first is optional: a moderator may decide an unclaimed comment; "
                                        "claims only keep two moderators off the same comment.")


class RetractRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    reason: str = Field(default="", max_length=500, description="Why it is unpublished, for the comment's "
                                                                "history; never shown to the public.")


class BulkFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    article_id: str | None = Field(default=None, pattern=ARTICLE_ID_PATTERN,
                                   description="Only pending comments of this article.")
    ip_hash: str | None = Field(default=None, max_length=64,
                                description="Only comments whose `ip_hash` is this (a moderator's view shows it).")
    email: str | None = Field(default=None, max_length=320,
                              description="Only comments from this email address (case does not matter).")
    risk: str | None = Field(default=None, max_length=64,
                             description="Only comments carrying this risk signal, e.g. `ip_reputation`.")
    text_contains: str | None = Field(default=None, min_length=1, max_length=200,
                                      description="Only comments whose name, title or body contains this text "
                                                  "(case and accents do not matter).")


class BulkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    action: Action = Field(description="approve, reject or spam, for every selected comment.")
    reason: str = Field(default="", max_length=500, description="Why, for each comment's history.")
    ids: list[str] | None = Field(default=None, min_length=1, max_length=BULK_MAX,
                                  description="The comments to decide; give either `ids` or `filter`.")
    filter: BulkFilter | None = Field(default=None, description="Decide the pending comments that match all of "
                                                                "its criteria; give either `ids` or `filter`.")
    cursor: str | None = Field(default=None, pattern=QUEUE_CURSOR_PATTERN, description=(
        "With a filter only: go on after this point of the queue (the `next_cursor` of an earlier answer)."))

    @model_validator(mode="after")
    def _one_selector(self) -> BulkRequest:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter")
        if self.cursor is not None and self.filter is None:
            raise ValueError("a cursor goes with a filter")
        return self


class BulkOutcome(BaseModel):
    id: str = Field(description="The comment's id.")
    status: int = Field(description="What a single decision on it would have answered: 200, 404 or 409.")
    code: str | None = Field(default=None, description="The problem code when it was not decided, e.g. "
                                                       "`already_decided` or `leased_to_other`.")
    state: State | None = Field(default=None, description="The comment's state after the decision; null when "
                                                          "it was not decided.")


class BulkResult(BaseModel):
    """A filter's answer says how far it looked: `complete` is true only when every pending comment it could
    match was looked at; otherwise send the same filter again with `next_cursor` as `cursor`."""

    matched: int = Field(description="How many comments the ids or the filter selected.")
    outcomes: list[BulkOutcome] = Field(description="One entry per selected comment, in order.")
    scanned: int = Field(description="Pending comments the filter looked at (0 when the request gave ids).")
    complete: bool = Field(description="True when nothing the filter could match is left unseen.")
    next_cursor: str | None = Field(description="Where the filter stopped looking; null when complete.")


class WaitQuantiles(BaseModel):
    """Estimated from buckets (decide.lua counts each decision in the first of 10 s, 30 s, 1, 2, 5, 10, 15, 30
    min, 1, 2, 4, 8, 12, 24, 48 h and a week that holds its wait): linear within the bucket."""

    decisions: int = Field(description="Decisions of pending comments (approve, reject, spam) in the period.")
    median_seconds: float | None = Field(description="Half of them were made within this many seconds of the "
                                                     "comment's submission; null without decisions.")
    p90_seconds: float | None = Field(description="Nine in ten were made within this many seconds of the "
                                                  "comment's submission; null without decisions.")


class TimeToDecision(BaseModel):
    day: WaitQuantiles = Field(description="Over the last 24 hours (by the hour of the decision).")
    week: WaitQuantiles = Field(description="Over the last 7 days (168 hours).")


class StateTotals(BaseModel):
    """How many comments are in each decided state now, over all time (each state's index, summed over the
    partitions); a comment that changes state moves from one count to the other."""

    approved: int = Field(description="Comments approved and public.")
    rejected: int = Field(description="Comments rejected.")
    spam: int = Field(description="Comments marked as spam.")
    retracted: int = Field(description="Comments approved, then unpublished.")


class QueueOverview(BaseModel):
    """What the moderator console's tabs show: one event of `GET /v1/moderation/events`."""

    queue_depth: int = Field(description="Comments waiting for a decision, claimed ones included.")
    claimed: int = Field(description="Of them, those a moderator's live claim (lease) holds.")
    oldest_pending_age_seconds: float | None = Field(description="How long the oldest pending comment has waited "
                                                                 "at `at`; null when none waits.")
    totals: StateTotals = Field(description="How many comments are in each decided state.")
    at: str = Field(description="When these counts were read (ISO 8601, UTC).")


class Stats(BaseModel):
    queue_depth: int = Field(description="Comments waiting for a decision.")
    oldest_pending_age_seconds: float | None = Field(description="How long the oldest of them has waited; null "
                                                                 "when none waits.")
    totals: StateTotals = Field(description="How many comments are in each decided state, over all time (the "
                                            "decisions fields cover the last 24 hours).")
    decisions_per_hour: dict[str, dict[str, int]] = Field(
        description="For each hour of the last 24 (its start, ISO 8601 UTC): decisions by action.")
    decisions_per_moderator: dict[str, dict[str, int]] = Field(
        description="For each moderator's name: their decisions by action over the last 24 hours (`undo` counts "
                    "undone decisions, which stay counted under their action too).")
    decisions_per_hour_per_moderator: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="For each hour of the last 24 (its start, ISO 8601 UTC): decisions "
                                          "(every action but undo) by moderator.")
    time_to_decision: TimeToDecision | None = Field(
        default=None, description="Time from submission to decision, median and 90th percentile.")


class LeaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    ids: list[str] = Field(min_length=1, max_length=100, description="The comments whose leases to renew.")
    lease_seconds: int = Field(default=300, ge=5, le=86400,
                               description="How long from now the renewed leases keep other moderators off.")


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # true means true, not 1
    ids: list[str] = Field(min_length=1, max_length=100, description="The comments whose leases to give back; "
                                                                     "they are claimable again at once.")


class LeaseResult(BaseModel):
    held: list[str] = Field(description="The ids whose lease you held and that were renewed or released, in "
                                        "the order given.")
    not_held: list[str] = Field(description="The ids you do not hold: leased to another moderator, not leased, "
                                            "decided or unknown; nothing changed for them.")
    lease_expires_at: str | None = Field(description="When the renewed leases run out (ISO 8601, UTC); null for "
                                                     "a release.")


class StatePage(BaseModel):
    """A page of comments in one state. Kept to an article, a decided state is read from the partition's list
    and each comment's article judged, `LIST_SCAN_MAX` a request: `complete` says whether it looked at all."""

    comments: list[ModeratorComment] = Field(description="Pending: oldest submitted first. Decided states: "
                                                          "newest decided first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null when nothing follows.")
    scanned: int = Field(description="Comments looked at to make this page.")
    complete: bool = Field(description="True when nothing that could match is left unseen after this page.")


class SearchPage(BaseModel):
    """A page of search results, newest submitted first. A search reads at most a bounded number of candidates
    a request; when it stopped before the end, `complete` is false and `next_cursor` goes on from there (a page
    may then hold fewer results than asked, even none)."""

    comments: list[ModeratorComment] = Field(description="Matching comments in any state, newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` (with the same criteria) for the next page; "
                                                "null when nothing is left unseen.")
    scanned: int = Field(description="Candidate comments read to make this page.")
    complete: bool = Field(description="True when every comment that could match has been looked at.")


class AuthorComment(BaseModel):
    id: str = Field(description="The earlier comment's id.")
    article_id: str = Field(description="The article it was submitted to.")
    title: str = Field(description="Its title.")
    state: State = Field(description="Its state now.")
    created_at: str = Field(description="When it was submitted (ISO 8601, UTC).")
    decided_at: str | None = Field(description="When it was last decided (ISO 8601, UTC); null while pending.")


class AuthorComments(BaseModel):
    total: int = Field(description="How many earlier comments there are in all.")
    comments: list[AuthorComment] = Field(description="The newest of them, newest first.")
    states: dict[str, int] = Field(description="Of the comments listed: how many are in each state.")


class AuthorRecord(BaseModel):
    """Earlier comments by the same sender: by the keyed digest of the email (the address is never indexed) and
    by the keyed hash of the address."""

    comment_id: str = Field(description="The comment whose author this is.")
    by_email: AuthorComments = Field(description="Earlier comments from the same email address.")
    by_ip: AuthorComments = Field(description="Earlier comments from the same address (IPv6: the same /64).")


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What a search asks, as the API read it from the query string; every criterion given must hold."""

    words: tuple[str, ...] = ()  #: folded (`search.query_words`)
    name: str | None = None  #: folded
    email: str | None = None
    ip_hash: str | None = None
    article_id: str | None = None
    state: State | None = None
    since_ms: int | None = None
    until_ms: int | None = None  #: inclusive


class ArticleState(BaseModel):
    article_id: str = Field(description="The article.")
    open: bool = Field(description="Whether it now takes new comments.")


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
    status, detail = as_text(result[0]), as_text(result[1]) if len(result) > 1 else ""
    if status == "missing":
        raise NotFound("no such comment")
    if status == "stale":
        raise StaleVersion("the comment is at version {version}", params={"version": detail})
    if status == "decided":
        raise AlreadyDecided("the comment is already {state}", params={"state": detail})
    if status == "not_approved":
        raise NotApproved("the comment is {state}, not approved", params={"state": detail})
    if status == "leased":
        raise LeasedToOther("{holder} holds this comment", params={"holder": detail})
    if status == "not_undoable":
        raise UndoNotAllowed("the comment is {state}: only an approval, a rejection or a spam decision can be "
                             "undone", params={"state": detail})
    if status == "undo_expired":
        raise UndoNotAllowed("the decision is more than {seconds} s old and can no longer be undone",
                             params={"seconds": UNDO_WINDOW_SECONDS})
    if status == "not_yours":
        raise UndoNotAllowed("only {moderator}, who made the decision, or an admin can undo it",
                             params={"moderator": detail})
    if status == "corrupt":  # a damaged key or record: the decision wrote nothing
        raise corrupt(detail)
    if status == "error":  # as if the failing command had been sent on its own
        raise reply_error(detail)
    raise RuntimeError(f"the decide script answered {status!r}")


def _predicate(selector: BulkFilter) -> Callable[[ModeratorComment], bool] | None:
    """What a bulk filter asks of a comment's record beyond its article (which the article's own index answers);
    None when it asks nothing more."""
    needle = text.fold(selector.text_contains) if selector.text_contains else None
    email = selector.email.strip().lower() if selector.email else None
    ip_hash, risk = selector.ip_hash, selector.risk
    if not (ip_hash or email or risk or needle):
        return None

    def matches(comment: ModeratorComment) -> bool:
        return ((not ip_hash or comment.ip_hash == ip_hash)
                and (not email or comment.email.lower() == email)
                and (not risk or risk in comment.risk)
                and (not needle or needle in text.fold(f"{comment.name}\n{comment.title}\n{comment.body}")))

    return matches


#: A place in the queue: (submitted ms, comment id), the order of the pending sorted sets.
Position = tuple[float, str]


def _read_cursor(cursor: str | None) -> Position:
    if cursor is None:
        return (0.0, "")
    if not QUEUE_CURSOR_RE.fullmatch(cursor):
        raise ValidationFailed("the cursor is not one this service gave out")
    score_text, _, after_id = cursor.partition(":")
    return (float(score_text), after_id)


def _read_newest_cursor(cursor: str | None, until_ms: int | None = None) -> Position:
    """Where a newest-first walk starts: after the cursor's place, or from the top (at `until_ms` at most)."""
    if cursor is None:
        return (math.inf, "") if until_ms is None else (float(until_ms), "~")
    return _read_cursor(cursor)


def wait_quantiles(buckets: dict[str, int]) -> WaitQuantiles:
    """Median and p90 from decide.lua's buckets (upper bound in seconds, or "inf", -> count): the rank's place
    within its bucket, read linearly between the bucket's bounds (the last bucket is open: its lower bound)."""
    bounds = [*LATENCY_BUCKETS, math.inf]
    counts = [buckets.get("inf" if bound == math.inf else str(bound), 0) for bound in bounds]
    total = sum(counts)

    def quantile(q: float) -> float | None:
        if not total:
            return None
        rank = max(1, math.ceil(q * total))
        seen = 0
        for index, count in enumerate(counts):
            if count and seen + count >= rank:
                lower = 0 if index == 0 else bounds[index - 1]
                upper = bounds[index]
                if upper == math.inf:
                    return float(lower)
                return lower + (upper - lower) * (rank - seen) / count
            seen += count
        return None

    return WaitQuantiles(decisions=total, median_seconds=quantile(0.5), p90_seconds=quantile(0.9))


def _cursor(position: Position) -> str:
    return f"{position[0]:.0f}:{position[1]}"


class Moderation:
    def __init__(self, scripts: Scripts, secret: bytes, *, clock: Callable[[], int] | None = None,
                 undo_lease_seconds: int = 300) -> None:
        #: Now, in ms since the epoch: every decision, lease and stat reads it (a test moves it forward).
        self.clock = clock or now_ms
        self.undo_window_ms = UNDO_WINDOW_SECONDS * 1000
        #: How long an undone comment stays leased to whoever undid it (the console's lease).
        self.undo_lease_ms = undo_lease_seconds * 1000
        self._scripts = scripts
        self._redis = scripts.redis
        self._secret = secret
        # comment -> article never changes; knowing it saves a round trip before each decision.
        self._article_of: LRUCache[str, str] = LRUCache(ARTICLE_CACHE_ENTRIES)
        self._every_partition = [key for p in range(keys.PARTITIONS) for key in keys.claim_keys(p)]
        self._decide_keys_of: LRUCache[tuple[str, int, int], list[str]] = LRUCache(ARTICLE_CACHE_ENTRIES)

    def _remember_article(self, comment_id: str, article_id: str) -> None:
        self._article_of[comment_id] = article_id

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
        now = self.clock()
        out = []
        for index, comment_id in enumerate(ids):
            row, holder, lease = results[3 * index: 3 * index + 3]
            live = lease is not None and float(lease) > now
            record = _record(comment_id, row, as_text(holder) if live and holder is not None else None,
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
        """Pending comments, oldest first, across partitions, or of one article (from its own pending index, so
        that its comments are found however long the partition's queue); the cursor is the last (submitted ms,
        id) of the page, and there is one exactly when more comments follow."""
        entries, more = await self._walk(self._queues(article_id), _read_cursor(cursor), limit)
        comments = await self._records([comment_id for _, comment_id in entries])
        return QueuePage(comments=comments, next_cursor=_cursor(entries[-1]) if more else None)

    @staticmethod
    def _queues(article_id: str | None) -> list[str]:
        """The sorted sets whose merge is the queue a filter walks: one article's, or every partition's."""
        if article_id:
            return [keys.article_pending(article_id)]
        return [keys.pending(partition) for partition in range(keys.PARTITIONS)]

    async def _walk(self, queues: Sequence[str], after: Position, count: int) -> tuple[list[Position], bool]:
        """The next `count` queued comments after `after` in the merge of `queues`, and whether more follow.

        Each sorted set is read from the cursor's score: the entries of that very millisecond up to the cursor's
        id come back too and are skipped, and a set that gave only those is read further (one round trip in
        the usual case, however many share a millisecond)."""
        want = count + 1
        chunk = want + 50
        found: list[list[Position]] = [[] for _ in queues]
        offsets = [0] * len(queues)
        todo = list(range(len(queues)))
        while todo:
            batch = self._scripts.batch()
            for index in todo:
                batch.command("ZRANGEBYSCORE", queues[index], after[0], "+inf", "WITHSCORES",
                              "LIMIT", offsets[index], chunk)
            again = []
            for index, rows in zip(todo, await batch.execute(), strict=True):
                read = scored(rows)
                found[index].extend(entry for entry in ((score, as_text(member)) for member, score in read)
                                    if entry > after)
                offsets[index] += len(read)
                if len(read) == chunk and len(found[index]) < want:
                    again.append(index)
            todo = again
        merged = heapq.nsmallest(want, (entry for entries in found for entry in entries))
        return merged[:count], len(merged) > count

    async def records(self, ids: Sequence[str]) -> list[ModeratorComment]:
        """Moderators' views of these comments, in the order given; ids that do not exist are skipped."""
        return await self._records(ids)

    async def get(self, comment_id: str) -> CommentWithHistory:
        records = await self._records([comment_id])
        if not records:
            raise NotFound("no such comment")
        batch = self._scripts.batch()
        batch.command("HMGET", keys.comment(comment_id), *HISTORY_FIELDS)
        batch.command("LRANGE", keys.history(comment_id), 0, -1)
        row, raw_history = await batch.execute()
        # Until its second change of state, a comment's one decision is described by its record's fields.
        history = [HistoryEntry(at=iso(int(e["at"])), by=e["by"], action=e["action"], from_state=e["from"],
                                to_state=e["to"], reason=e["reason"], version=int(e["version"]))
                   for e in history_of_row(row, raw_history)]
        return CommentWithHistory(**records[0].model_dump(), history=history)

    # -- claims ----------------------------------------------------------------------------------------

    async def claim(self, who: Principal, request: ClaimRequest) -> ClaimResult:
        now = self.clock()
        expiry = now + request.lease_seconds * 1000
        if request.article_id:
            # From the article's own pending index: the cost follows its comments, not the partition's queue.
            claimed = await self._lease(keys.claim_article_keys(request.article_id),
                                        [now, expiry, who.name, request.limit, "article"])
        elif self._scripts.one_server:
            # One script over every partition: it takes the oldest claimable comments in one atomic step.
            claimed = await self._lease(self._every_partition, [now, expiry, who.name, request.limit, ""])
        else:
            claimed = await self._claim_partitioned(now, expiry, who.name, request.limit)
        lease_expires_at = iso(expiry)
        return ClaimResult(comments=await self._leased(claimed, who.name, lease_expires_at),
                           lease_expires_at=lease_expires_at)

    async def _lease(self, claim_keys: list[str], args: list[Arg]) -> list[str]:
        return [as_text(i) for i in await self._scripts.run_soon("claim", claim_keys, args)]

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
                batch.script("claim", keys.claim_keys(partition), [now, expiry, holder, count, ""])
            claimed.extend(as_text(i) for ids in await batch.execute() for i in ids)
            if len(claimed) >= limit:
                break
        return claimed

    async def _oldest_claimable(self, now: int, limit: int) -> dict[int, int]:
        """How many comments to lease from each partition so the claim takes the `limit` oldest claimable ones
        over all partitions (pending without a live lease), partitions ordered by their oldest.

        One round trip: claim.lua in its "plan" mode in each partition answers the scores of its `limit` oldest
        claimable comments, walking its queue as a claim would (from the partition's claim hint, so undecided
        claims at the head are not read again) and writing nothing."""
        batch = self._scripts.batch()
        for partition in range(keys.PARTITIONS):
            batch.script("claim", keys.claim_keys(partition), [now, now, "", limit, "plan"])
        candidates = [(float(score), partition) for partition, scores in enumerate(await batch.execute())
                      for score in scores]
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
            article_id = as_text(stored)
            self._remember_article(comment_id, article_id)
        now = self.clock()
        # One call of decide.lua for the decisions of a loop turn: on one server all of them, on a Cluster
        # those of one partition (a script's keys must share a slot).
        together = 0 if self._scripts.one_server else keys.partition_of_comment(comment_id)
        result = await self._scripts.run_soon(
            "decide", self._decide_keys(comment_id, article_id, now // 3_600_000),
            [comment_id, action, who.name, reason, "" if version is None else version, now, _iso(now),
             secrets.token_hex(8), OUTBOX_MAXLEN, STATS_TTL_SECONDS, self.undo_window_ms,
             "admin" if who.may(Role.ADMIN) else "", now + self.undo_lease_ms], together=together)
        if result[0] != b"ok":
            _refuse(result)
        # An undone comment is leased to whoever undid it (decide.lua), until now + the undo lease.
        leased = action == "undo"
        record = _record(comment_id, result[1:], who.name if leased else None,
                         _iso(now + self.undo_lease_ms) if leased else None)
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
        if request.ids is not None:
            ids, scanned, stopped = request.ids, 0, None
        else:
            assert request.filter is not None  # BulkRequest has one or the other
            ids, scanned, stopped = await self._matching(request.filter, _read_cursor(request.cursor))
        outcomes = []
        for comment_id in ids:
            try:
                record = await self.decide(who, comment_id, request.action, request.reason)
            except (NotFound, AlreadyDecided, LeasedToOther, StaleVersion, NotApproved, StorageCorrupt) as exc:
                outcomes.append(BulkOutcome(id=comment_id, status=exc.status, code=exc.code))
            else:
                outcomes.append(BulkOutcome(id=comment_id, status=200, state=record.state))
        return BulkResult(matched=len(ids), outcomes=outcomes, scanned=scanned, complete=stopped is None,
                          next_cursor=None if stopped is None else _cursor(stopped))

    async def _matching(self, selector: BulkFilter, after: Position) -> tuple[list[str], int, Position | None]:
        """The pending comments after `after` that a filter selects, oldest first, `BULK_MAX` at most; how many
        queued comments it looked at; and where it stopped, or None when nothing it could match is left unseen.

        By article alone (or nothing) it walks the article's pending index (or the queue): every comment read is
        a match. The other criteria have no index: each queued comment's record is read and judged, at most
        `FILTER_SCAN_MAX` a request, and the caller goes on from where this one stopped."""
        predicate = _predicate(selector)
        budget = BULK_MAX if predicate is None else FILTER_SCAN_MAX
        queues = self._queues(selector.article_id)
        matched: list[str] = []
        scanned = 0
        while True:
            entries, more = await self._walk(queues, after, min(FILTER_PAGE, budget - scanned))
            records: dict[str, ModeratorComment] = {}
            if predicate is not None:
                records = {r.id: r for r in await self._records([comment_id for _, comment_id in entries])}
            for position in entries:
                if len(matched) == BULK_MAX:
                    return matched, scanned, after
                scanned += 1
                after = position
                record = records.get(position[1])
                if predicate is None or (record is not None and record.state is State.PENDING and predicate(record)):
                    matched.append(position[1])
            if not more:
                return matched, scanned, None
            if scanned >= budget or len(matched) == BULK_MAX:
                return matched, scanned, after

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
        return depth, (self.clock() - min(heads)) / 1000 if heads else None

    async def totals(self) -> StateTotals:
        """How many comments each decided state's index holds, summed over the partitions (one round trip)."""
        batch = self._scripts.batch()
        for partition in range(keys.PARTITIONS):
            for state in DECIDED_STATES:
                batch.command("ZCARD", keys.state_index(partition, state.value))
        counts = [int(n) for n in await batch.execute()]
        width = len(DECIDED_STATES)
        return StateTotals.model_validate({state.value: sum(counts[index::width])
                                           for index, state in enumerate(DECIDED_STATES)})

    async def overview(self) -> QueueOverview:
        """The counts the console's tabs show, read at one instant: queue depth, how many of those are claimed,
        the oldest pending comment's age, and the totals per decided state."""
        now = self.clock()
        batch = self._scripts.batch()
        for partition in range(keys.PARTITIONS):
            batch.command("ZCARD", keys.pending(partition))
            batch.command("ZRANGE", keys.pending(partition), 0, 0, "WITHSCORES")
            batch.command("ZCOUNT", keys.leases(partition), f"({now}", "+inf")
        queued, totals = await asyncio.gather(batch.execute(), self.totals())
        heads = [scored(queued[3 * p + 1])[0][1] for p in range(keys.PARTITIONS) if queued[3 * p + 1]]
        return QueueOverview(queue_depth=sum(int(queued[3 * p]) for p in range(keys.PARTITIONS)),
                             claimed=sum(int(queued[3 * p + 2]) for p in range(keys.PARTITIONS)),
                             oldest_pending_age_seconds=(now - min(heads)) / 1000 if heads else None,
                             totals=totals, at=iso(now))

    async def change_marker(self) -> tuple[object, ...]:
        """Something that changes whenever the queue does, read cheaply (three O(1) reads per partition): the
        newest outbox entry (a submission, a decision that tells the outbox), the pending count (an undo, which
        does not) and the lease count (a claim, a release). Equal markers mean nothing the console shows
        changed, but for the age of the oldest comment, which the console counts on by itself."""
        batch = self._scripts.batch()
        for partition in range(keys.PARTITIONS):
            batch.command("XREVRANGE", keys.outbox(partition), "+", "-", "COUNT", 1)
            batch.command("ZCARD", keys.pending(partition))
            batch.command("ZCARD", keys.leases(partition))
        return tuple(repr(item) for item in await batch.execute())

    async def stats(self, hours: int = 24) -> Stats:
        hour = self.clock() // 3_600_000
        batch = self._scripts.batch()
        for partition in range(keys.PARTITIONS):
            for h in range(hour - hours + 1, hour + 1):
                batch.command("HGETALL", keys.stats(partition, h))
        (depth, oldest), results, totals = await asyncio.gather(self.queue_health(), batch.execute(),
                                                                self.totals())
        per_hour: dict[str, dict[str, int]] = {}
        per_moderator: dict[str, dict[str, int]] = {}
        per_hour_moderator: dict[str, dict[str, int]] = {}
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
                if action != "undo":
                    per_hour_moderator.setdefault(label, {}).setdefault(moderator, 0)
                    per_hour_moderator[label][moderator] += int(count)
        return Stats(queue_depth=depth, oldest_pending_age_seconds=oldest, totals=totals,
                     decisions_per_hour=dict(sorted(per_hour.items())), decisions_per_moderator=per_moderator,
                     decisions_per_hour_per_moderator=dict(sorted(per_hour_moderator.items())),
                     time_to_decision=await self._time_to_decision(hour))

    async def _time_to_decision(self, hour: int) -> TimeToDecision:
        """Median and p90 of the wait before a decision, over a day and a week, from the hourly buckets of every
        partition (16 x 168 small hashes, one round trip)."""
        week = 7 * 24
        batch = self._scripts.batch()
        for partition in range(keys.PARTITIONS):
            for h in range(hour - week + 1, hour + 1):
                batch.command("HGETALL", keys.decision_latency(partition, h))
        day: dict[str, int] = {}
        whole: dict[str, int] = {}
        for index, row in enumerate(await batch.execute()):
            recent = index % week >= week - 24
            for bucket, count in (row if isinstance(row, dict) else _pairs(row)).items():
                name = as_text(bucket)
                whole[name] = whole.get(name, 0) + int(count)
                if recent:
                    day[name] = day.get(name, 0) + int(count)
        return TimeToDecision(day=wait_quantiles(day), week=wait_quantiles(whole))

    # -- leases, undo ------------------------------------------------------------------------------------

    async def renew(self, who: Principal, request: LeaseRequest) -> LeaseResult:
        expiry = self.clock() + request.lease_seconds * 1000
        held = await self._leases(who, request.ids, "renew", expiry)
        return LeaseResult(held=held, not_held=[i for i in dict.fromkeys(request.ids) if i not in held],
                           lease_expires_at=iso(expiry))

    async def release(self, who: Principal, request: ReleaseRequest) -> LeaseResult:
        held = await self._leases(who, request.ids, "release", 0)
        return LeaseResult(held=held, not_held=[i for i in dict.fromkeys(request.ids) if i not in held],
                           lease_expires_at=None)

    async def _leases(self, who: Principal, ids: Sequence[str], mode: str, expiry: int) -> list[str]:
        """lease.lua once per partition of the ids, every partition in one round trip; the held ids in the
        order given."""
        by_partition: dict[int, list[str]] = {}
        for comment_id in dict.fromkeys(ids):
            by_partition.setdefault(keys.partition_of_comment(comment_id), []).append(comment_id)
        batch = self._scripts.batch()
        for partition, members in by_partition.items():
            batch.script("lease", keys.lease_keys(partition), [mode, who.name, expiry, *members])
        held = {as_text(i) for answer in await batch.execute() for i in answer}
        return [i for i in dict.fromkeys(ids) if i in held]

    async def undo(self, who: Principal, comment_id: str) -> ModeratorComment:
        """The comment's last decision undone (decide.lua's rules): back to pending, in the queue at its
        submission time, and leased to `who` (`undo_lease_ms`) so that no other claim takes it first; an approval
        is unpublished."""
        return await self.decide(who, comment_id, "undo")

    # -- lists by state, search, an author's record ----------------------------------------------------------

    async def by_state(self, state: State, article_id: str | None, limit: int, cursor: str | None) -> StatePage:
        if state is State.PENDING:
            page = await self.queue(article_id, limit, cursor)
            return StatePage(comments=page.comments, next_cursor=page.next_cursor, scanned=len(page.comments),
                             complete=page.next_cursor is None)
        partitions = [keys.partition_of_article(article_id)] if article_id else range(keys.PARTITIONS)
        lists = [keys.state_index(p, state.value) for p in partitions]

        def wanted(comment: ModeratorComment) -> bool:
            return comment.state is state and (article_id is None or comment.article_id == article_id)

        found, scanned, stopped = await self._newest(lists, _read_newest_cursor(cursor), limit, wanted,
                                                     LIST_SCAN_MAX if article_id else None)
        return StatePage(comments=found, next_cursor=None if stopped is None else _cursor(stopped),
                         scanned=scanned, complete=stopped is None)

    async def search(self, query: SearchQuery, limit: int, cursor: str | None) -> SearchPage:
        partitions = [keys.partition_of_article(query.article_id)] if query.article_id else list(range(keys.PARTITIONS))
        places = [search.TOP] * len(partitions)
        if cursor is not None:
            read = search.decode_cursor(cursor, len(partitions)) if SEARCH_CURSOR_RE.fullmatch(cursor) else None
            if read is None:
                raise ValidationFailed("the cursor is not one this service gave out")
            places = read
        streams = await self._search_streams(query, partitions, places)
        email = query.email.casefold() if query.email else None

        def wanted(comment: ModeratorComment) -> bool:
            if ((query.state is not None and comment.state is not query.state)
                    or (query.article_id is not None and comment.article_id != query.article_id)
                    or (query.ip_hash is not None and comment.ip_hash != query.ip_hash)
                    or (email is not None and comment.email.casefold() != email)
                    or (query.name is not None and query.name not in text.fold(comment.name))):
                return False
            if query.words:
                words = set(text.folded_words(f"{comment.name}\n{comment.title}\n{comment.body}"))
                return all(word in words for word in query.words)
            return True

        def dated(entry: IndexEntry) -> bool:
            return ((query.since_ms is None or entry.t >= query.since_ms)
                    and (query.until_ms is None or entry.t <= query.until_ms))

        found, scanned, more = await self._walk_index(streams, limit, dated, wanted, search.SCAN_MAX)
        # A partition whose unindexed tail was longer than a reader reads (`search.TAIL_MAX`): its older
        # unindexed comments were not looked at.
        cut = any(not s.whole for s in streams)
        return SearchPage(comments=found, next_cursor=search.encode_cursor(streams) if more else None,
                          scanned=scanned, complete=not more and not cut)

    async def _search_streams(self, query: SearchQuery, partitions: list[int],
                              places: list[int]) -> list[IndexStream]:
        """Each partition's source: the sender's or the address's term, else the rarest indexed word's (none at
        all when a word is in no comment of the partition), else every comment. A term's source takes in the
        partition's unindexed tail (`search.Index.tail`), so a comment is found the moment it is stored."""
        index = search.Index(self._scripts)

        async def source(p: int) -> tuple[IndexSource, bool]:
            terms = ([keys.by_email(p, email_hash(self._secret, query.email))] if query.email is not None
                     else [keys.by_ip(p, query.ip_hash)] if query.ip_hash is not None
                     else search.word_keys(p, query.words))
            if not terms:
                return await index.every(p), True
            tail = await index.tail(p)
            sources = await asyncio.gather(*(index.term(key, tail) for key in terms))
            if len(sources) == 1:
                return sources[0], tail.complete
            sizes = await asyncio.gather(*(index.count(s) for s in sources))
            return min(zip(sizes, range(len(sources)), sources, strict=True))[2], tail.complete

        found = await asyncio.gather(*(source(p) for p in partitions))
        return [search.Stream(p, s, place, whole=whole)
                for p, (s, whole), place in zip(partitions, found, places, strict=True)]

    async def _walk_index(self, streams: Sequence[IndexStream], limit: int,
                          keep: Callable[[IndexEntry], bool], wanted: Callable[[ModeratorComment], bool],
                          budget: int) -> tuple[list[ModeratorComment], int, bool]:
        """The first `limit` comments `wanted` takes from the merge of `streams` (newest first), looking at map
        entries `keep` takes only: the comments, how many entries were looked at, and whether any are left (each
        stream's `position` then says where). At most `budget` records and `search.SLOT_SCAN_MAX` entries."""
        index = search.Index(self._scripts)
        found: list[ModeratorComment] = []
        scanned = read = 0
        while True:
            places = [s.position for s in streams]
            taken = await index.take(streams, min(WALK_PAGE, search.SLOT_SCAN_MAX - scanned))
            kept = [(i, entry) for i, (_, entry) in enumerate(taken) if keep(entry)]
            stop = len(taken)  # how many of `taken` this request looks at
            if len(kept) > budget - read:
                stop = kept[budget - read][0]
                kept = kept[:budget - read]
            records = {r.id: r for r in await self._records([entry.id for _, entry in kept])}
            read += len(kept)
            for i, entry in kept:
                record = records.get(entry.id)
                if record is not None and wanted(record):
                    found.append(record)
                    if len(found) == limit:
                        stop = i + 1
                        break
            if stop < len(taken):  # back to just after the last entry looked at: the rest is not seen yet
                for stream, place in zip(streams, places, strict=True):
                    stream.position = place
                for stream, entry in taken[:stop]:
                    stream.position = entry.n
                for stream, entry in reversed(taken[stop:]):
                    stream.buffer.appendleft(entry)
            scanned += stop
            more = any(not s.finished for s in streams)
            if len(found) == limit or not more or read >= budget or scanned >= search.SLOT_SCAN_MAX:
                return found, scanned, more

    async def _newest(self, indexes: Sequence[str], before: Position, limit: int,
                      wanted: Callable[[ModeratorComment], bool], budget: int | None,
                      low: float | str = "-inf") -> tuple[list[ModeratorComment], int, Position | None]:
        """The first `limit` comments that `wanted` takes from the merge of `indexes`, newest (highest score)
        first, after `before`; how many were read; where it stopped, or None when nothing is left unseen.
        With a `budget`, at most that many are read."""
        found: list[ModeratorComment] = []
        scanned = 0
        while True:
            count = WALK_PAGE if budget is None else min(WALK_PAGE, budget - scanned)
            entries, more = await self._walk_newest(indexes, before, count, low)
            records = {r.id: r for r in await self._records([comment_id for _, comment_id in entries])}
            for index, position in enumerate(entries):
                scanned += 1
                before = position
                record = records.get(position[1])
                if record is not None and wanted(record):
                    found.append(record)
                    if len(found) == limit:
                        return found, scanned, position if more or index + 1 < len(entries) else None
            if not more:
                return found, scanned, None
            if budget is not None and scanned >= budget:
                return found, scanned, before

    async def _walk_newest(self, indexes: Sequence[str], before: Position, count: int,
                           low: float | str) -> tuple[list[Position], bool]:
        """`_walk` the other way: the next `count` entries below `before` (score, then id, descending) in the
        merge of `indexes`, scores from `low` up, and whether more follow."""
        want = count + 1
        chunk = want + 50
        found: list[list[Position]] = [[] for _ in indexes]
        offsets = [0] * len(indexes)
        todo = list(range(len(indexes)))
        high = "+inf" if before[0] == math.inf else before[0]
        while todo:
            batch = self._scripts.batch()
            for index in todo:
                batch.command("ZREVRANGEBYSCORE", indexes[index], high, low, "WITHSCORES", "LIMIT", offsets[index],
                              chunk)
            again = []
            for index, rows in zip(todo, await batch.execute(), strict=True):
                read = scored(rows)
                found[index].extend(entry for entry in ((score, as_text(member)) for member, score in read)
                                    if entry < before)
                offsets[index] += len(read)
                if len(read) == chunk and len(found[index]) < want:
                    again.append(index)
            todo = again
        merged = heapq.nlargest(want, (entry for entries in found for entry in entries))
        return merged[:count], len(merged) > count

    async def author(self, comment_id: str, limit: int) -> AuthorRecord:
        """Earlier comments by the sender of this one, by email digest and by address hash, over every
        partition (a sender writes to many articles), newest first."""
        records = await self._records([comment_id])
        if not records:
            raise NotFound("no such comment")
        comment = records[0]
        submitted = await self._redis.hget(keys.comment(comment_id), "t")
        before = (int(submitted or 0), comment_id)
        digest = email_hash(self._secret, comment.email)
        every = range(keys.PARTITIONS)
        by_email = await self._earlier([(p, keys.by_email(p, digest)) for p in every] if comment.email else [],
                                       before, limit)
        by_ip = await self._earlier([(p, keys.by_ip(p, comment.ip_hash)) for p in every] if comment.ip_hash else [],
                                    before, limit)
        return AuthorRecord(comment_id=comment_id, by_email=by_email, by_ip=by_ip)

    async def _earlier(self, terms: list[tuple[int, str]], before: tuple[int, str], limit: int) -> AuthorComments:
        """The comments of these terms (one a partition) submitted before `before` (ms, then id): how many (read
        from the map when the terms hold at most `AUTHOR_COUNT_MAX` n's; beyond that, every other comment of
        theirs, later ones included), and the newest `limit` of them."""
        index = search.Index(self._scripts)
        tails = await asyncio.gather(*(index.tail(p) for p, _ in terms))
        sources = await asyncio.gather(*(index.term(key, tail) for (_, key), tail in zip(terms, tails, strict=True)))
        sizes = await asyncio.gather(*(index.count(s) for s in sources))
        partitions = [p for p, _ in terms]
        if sum(sizes) <= AUTHOR_COUNT_MAX:
            ns = await asyncio.gather(*(index.all_ns(s) for s in sources))
            slots = await asyncio.gather(*(index.slots(p, n) for p, n in zip(partitions, ns, strict=True)))
            total = sum(1 for found in slots for comment_id, t in found.values() if (t, comment_id) < before)
        else:
            total = max(0, sum(sizes) - 1)
        streams = [search.Stream(p, s) for p, s in zip(partitions, sources, strict=True)]
        entries, _, _ = await self._walk_index(streams, limit, lambda e: (e.t, e.id) < before, lambda _: True,
                                               search.SCAN_MAX)
        listed = [AuthorComment(id=r.id, article_id=r.article_id, title=r.title, state=r.state,
                                created_at=r.created_at, decided_at=r.decided_at) for r in entries]
        states: dict[str, int] = {}
        for item in listed:
            states[item.state.value] = states.get(item.state.value, 0) + 1
        return AuthorComments(total=total, comments=listed, states=states)
