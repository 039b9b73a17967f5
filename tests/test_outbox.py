"""The outbox consumer and the durable job queue, against a real redis-server (`service.outbox`, `service.jobs`)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from service import keys
from service.jobs import JobQueue, Lease, NewJob, Outcome, QueueKeys, Result, backoff_seconds
from service.metrics import Metrics
from service.outbox import Entry, OutboxConsumer
from service.scripts import Scripts

#: A queue of this test's own, in a hash tag of its own (as email's will be).
QUEUE = QueueKeys(owners="cm:{t}:owners", due="cm:{t}:due", recent="cm:{t}:recent",
                  job=lambda job_id: f"cm:{{t}}:job:{job_id}")


class Killed(BaseException):
    """The process dies here: nothing after this point runs (not even an `except Exception`)."""


class Recorder:
    """A handler that remembers every entry it was given, and can fail or die on demand."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, dict[str, str]]] = []
        self.fail: BaseException | None = None

    async def __call__(self, partition: int, entries: list[Entry]) -> None:
        self.seen.extend((partition, entry_id, fields) for entry_id, fields in entries)
        if self.fail is not None:
            raise self.fail

    def ids(self) -> list[str]:
        return [entry_id for _, entry_id, _ in self.seen]


async def emit(redis: Redis, partition: int, n: int) -> str:
    entry = await redis.xadd(keys.outbox(partition), {"type": "comment.approved", "id": f"c{n}", "article": "a1",
                                                      "at": str(int(time.time() * 1000))})
    return entry.decode() if isinstance(entry, bytes) else entry


async def consumer(redis: Redis, name: str, handle: Recorder, **options: Any) -> OutboxConsumer:
    made = OutboxConsumer(redis, name, handle, **options)
    await made.start()
    return made


async def pending(redis: Redis, partition: int, group: str) -> int:
    summary: dict[str, Any] = await redis.xpending(keys.outbox(partition), group)
    return int(summary["pending"])


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# -- the outbox consumer -----------------------------------------------------------------------------------

async def test_every_group_gets_every_entry_from_its_start_on(redis: Redis) -> None:
    await redis.xadd(keys.outbox(0), {"type": "comment.submitted"})  # before the groups: never seen
    first, second = Recorder(), Recorder()
    one = await consumer(redis, "alpha", first)
    two = await consumer(redis, "beta", second)
    emitted = [await emit(redis, partition, n) for n, partition in enumerate([0, 3, 3, 15])]
    assert await one.consume_once() == 4
    assert await two.consume_once() == 4
    assert sorted(first.ids()) == sorted(second.ids()) == sorted(emitted)
    assert {(p, e) for p, e, _ in first.seen} == {(p, e) for p, e, _ in second.seen}
    assert first.seen[0][2]["type"] == "comment.approved"
    for partition in (0, 3, 15):
        assert await pending(redis, partition, "alpha") == await pending(redis, partition, "beta") == 0
    assert await one.consume_once() == await two.consume_once() == 0


async def test_an_entry_of_a_process_killed_before_its_ack_is_taken_over_once_stale(redis: Redis) -> None:
    doomed, survivor = Recorder(), Recorder()
    dead = await consumer(redis, "mail", doomed)
    live = await consumer(redis, "mail", survivor)
    entry = await emit(redis, 7, 1)
    doomed.fail = Killed()
    with pytest.raises(Killed):
        await dead.consume_once()  # handled, then killed before XACK
    assert doomed.ids() == [entry]
    assert await pending(redis, 7, "mail") == 1

    assert await live.consume_once() == 0  # not stale yet: its reader may still be working on it
    assert survivor.ids() == []
    live.stale_entry_ms, live.reclaim_every_seconds = 0, 0
    assert await live.consume_once() == 1
    assert survivor.ids() == [entry]  # at least once: handled by both, acknowledged once
    assert await pending(redis, 7, "mail") == 0
    assert await live.consume_once() == 0


async def test_a_failing_handler_is_retried_then_its_entry_buried(redis: Redis) -> None:
    metrics = Metrics()
    handler = Recorder()
    handler.fail = ValueError("cannot handle this")
    reader = await consumer(redis, "mail", handler, max_deliveries=2, metrics=metrics)
    reader.stale_entry_ms, reader.reclaim_every_seconds = 0, 0
    fine = await emit(redis, 2, 1)
    await reader.consume_once()  # delivery 1 fails: left pending
    assert await pending(redis, 2, "mail") == 1
    await reader.consume_once()  # taken over and handled again (delivery 2), fails again
    assert handler.ids() == [fine, fine]
    await reader.consume_once()  # given up: a copy goes to the dead letters
    assert handler.ids() == [fine, fine]
    assert await pending(redis, 2, "mail") == 0
    dead: Any = await redis.xrange(keys.outbox_dead(2, "mail"))
    [(_, fields)] = dead
    assert fields[b"entry"] == fine.encode() and fields[b"id"] == b"c1"
    assert sample(metrics, "comments_outbox_entries_total", group="mail", outcome="failed") == 2
    assert sample(metrics, "comments_outbox_entries_total", group="mail", outcome="dead") == 1
    assert sample(metrics, "comments_outbox_entries_total", group="mail", outcome="handled") == 0

    handler.fail = None  # a failure of one partition holds up no other, nor later entries
    later = await emit(redis, 2, 2)
    await reader.consume_once()
    assert handler.ids()[-1] == later
    assert sample(metrics, "comments_outbox_entries_total", group="mail", outcome="handled") == 1


async def test_without_a_limit_a_failing_entry_is_retried_until_handled(redis: Redis) -> None:
    handler = Recorder()
    handler.fail = ValueError("Redis data being repaired")
    reader = await consumer(redis, "mail", handler)
    reader.stale_entry_ms, reader.reclaim_every_seconds = 0, 0
    entry = await emit(redis, 4, 1)
    for _ in range(5):
        await reader.consume_once()
    handler.fail = None
    await reader.consume_once()
    assert handler.ids() == [entry] * 6
    assert await pending(redis, 4, "mail") == 0


async def test_metrics_count_handled_entries_and_the_lag(redis: Redis) -> None:
    metrics = Metrics()
    handler = Recorder()
    reader = await consumer(redis, "mail", handler, metrics=metrics)
    reader.stale_entry_ms, reader.reclaim_every_seconds = 0, 0
    minute_ago = int(time.time() * 1000) - 60_000
    await redis.xadd(keys.outbox(1), {"type": "comment.approved"}, id=f"{minute_ago}-0")
    for n in range(3):
        await emit(redis, n, n)
    assert await reader.consume_once() == 4
    assert sample(metrics, "comments_outbox_entries_total", group="mail", outcome="handled") == 4
    assert sample(metrics, "comments_outbox_lag_seconds", group="mail") >= 59  # measured as the round began
    await reader.consume_once()
    assert sample(metrics, "comments_outbox_lag_seconds", group="mail") == 0

    handler.fail = ValueError("failing")  # read but not handled: still behind
    await redis.xadd(keys.outbox(9), {"type": "comment.approved"}, id=f"{minute_ago}-0")
    await reader.consume_once()
    await reader.consume_once()
    assert sample(metrics, "comments_outbox_lag_seconds", group="mail") >= 59
    assert sample(metrics, "comments_outbox_entries_total", group="mail", outcome="failed") == 2


async def test_idle_consumers_are_pruned_unless_they_hold_entries(redis: Redis) -> None:
    reader = await consumer(redis, "mail", Recorder())
    stream = keys.outbox(5)
    await emit(redis, 5, 1)
    await redis.xreadgroup("mail", "holds-an-entry", {stream: ">"})
    await emit(redis, 5, 2)
    read: Any = await redis.xreadgroup("mail", "gone", {stream: ">"})
    await redis.xack(stream, "mail", read[0][1][0][0])
    await emit(redis, 5, 3)
    await reader.consume_once()  # its own name: never pruned
    assert await reader.prune_consumers(idle_ms=0) == 1
    names = {c["name"].decode() for c in await redis.xinfo_consumers(stream, "mail")}
    assert names == {"holds-an-entry", reader.consumer}


async def test_a_lost_stream_gets_its_group_back(redis: Redis) -> None:
    handler = Recorder()
    reader = await consumer(redis, "mail", handler)
    await redis.delete(keys.outbox(6))
    assert await reader.consume_once() == 0
    entry = await emit(redis, 6, 1)
    assert await reader.consume_once() == 1
    assert handler.ids() == [entry]


async def test_run_stops_when_cancelled(redis: Redis) -> None:
    handler = Recorder()
    reader = await consumer(redis, "mail", handler)
    task = asyncio.create_task(reader.run())
    entry = await emit(redis, 1, 1)
    await until(lambda: handler.ids() == [entry])
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


# -- the job queue -----------------------------------------------------------------------------------------

class Attempts:
    """An attempt function answering from a script of results, then success."""

    def __init__(self, *results: Result) -> None:
        self.results = list(results)
        self.leases: list[Lease] = []

    async def __call__(self, lease: Lease) -> Result:
        self.leases.append(lease)
        return self.results.pop(0) if self.results else Result(ok=True, status=250)


def queue(redis: Redis, attempt: Callable[[Lease], Awaitable[Result]], metrics: Metrics | None = None,
          **options: Any) -> JobQueue:
    settings: dict[str, Any] = {"max_attempts": 5, "backoff_base_seconds": 0.02, "lease_seconds": 30.0,
                                "done_ttl_seconds": 3600, "recent_keep": 100}
    return JobQueue(Scripts(redis), QUEUE, attempt, name="mail", metrics=metrics, **(settings | options))


async def job(redis: Redis, jobs: JobQueue, job_id: str = "j1") -> None:
    await redis.hset(QUEUE.owners, "owner-1", b'{"to": "lan@example.com"}')
    assert await jobs.enqueue([NewJob(job_id, "owner-1", "mail.approved", b"body")]) == 1


async def record(redis: Redis, job_id: str = "j1") -> dict[str, str]:
    raw: dict[Any, Any] = await redis.hgetall(QUEUE.job(job_id))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def until(condition: Callable[[], bool], *work: Callable[[], Awaitable[Any]], seconds: float = 10.0) -> None:
    """Run `work` (or just wait) until `condition` holds; fails the test if it never does."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        for step in work:
            await step()
        await asyncio.sleep(0.01)


async def test_a_job_is_created_once_and_only_for_an_owner(redis: Redis) -> None:
    jobs = queue(redis, Attempts())
    await job(redis, jobs)
    assert await jobs.enqueue([NewJob("j1", "owner-1", "mail.approved", b"other")]) == 0
    assert await jobs.enqueue([NewJob("j2", "nobody", "mail.approved", b"body")]) == 0
    assert (await record(redis))["body"] == "body"
    assert not await redis.exists(QUEUE.job("j2"))


async def test_failed_attempts_are_retried_with_doubling_backoff(redis: Redis) -> None:
    metrics = Metrics()
    attempts = Attempts(Result(ok=False, status=451, error="smtp_451"), Result(ok=False, error="timeout"))
    jobs = queue(redis, attempts, metrics)
    outcomes: list[tuple[str, Outcome]] = []
    jobs.on_outcome = lambda kind, outcome: outcomes.append((kind, outcome))
    await job(redis, jobs)
    waits: list[int] = []

    async def step() -> None:
        if await jobs.work_once():
            stored = await record(redis)
            if "next" in stored:
                waits.append(int(stored["next"]) - int(stored["updated"]))

    await until(lambda: outcomes[-1:] == [("mail.approved", "delivered")], step)
    assert [lease.attempt for lease in attempts.leases] == [1, 2, 3]
    assert {(lease.owner, lease.body) for lease in attempts.leases} == {(b'{"to": "lan@example.com"}', b"body")}
    # base * 2 ** (attempt - 1), ±10%
    assert len(waits) == 2
    for attempt, wait in enumerate(waits, start=1):
        assert 20 * 2 ** (attempt - 1) * 0.9 - 1 <= wait <= 20 * 2 ** (attempt - 1) * 1.1 + 1, waits
    stored = await record(redis)
    assert (stored["state"], stored["attempts"], stored["status"]) == ("delivered", "3", "250")
    assert await redis.zcard(QUEUE.due) == 0
    assert outcomes == [("mail.approved", "retrying")] * 2 + [("mail.approved", "delivered")]
    assert sample(metrics, "comments_jobs_total", queue="mail", outcome="retrying") == 2
    assert sample(metrics, "comments_jobs_total", queue="mail", outcome="delivered") == 1


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    state = random.getstate()
    for attempt, expected in [(1, 0.5), (2, 1.0), (5, 8.0), (20, 3600.0)]:
        for _ in range(20):
            assert expected * 0.9 <= backoff_seconds(0.5, attempt) <= expected * 1.1
    assert random.getstate() == state, "the jitter must not draw from the global random (Hypothesis checks it)"


async def test_a_job_failing_every_attempt_is_a_dead_letter(redis: Redis) -> None:
    metrics = Metrics()
    attempts = Attempts(*[Result(ok=False, status=550, error="smtp_550")] * 10)
    jobs = queue(redis, attempts, metrics, max_attempts=3)
    outcomes: list[Outcome] = []
    jobs.on_outcome = lambda _kind, outcome: outcomes.append(outcome)
    await job(redis, jobs)
    await until(lambda: outcomes[-1:] == ["failed"], jobs.work_once)
    assert outcomes == ["retrying", "retrying", "failed"]
    stored = await record(redis)
    assert (stored["state"], stored["attempts"], stored["error"]) == ("failed", "3", "smtp_550")
    assert 0 < await redis.ttl(QUEUE.job("j1")) <= 3600  # kept for the done TTL, to be looked at
    assert await redis.zscore(QUEUE.recent, "j1") is not None
    assert await redis.zcard(QUEUE.due) == 0
    assert await jobs.work_once() == 0
    assert len(attempts.leases) == 3
    assert sample(metrics, "comments_jobs_total", queue="mail", outcome="failed") == 1


async def test_an_attempt_whose_worker_died_is_made_again_after_its_lease(redis: Redis) -> None:
    attempts = Attempts()
    jobs = queue(redis, attempts, lease_seconds=2.0)
    await job(redis, jobs)
    [lost] = await jobs.lease(10)  # leased, then the worker died: nothing recorded
    assert await jobs.lease(10) == []  # nobody else takes it while the lease lives
    await until(lambda: len(attempts.leases) == 1, jobs.work_once)
    assert attempts.leases[0].attempt == lost.attempt + 1 == 2
    assert (await record(redis))["state"] == "delivered"
    assert await jobs.record(lost, Result(ok=False, error="late")) is None  # superseded: changes nothing
    assert (await record(redis))["state"] == "delivered"


async def test_a_job_whose_owner_is_gone_is_dropped(redis: Redis) -> None:
    attempts = Attempts()
    jobs = queue(redis, attempts)
    await job(redis, jobs)
    await redis.hdel(QUEUE.owners, "owner-1")
    assert await jobs.work_once() == 0
    assert attempts.leases == []
    assert not await redis.exists(QUEUE.job("j1"))
    assert await redis.zcard(QUEUE.due) == await redis.zcard(QUEUE.recent) == 0
