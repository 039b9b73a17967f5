"""Retention: how long what readers sent is kept.

- Rejected and spam comments are deleted (`erase.lua`'s purge: record, history, reports, every list and index)
  `retention_rejected_days` after their decision.
- The IP hash of a decided comment (approved, rejected, spam, retracted) is dropped `retention_ip_days` after its
  last decision (`erase.lua`'s strip_ip). Each partition remembers up to which decision time it has done so
  (`keys.retention_ip_mark`), so a run reads only the decisions since the last one.
- Pending comments are never deleted; those older than `retention_pending_days` are counted (the metric
  `comments_pending_overdue`, and every run's report).

`plan` finds what a run removes; `run(dry_run=True)` answers that plan and changes nothing, `run()` carries the
same plan out, each comment atomically, and writes it to the privacy log. The background job (`run_forever`)
runs on one worker at a time: the worker that sets the lock `keys.retention_lock()` (SET NX with a TTL of one
interval) runs, and nobody runs again until the lock expires. A run that outlasts its interval may overlap the
next one; erase.lua is idempotent, so that costs time, not data.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import orjson
from pydantic import BaseModel, ConfigDict, Field

from service import keys, tasks
from service.clock import now_ms
from service.models import iso
from service.privacy import Privacy
from service.scripts import Scripts, as_text

log = logging.getLogger(__name__)

DAY_MS: Final = 86_400_000
#: Who the history and the privacy log name as having run it.
RUN_BY: Final = "retention"
#: How often each worker asks for the lock, at most (seconds).
LOCK_POLL_SECONDS: Final = 60.0
#: Decisions read per round trip while planning.
PLAN_PAGE: Final = 1000


class RetentionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    dry_run: bool = Field(default=False, description="True: only list what a run would remove.")


class RetentionReport(BaseModel):
    dry_run: bool = Field(description="True when nothing was changed: the lists say what a run would remove.")
    at: str = Field(description="When the run (or the plan) was made (ISO 8601, UTC).")
    deleted: list[str] = Field(description="Rejected and spam comments deleted (or to delete): decided more "
                                           "than `rejected_days` ago.")
    ip_dropped: list[str] = Field(description="Decided comments whose IP hash was dropped (or is to be): decided "
                                              "more than `ip_days` ago.")
    pending_overdue: int = Field(description="Pending comments older than `pending_days` (never deleted).")
    rejected_days: int = Field(description="COMMENTS_RETENTION_REJECTED_DAYS.")
    ip_days: int = Field(description="COMMENTS_RETENTION_IP_DAYS.")
    pending_days: int = Field(description="COMMENTS_RETENTION_PENDING_DAYS.")


@dataclass(frozen=True, slots=True)
class Plan:
    deleted: list[str]
    ip_dropped: list[str]
    pending_overdue: int
    #: The decision ms up to which IP hashes are dropped once this plan is carried out (every partition).
    ip_cutoff: int
    rejected_cutoff: int


class Retention:
    def __init__(self, scripts: Scripts, privacy: Privacy, *, rejected_days: int, ip_days: int, pending_days: int,
                 clock: Callable[[], int] | None = None) -> None:
        self.clock = clock or now_ms
        self.rejected_days = rejected_days
        self.ip_days = ip_days
        self.pending_days = pending_days
        self._scripts = scripts
        self._redis = scripts.redis
        self._privacy = privacy
        #: Pending comments past `pending_days` at the last plan (for the metric).
        self.pending_overdue = 0

    async def _range(self, key: str, low: str, high: int) -> list[str]:
        ids: list[str] = []
        offset = 0
        while True:
            rows = await self._redis.execute_command("ZRANGEBYSCORE", key, low, high, "LIMIT", offset, PLAN_PAGE)
            ids.extend(as_text(i) for i in rows)
            if len(rows) < PLAN_PAGE:
                return ids
            offset += PLAN_PAGE

    async def pending_overdue_count(self) -> int:
        """Pending comments older than `pending_days` now (for the metric, at scrape time)."""
        cutoff = self.clock() - self.pending_days * DAY_MS
        batch = self._scripts.batch()
        for p in range(keys.PARTITIONS):
            batch.command("ZCOUNT", keys.pending(p), "-inf", cutoff)
        self.pending_overdue = sum(int(n) for n in await batch.execute())
        return self.pending_overdue

    async def plan(self) -> Plan:
        now = self.clock()
        rejected_cutoff = now - self.rejected_days * DAY_MS
        ip_cutoff = now - self.ip_days * DAY_MS
        deleted: list[str] = []
        candidates: list[str] = []
        batch = self._scripts.batch()
        for p in range(keys.PARTITIONS):
            batch.command("GET", keys.retention_ip_mark(p))
            batch.command("ZCOUNT", keys.pending(p), "-inf", now - self.pending_days * DAY_MS)
        heads = await batch.execute()
        marks = [int(heads[2 * p]) if heads[2 * p] else None for p in range(keys.PARTITIONS)]
        overdue = sum(int(heads[2 * p + 1]) for p in range(keys.PARTITIONS))
        for p in range(keys.PARTITIONS):
            for state in ("rejected", "spam"):
                deleted.extend(await self._range(keys.state_index(p, state), "-inf", rejected_cutoff))
            low = "-inf" if marks[p] is None else f"({marks[p]}"
            for state in keys.DECIDED_STATES:
                candidates.extend(await self._range(keys.state_index(p, state), low, ip_cutoff))
        doomed = set(deleted)
        candidates = [i for i in dict.fromkeys(candidates) if i not in doomed]
        ip_dropped = []
        for start in range(0, len(candidates), PLAN_PAGE):
            chunk = candidates[start:start + PLAN_PAGE]
            batch = self._scripts.batch()
            for comment_id in chunk:
                batch.command("HGET", keys.comment(comment_id), "d")
            for comment_id, raw in zip(chunk, await batch.execute(), strict=True):
                if raw is not None and orjson.loads(raw).get("ip_hash"):
                    ip_dropped.append(comment_id)
        self.pending_overdue = overdue
        return Plan(deleted=sorted(deleted), ip_dropped=sorted(ip_dropped), pending_overdue=overdue,
                    ip_cutoff=ip_cutoff, rejected_cutoff=rejected_cutoff)

    async def run(self, *, dry_run: bool = False) -> RetentionReport:
        plan = await self.plan()
        deleted, dropped = plan.deleted, plan.ip_dropped
        if not dry_run:
            deleted = [i for i in plan.deleted
                       if await self._privacy.erase_comment(i, "purge", RUN_BY, plan.rejected_cutoff) == "ok"]
            dropped = [i for i in plan.ip_dropped
                       if await self._privacy.erase_comment(i, "strip_ip", RUN_BY) == "ok"]
            batch = self._scripts.batch()
            for p in range(keys.PARTITIONS):
                batch.command("SET", keys.retention_ip_mark(p), plan.ip_cutoff)
            await batch.execute()
            if deleted:
                await self._privacy.record("retention", "purge", RUN_BY, RUN_BY, deleted)
            if dropped:
                await self._privacy.record("retention", "strip_ip", RUN_BY, RUN_BY, dropped)
        return RetentionReport(dry_run=dry_run, at=iso(self.clock()), deleted=deleted, ip_dropped=dropped,
                               pending_overdue=plan.pending_overdue, rejected_days=self.rejected_days,
                               ip_days=self.ip_days, pending_days=self.pending_days)

    async def run_if_due(self, interval_seconds: int) -> RetentionReport | None:
        """A run, when this worker gets the lock (nobody ran within the interval); else None."""
        token = secrets.token_hex(8)
        if not await self._redis.set(keys.retention_lock(), token, nx=True, px=interval_seconds * 1000):
            return None
        report = await self.run()
        log.info("retention: %d comments deleted, %d IP hashes dropped, %d pending past %d days",
                 len(report.deleted), len(report.ip_dropped), report.pending_overdue, self.pending_days)
        return report

    async def run_forever(self, interval_seconds: int) -> None:
        # Not at once: a worker that starts (or restarts) does not run before it has served a while.
        await asyncio.sleep(min(LOCK_POLL_SECONDS, interval_seconds))
        while True:
            try:
                await self.run_if_due(interval_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away, a damaged record: try again next round
                log.warning("retention run failed", exc_info=True)
            tasks.raise_if_cancelled()
            await asyncio.sleep(min(LOCK_POLL_SECONDS, interval_seconds))

