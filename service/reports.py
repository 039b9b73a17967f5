"""Readers' reports of approved comments (“Báo vi phạm”), the moderators' reported queue, and how long a report
waits for a decision.

A report is counted once per client (the keyed hash of its address) and comment, and a client may send
`Settings.rate_limit_report` reports per window (no captcha). The reported queue holds comments with open
reports, most reported first, then longest waiting; a moderator keeps the comment (the reports are dismissed) or
retracts it (`Moderation.retract`). Either way the time from the first report is counted per hour
(`keys.report_latency`, the buckets of decide.lua), for the median and p90 in the stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from typing import Annotated, Final, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr
from pydantic_core import PydanticCustomError

from service import keys, text
from service.clients import email_hash
from service.clock import now_ms
from service.errors import NotApproved, NotFound, RateLimited
from service.models import Email, iso
from service.moderation import STATS_TTL_SECONDS, Moderation, ModeratorComment, TimeToDecision, wait_quantiles
from service.scripts import Scripts, as_text, corrupt, scored
from service.tokens import Principal

ReportReason = Literal["spam", "offensive", "false", "unlawful", "other"]
#: Reported comments read from each partition to order the queue.
QUEUE_SCAN_MAX: Final = 1000
REPORT_TEXT_MAX: Final = 500
#: The reason a retraction from the reported queue leaves in the comment's history when none is given.
RETRACT_REASON: Final = "reported by readers"


def _report_text(value: str) -> str:
    value = text.normalise(text.normalise_newlines(value))
    if text.has_forbidden_characters(value, allow_newlines=True):
        raise PydanticCustomError("invalid_characters", "contains control or bidi override characters")
    if len(value) > REPORT_TEXT_MAX:
        raise PydanticCustomError("too_long", "at most {max} characters", {"max": REPORT_TEXT_MAX})
    return value


class ReportForm(BaseModel):
    """What the widget's “Báo vi phạm” sends: `POST /v1/comments/{comment_id}/reports`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reason: ReportReason = Field(description="spam, offensive (xúc phạm), false (sai sự thật), unlawful (vi phạm "
                                             "pháp luật) or other (khác).")
    text: Annotated[StrictStr, Field(max_length=REPORT_TEXT_MAX * 2), AfterValidator(_report_text)] = Field(
        default="", description="What is wrong, in the reader's words (optional, at most 500 characters); "
                                "moderators only.")
    email: Email | None = Field(default=None, description="Optional: the reporter's email, so that the report "
                                                          "is part of that address's data export; never shown.")


class ReportAccepted(BaseModel):
    status: Literal["received"] = Field(default="received", description="Always `received`: a second report "
                                                                        "from the same reader is not counted "
                                                                        "again, and the answer does not say so.")


class ReaderReport(BaseModel):
    reason: ReportReason = Field(description="The reason chosen.")
    text: str = Field(description="The reader's words; empty when none.")
    reported_at: str = Field(description="When (ISO 8601, UTC).")


class ReportedComment(BaseModel):
    comment: ModeratorComment = Field(description="The comment, as moderators see it.")
    open_reports: int = Field(description="Readers who reported it since its reports were last resolved.")
    first_reported_at: str = Field(description="When the first of those reports came (ISO 8601, UTC).")
    waiting_seconds: float = Field(description="How long the first of those reports has waited.")
    reasons: dict[str, int] = Field(description="The open reports by reason.")
    reports: list[ReaderReport] = Field(description="The open reports, oldest first.")


class ReportedQueue(BaseModel):
    comments: list[ReportedComment] = Field(description="Comments with open reports: most reported first, then "
                                                        "the longest waiting.")
    total: int = Field(description="Comments with open reports in all.")


class ReportDecision(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    action: Literal["keep", "retract"] = Field(description="keep (the comment stays published; its reports are "
                                                           "dismissed) or retract (unpublish it).")
    reason: str = Field(default="", max_length=500, description="Why, for the comment's history (a retraction); "
                                                                "never shown to the public.")


class ReportOutcome(BaseModel):
    action: Literal["keep", "retract"] = Field(description="What was done.")
    resolved_reports: int = Field(description="The open reports resolved now (0 when none were open).")
    waited_seconds: float | None = Field(description="How long the first of them waited; null when none were "
                                                     "open.")
    comment: ModeratorComment = Field(description="The comment after the decision.")


class ReportStats(BaseModel):
    open: int = Field(description="Comments with open reports.")
    overdue: int = Field(description="Of these, how many have waited longer than `alert_hours`.")
    oldest_waiting_seconds: float | None = Field(description="How long the oldest open report has waited; null "
                                                             "when none is open.")
    alert_hours: int = Field(description="COMMENTS_REPORT_ALERT_HOURS: past this, a report is overdue.")
    time_to_decision: TimeToDecision = Field(description="Time from the first report to a decision (keep or "
                                                         "retract), median and 90th percentile.")


async def within_limit(scripts: Scripts, scope: str, subject: str, limit: tuple[int, int], detail: str) -> None:
    """Count one hit of `subject` in its fixed window (`lua/rate_limit.lua`); RateLimited past the limit."""
    count, window = limit
    hits, ttl_ms = await scripts.run("rate_limit", [keys.rate_limit(scope, subject, window)], [window * 1000])
    if int(hits) > count:
        raise RateLimited(detail, retry_after=max(1, math.ceil(int(ttl_ms) / 1000)))


class Reports:
    def __init__(self, scripts: Scripts, moderation: Moderation, secret: bytes, *, limit: tuple[int, int],
                 alert_hours: int, clock: Callable[[], int] | None = None) -> None:
        self.clock = clock or now_ms
        self.alert_hours = alert_hours
        self._scripts = scripts
        self._redis = scripts.redis
        self._moderation = moderation
        self._secret = secret
        self._limit = limit

    async def report(self, comment_id: str, form: ReportForm, client: str) -> bool:
        """Count a reader's report; True when it was counted (the client's first for this comment)."""
        await within_limit(self._scripts, "report", client, self._limit, "too many reports, try again later")
        partition = keys.partition_of_comment(comment_id)
        now = self.clock()
        digest = email_hash(self._secret, form.email) if form.email else "-"
        body = {"reason": form.reason, "text": form.text, "at": now}
        if form.email:
            body["email_hash"] = digest
        result = await self._scripts.run(
            "report", [keys.comment(comment_id), keys.reports(comment_id), keys.reported(partition),
                       keys.report_counts(partition), keys.reports_by_email(partition, digest)],
            [comment_id, client, orjson.dumps(body), now, "1" if form.email else ""])
        status = as_text(result[0])
        if status in ("missing", "not_approved"):  # a pending comment is not told from one that does not exist
            raise NotFound("no such comment")
        if status == "corrupt":
            raise corrupt(result[1])
        return status == "ok"

    async def _open(self) -> list[tuple[str, float, int]]:
        """(comment id, first report ms, open reports) of every partition's reported queue."""
        batch = self._scripts.batch()
        for p in range(keys.PARTITIONS):
            batch.command("ZRANGE", keys.reported(p), 0, QUEUE_SCAN_MAX - 1, "WITHSCORES")
        heads = [[(as_text(m), s) for m, s in scored(rows)] for rows in await batch.execute()]
        batch = self._scripts.batch()
        asked = [(p, entries) for p, entries in enumerate(heads) if entries]
        for p, entries in asked:
            batch.command("HMGET", keys.report_counts(p), *(i for i, _ in entries))
        found = []
        for (_, entries), counts in zip(asked, await batch.execute() if asked else [], strict=True):
            for (comment_id, first), count in zip(entries, counts, strict=True):
                found.append((comment_id, first, int(count or 0)))
        return found

    async def queue(self, limit: int) -> ReportedQueue:
        entries = await self._open()
        entries.sort(key=lambda e: (-e[2], e[1], e[0]))
        chosen = entries[:limit]
        records = {r.id: r for r in await self._moderation.records([i for i, _, _ in chosen])}
        batch = self._scripts.batch()
        for comment_id, _, _ in chosen:
            batch.command("HVALS", keys.reports(comment_id))
        now = self.clock()
        out = []
        for (comment_id, first, count), values in zip(chosen, await batch.execute() if chosen else [], strict=True):
            record = records.get(comment_id)
            if record is None:
                continue
            reports = sorted((ReaderReport(reason=r["reason"], text=r.get("text", ""), reported_at=iso(int(r["at"])))
                              for r in map(orjson.loads, values) if int(r["at"]) >= first),
                             key=lambda r: r.reported_at)
            reasons: dict[str, int] = {}
            for item in reports:
                reasons[item.reason] = reasons.get(item.reason, 0) + 1
            out.append(ReportedComment(comment=record, open_reports=count, first_reported_at=iso(int(first)),
                                       waiting_seconds=max(0.0, (now - first) / 1000), reasons=reasons,
                                       reports=reports))
        return ReportedQueue(comments=out, total=len(entries))

    async def resolve(self, who: Principal, comment_id: str, decision: ReportDecision) -> ReportOutcome:
        if decision.action == "retract":
            # Retracted already (by another moderator, a takedown): the reports still resolve.
            with contextlib.suppress(NotApproved):
                await self._moderation.retract(who, comment_id, decision.reason or RETRACT_REASON)
        records = await self._moderation.records([comment_id])
        if not records:
            raise NotFound("no such comment")
        resolved, waited = await self.resolve_reports(comment_id)
        return ReportOutcome(action=decision.action, resolved_reports=resolved, waited_seconds=waited,
                             comment=records[0])

    async def resolve_reports(self, comment_id: str) -> tuple[int, float | None]:
        """The comment's open reports resolved (`lua/reports_resolve.lua`): how many, and the first's wait."""
        partition = keys.partition_of_comment(comment_id)
        now = self.clock()
        result = await self._scripts.run(
            "reports_resolve", [keys.reported(partition), keys.report_counts(partition),
                                keys.report_latency(partition, now // 3_600_000)],
            [comment_id, now, STATS_TTL_SECONDS])
        status = as_text(result[0])
        if status == "corrupt":
            raise corrupt(result[1])
        if status != "ok":
            return 0, None
        return int(result[1]), max(0.0, (now - float(result[2])) / 1000)

    async def health(self) -> tuple[int, int, float | None]:
        """Comments with open reports, how many of them are overdue, and the oldest report's wait (seconds)."""
        entries = await self._open()
        now = self.clock()
        overdue_ms = self.alert_hours * 3_600_000
        oldest = min((first for _, first, _ in entries), default=None)
        return (len(entries), sum(1 for _, first, _ in entries if now - first > overdue_ms),
                None if oldest is None else max(0.0, (now - oldest) / 1000))

    async def stats(self) -> ReportStats:
        (count, overdue, oldest), timing = await asyncio.gather(self.health(), self._time_to_decision())
        return ReportStats(open=count, overdue=overdue, oldest_waiting_seconds=oldest, alert_hours=self.alert_hours,
                           time_to_decision=timing)

    async def _time_to_decision(self) -> TimeToDecision:
        hour = self.clock() // 3_600_000
        week = 7 * 24
        batch = self._scripts.batch()
        for p in range(keys.PARTITIONS):
            for h in range(hour - week + 1, hour + 1):
                batch.command("HGETALL", keys.report_latency(p, h))
        day: dict[str, int] = {}
        whole: dict[str, int] = {}
        for index, row in enumerate(await batch.execute()):
            recent = index % week >= week - 24
            pairs = row.items() if isinstance(row, dict) else zip(row[::2], row[1::2], strict=True)
            for bucket, count in pairs:
                name = as_text(bucket)
                whole[name] = whole.get(name, 0) + int(count)
                if recent:
                    day[name] = day.get(name, 0) + int(count)
        return TimeToDecision(day=wait_quantiles(day), week=wait_quantiles(whole))
