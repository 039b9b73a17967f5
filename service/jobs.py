"""A durable job queue in Redis: work items attempted at least once, retried with backoff, failed after a limit.

Each job is a hash (its owner, type, body, state, attempts, times), scheduled in a due zset (job id -> next
attempt ms) and listed in a recent zset (job id -> last change ms, for admin listings). Every key of one queue
shares a hash tag, so the three scripts run on a Redis Cluster:

- `job_enqueue` creates jobs once (ids are chosen by the caller, deterministically, so that creating the same
  work twice, e.g. from an outbox entry handled twice, creates nothing twice), only for owners that exist;
- `job_lease` takes due jobs for one attempt each (moves the score to now + lease and counts the attempt), so
  concurrent workers never make the same attempt twice; a job whose owner is gone is dropped;
- `job_record` records an attempt's outcome only if it is still the current attempt.

A failed attempt is retried after `backoff_seconds(base, attempt)`; after `max_attempts` the job is failed (a
dead letter: kept readable for `done_ttl_seconds`, with its last status and error). A worker killed mid-attempt
leaves its lease to run out, and the job is attempted again: whoever handles a job must tolerate a repeat.

A job's `state` field: pending (not attempted yet) -> retrying (an attempt failed, another is due at `next`)
-> delivered (an attempt succeeded) or failed (every attempt failed). The last two are final.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from service import tasks
from service.clock import now_ms
from service.metrics import Metrics
from service.scripts import Arg, Scripts, as_text

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS: Final = 3600.0
LEASE_BATCH: Final = 32
MAX_IN_FLIGHT: Final = 64
IDLE_SECONDS: Final = 0.2
ERROR_PAUSE_SECONDS: Final = 1.0

#: What a recorded attempt made of its job (its new `state`).
Outcome = Literal["delivered", "retrying", "failed"]


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The keys of one queue; all of them carry one hash tag."""

    #: owner id -> owner record: a job is created, and attempted, only while its owner is here.
    owners: str
    due: str
    recent: str
    job: Callable[[str], str]


@dataclass(frozen=True, slots=True)
class NewJob:
    id: str
    owner: str
    type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Lease:
    """One attempt at a job, as leased: the owner's record as the owners hash holds it."""

    id: str
    attempt: int
    owner: bytes
    type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Result:
    """What an attempt came to: `ok`, or the error class to record; `status` is the peer's answer, if any."""

    ok: bool
    status: int | None = None
    error: str = ""


#: Jitter and sampling from a generator of our own: the service leaves the global `random` untouched, so a library
#: or a test seeding or checking it (Hypothesis does) is not disturbed by a retry scheduled on another thread.
_RNG: Final = random.Random()


def backoff_seconds(base: float, attempt: int) -> float:
    """Delay after failed attempt `attempt` (1-based): doubling, capped at an hour, ±10% so retries spread."""
    delay = min(base * 2.0 ** min(attempt - 1, 60), MAX_BACKOFF_SECONDS)
    return delay * _RNG.uniform(0.9, 1.1)


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class JobQueue:
    """Attempts the jobs of one queue with `attempt`, keeping up to `MAX_IN_FLIGHT` attempts going."""

    def __init__(self, scripts: Scripts, keys: QueueKeys, attempt: Callable[[Lease], Awaitable[Result]], *,
                 name: str, max_attempts: int, backoff_base_seconds: float, lease_seconds: float,
                 done_ttl_seconds: int, recent_keep: int, metrics: Metrics | None = None) -> None:
        self._scripts = scripts
        self._redis = scripts.redis
        self.keys = keys
        self._attempt_job = attempt
        self.name = name
        self.max_attempts = max_attempts
        self.backoff_base_seconds = backoff_base_seconds
        self.lease_ms = int(lease_seconds * 1000)
        self.done_ttl_seconds = done_ttl_seconds
        self.recent_keep = recent_keep
        self._metrics = metrics
        #: Called once per recorded attempt with (job type, outcome).
        self.on_outcome: Callable[[str, Outcome], None] | None = None

    async def enqueue(self, jobs: Sequence[NewJob]) -> int:
        """Create the jobs not created yet, due now; returns how many were created."""
        if not jobs:
            return 0
        args: list[Arg] = [now_ms(), self.recent_keep]
        for job in jobs:
            args += [job.id, job.owner, job.type, job.body]
        created: int = await self._scripts.run(
            "job_enqueue", [self.keys.owners, self.keys.due, self.keys.recent, *(self.keys.job(j.id) for j in jobs)],
            args)
        return created

    async def lease(self, count: int) -> list[Lease]:
        now = now_ms()
        # Candidates are read outside the script (whose keys must all be known up front); the script leases only
        # those still due. Sampling from a wider window makes concurrent workers collide less.
        due: list[Any] = await self._redis.zrangebyscore(self.keys.due, "-inf", now, start=0, num=count * 4)
        candidates = [as_text(member) for member in due]
        if not candidates:
            return []
        if len(candidates) > count:
            candidates = _RNG.sample(candidates, count)
        result: list[Any] = await self._scripts.run(
            "job_lease", [self.keys.due, self.keys.owners, self.keys.recent, *map(self.keys.job, candidates)],
            [now, self.lease_ms, self.max_attempts, self.done_ttl_seconds, *candidates])
        return [Lease(as_text(job), int(attempt), _bytes(owner), as_text(kind), _bytes(body))
                for job, attempt, owner, kind, body in (result[i:i + 5] for i in range(0, len(result), 5))]

    async def record(self, lease: Lease, result: Result) -> Outcome | None:
        """Record the attempt's outcome; None if another attempt superseded it (its lease had run out)."""
        now = now_ms()
        next_ms = 0
        outcome: Outcome
        if result.ok:
            outcome = "delivered"
        elif lease.attempt >= self.max_attempts:
            outcome = "failed"
        else:
            outcome = "retrying"
            next_ms = now + int(backoff_seconds(self.backoff_base_seconds, lease.attempt) * 1000)
        recorded = await self._scripts.run(
            "job_record", [self.keys.job(lease.id), self.keys.due, self.keys.recent],
            [lease.id, lease.attempt, outcome, next_ms, "" if result.status is None else result.status,
             result.error, now, self.done_ttl_seconds, self.recent_keep])
        if not recorded:
            log.info("%s job %s attempt %d was superseded", self.name, lease.id, lease.attempt)
            return None
        if outcome != "delivered":
            log.warning("%s job %s attempt %d: %s -> %s", self.name, lease.id, lease.attempt, result.error, outcome)
        if self._metrics is not None:
            self._metrics.jobs.labels(self.name, outcome).inc()
        if self.on_outcome is not None:
            self.on_outcome(lease.type, outcome)
        return outcome

    async def attempt(self, lease: Lease) -> None:
        """Make one leased attempt and record it. If it cannot be recorded, the lease runs out and the job is
        attempted again."""
        try:
            await self.record(lease, await self._attempt_job(lease))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s job %s attempt %d could not be recorded", self.name, lease.id, lease.attempt)

    async def work_once(self) -> int:
        """Attempt the jobs due now (up to a batch), concurrently; returns how many were attempted."""
        leases = await self.lease(LEASE_BATCH)
        await asyncio.gather(*map(self.attempt, leases))
        return len(leases)

    async def run(self) -> None:
        """Keep up to `MAX_IN_FLIGHT` attempts going until cancelled, so one slow attempt holds up no other."""
        in_flight: set[asyncio.Task[None]] = set()

        async def lease_more() -> int:
            free = MAX_IN_FLIGHT - len(in_flight)
            if free <= 0:
                return 0
            leases = await self.lease(min(free, LEASE_BATCH))
            for lease in leases:
                task = asyncio.create_task(self.attempt(lease))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            return len(leases)

        try:
            await tasks.forever(f"{self.name} jobs", lease_more, idle_seconds=IDLE_SECONDS,
                                error_pause_seconds=ERROR_PAUSE_SECONDS)
        finally:
            # Interrupted attempts are made again once their lease runs out.
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
