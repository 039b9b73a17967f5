"""Outbox consumers: background readers of the outbox, each in its own consumer group, at least once.

The outbox is one stream per partition (`keys.outbox(p)`), written by the Lua scripts in the same step as the
change it reports (`comment.submitted`, `comment.approved`...). A consumer (webhooks; email next) reads every
partition's stream in its consumer group (`keys.outbox_group(name)`), so each consumer gets every entry, and
acknowledges an entry only after its handler returned:

- new entries are read with XREADGROUP, one consumer name per process (`new_consumer_name`);
- entries a process read but never acknowledged (it died, or its handler failed) are taken over with XAUTOCLAIM
  once `stale_entry_ms` old, so a handler must tolerate a repeat (make what it writes idempotent, e.g. the
  deterministic job ids of `service.jobs`);
- with `max_deliveries`, an entry handled and failed that many times is given up: copied to
  `keys.outbox_dead(p, group)`, acknowledged and counted `dead`; without it, such an entry is retried for ever;
- consumer names of processes long gone are removed (`prune_consumers`) when they hold nothing;
- metrics: entries handled, failed (retried later) and dead by group, and the group's lag (the age of its
  oldest entry not handled yet).

The group is created at `$` by `start`: a new consumer gets the events from then on, never older ones. A stream
that vanished (a flushed Redis) is recreated with its group on the next read.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeAlias

from redis.exceptions import RedisError, ResponseError

from service import keys, tasks
from service.connections import RedisClient
from service.metrics import Metrics
from service.scripts import as_text

log = logging.getLogger(__name__)

#: An entry read but not acknowledged for this long belongs to a process that died, or failed to handle it.
STALE_ENTRY_MS: Final = 30_000
#: How often a consumer looks for such entries (XAUTOCLAIM on every partition) and measures its lag.
RECLAIM_EVERY_SECONDS: Final = 5.0
#: Every process start adds a consumer name to the group; names idle this long with nothing pending are removed.
CONSUMER_IDLE_MS: Final = 86_400_000
PRUNE_EVERY_SECONDS: Final = 600.0
READ_BATCH: Final = 100
IDLE_SECONDS: Final = 0.2
ERROR_PAUSE_SECONDS: Final = 1.0
#: Each dead-letter stream keeps about this many of the newest entries.
DEAD_KEEP: Final = 10_000

#: An outbox entry: its id and its fields.
Entry: TypeAlias = tuple[str, dict[str, str]]
#: Handles the new entries of one partition; returning acknowledges them, raising leaves them to be retried.
Handler: TypeAlias = Callable[[int, list[Entry]], Awaitable[None]]


def new_consumer_name() -> str:
    """Unique per process, so each process's unacknowledged entries can be told apart and taken over."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class OutboxConsumer:
    """Reads every partition's outbox in the consumer group `keys.outbox_group(name)` and hands the entries of
    each partition to `handle`."""

    def __init__(self, redis: RedisClient, name: str, handle: Handler, *, max_deliveries: int | None = None,
                 metrics: Metrics | None = None) -> None:
        self._redis = redis
        self.name = name
        self.group = keys.outbox_group(name)
        self._handle = handle
        self.consumer = new_consumer_name()
        self.max_deliveries = max_deliveries
        self._metrics = metrics
        #: Tests lower these to take over entries of a "dead" process at once.
        self.stale_entry_ms = STALE_ENTRY_MS
        self.reclaim_every_seconds = RECLAIM_EVERY_SECONDS
        self._last_reclaim = float("-inf")
        self._last_prune = time.monotonic()

    async def start(self) -> None:
        """Create the group on every partition at `$` (a group that exists keeps its position)."""
        for partition in range(keys.PARTITIONS):
            await self._create_group(keys.outbox(partition))

    async def run(self) -> None:
        """Consume until cancelled; Redis trouble and failing handlers are logged and waited out."""
        await tasks.forever(f"outbox consumer {self.name}", self.consume_once, idle_seconds=IDLE_SECONDS,
                            error_pause_seconds=ERROR_PAUSE_SECONDS)

    async def consume_once(self) -> int:
        """Read new (and abandoned) entries of every partition and handle them; returns how many were read."""
        reclaim = time.monotonic() - self._last_reclaim >= self.reclaim_every_seconds
        if reclaim:
            await self._measure_lag()
            if self.max_deliveries is not None:
                for partition in range(keys.PARTITIONS):
                    await self._bury(partition)
        pipe = self._redis.pipeline(transaction=False)
        for partition in range(keys.PARTITIONS):
            stream = keys.outbox(partition)
            if reclaim:
                pipe.xautoclaim(stream, self.group, self.consumer, self.stale_entry_ms, "0-0", count=READ_BATCH)
            # No BLOCK: the client's socket timeout is short; the idle loop polls instead.
            pipe.xreadgroup(self.group, self.consumer, {stream: ">"}, count=READ_BATCH)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        if reclaim:
            self._last_reclaim = time.monotonic()
        if time.monotonic() - self._last_prune >= PRUNE_EVERY_SECONDS:
            self._last_prune = time.monotonic()
            await self.prune_consumers()
        per_partition = 2 if reclaim else 1
        read = 0
        for partition in range(keys.PARTITIONS):
            entries = await self._entries(partition, results[partition * per_partition:(partition + 1) * per_partition])
            if entries:
                await self._handle_partition(partition, entries)
                read += len(entries)
        return read

    async def _entries(self, partition: int, results: list[Any]) -> list[tuple[str, dict[str, str] | None]]:
        """The entries of one partition's replies (XAUTOCLAIM, XREADGROUP)."""
        entries: list[tuple[str, dict[str, str] | None]] = []
        for result in results:
            if isinstance(result, ResponseError) and "NOGROUP" in str(result):
                # The stream (and its group) vanished, e.g. a flushed or failed-over Redis.
                log.warning("outbox %d had no consumer group %s; creating it at $", partition, self.group)
                await self._create_group(keys.outbox(partition))
            elif isinstance(result, Exception):
                raise result
            else:
                entries.extend(_stream_entries(result))
        return entries

    async def _handle_partition(self, partition: int, entries: list[tuple[str, dict[str, str] | None]]) -> None:
        live: dict[str, dict[str, str]] = {}
        for entry_id, fields in entries:  # an entry reclaimed and read in one round comes twice
            if fields is not None:  # None: trimmed from the stream before anyone handled it
                live.setdefault(entry_id, fields)
        try:
            if live:
                await self._handle(partition, list(live.items()))
        except RedisError:
            raise
        except Exception:
            # Left unacknowledged: taken over (by this process or another) once stale.
            log.exception("outbox consumer %s failed on %d entries of partition %d", self.name, len(live), partition)
            self._count("failed", len(live))
            return
        await self._redis.xack(keys.outbox(partition), self.group, *{entry_id for entry_id, _ in entries})
        self._count("handled", len(live))

    async def _bury(self, partition: int) -> None:
        """Give up the stale entries delivered `max_deliveries` times: a copy goes to the dead-letter stream."""
        assert self.max_deliveries is not None
        stream = keys.outbox(partition)
        try:
            pending: list[dict[str, Any]] = await self._redis.xpending_range(
                stream, self.group, min="-", max="+", count=READ_BATCH, idle=self.stale_entry_ms)
        except ResponseError:  # no stream or no group yet
            return
        dead = [as_text(item["message_id"]) for item in pending if item["times_delivered"] >= self.max_deliveries]
        for entry_id in dead:
            found = _stream_entries([[stream, await self._redis.xrange(stream, entry_id, entry_id)]])
            fields = found[0][1] if found else None
            if fields is not None:
                letter: dict[Any, Any] = {"entry": entry_id, **fields}
                await self._redis.xadd(keys.outbox_dead(partition, self.group), letter, maxlen=DEAD_KEEP,
                                       approximate=True)
            await self._redis.xack(stream, self.group, entry_id)
            log.error("outbox consumer %s gave up entry %s of partition %d after %d deliveries", self.name,
                      entry_id, partition, self.max_deliveries)
        self._count("dead", len(dead))

    async def _measure_lag(self) -> None:
        """How far behind the group is: the age of its oldest entry not handled yet (unread, or read and not
        acknowledged), over every partition; 0 when it is caught up. Redis 6.2 has no XINFO `lag`, and an age
        says more than a count anyway ("mail is ten minutes behind")."""
        if self._metrics is None:
            return
        pipe = self._redis.pipeline(transaction=False)
        for partition in range(keys.PARTITIONS):
            pipe.xinfo_groups(keys.outbox(partition))
            pipe.xpending(keys.outbox(partition), self.group)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        oldest: list[int] = []
        pipe = self._redis.pipeline(transaction=False)
        for partition, (groups, summary) in enumerate(zip(replies[::2], replies[1::2], strict=True)):
            if isinstance(groups, Exception) or isinstance(summary, Exception):
                continue  # no stream or no group yet: nothing behind
            if summary["pending"]:
                oldest.append(_entry_ms(summary["min"]))
            last = next((group["last-delivered-id"] for group in groups if as_text(group["name"]) == self.group),
                        None)
            if last is not None:
                pipe.xrange(keys.outbox(partition), f"({as_text(last)}", "+", count=1)
        for unread in await pipe.execute(raise_on_error=False):
            if unread and not isinstance(unread, Exception):
                oldest.append(_entry_ms(unread[0][0]))
        lag = max(0.0, time.time() - min(oldest) / 1000) if oldest else 0.0
        self._metrics.outbox_lag.labels(self.group).set(lag)

    def _count(self, outcome: str, n: int) -> None:
        if self._metrics is not None and n:
            self._metrics.outbox_entries.labels(self.group, outcome).inc(n)

    async def prune_consumers(self, idle_ms: int = CONSUMER_IDLE_MS) -> int:
        """Forget consumers of processes long gone. Only those with nothing pending: deleting a consumer drops
        its pending entries, which then could never be reclaimed. A live one is idle for at most a poll, and
        would be recreated by its next read anyway."""
        removed = 0
        for partition in range(keys.PARTITIONS):
            stream = keys.outbox(partition)
            try:
                consumers: list[dict[str, Any]] = await self._redis.xinfo_consumers(stream, self.group)
            except ResponseError:  # no stream or no group yet
                continue
            for consumer in consumers:
                name = as_text(consumer["name"])
                if name != self.consumer and not consumer["pending"] and consumer["idle"] >= idle_ms:
                    await self._redis.xgroup_delconsumer(stream, self.group, name)
                    removed += 1
        return removed

    async def _create_group(self, stream: str) -> None:
        try:
            await self._redis.xgroup_create(stream, self.group, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def _entry_ms(entry_id: bytes | str) -> int:
    return int(as_text(entry_id).partition("-")[0])


def _stream_entries(result: Any) -> list[tuple[str, dict[str, str] | None]]:
    """Entries of an XREADGROUP / XAUTOCLAIM / XRANGE-in-a-stream reply, whatever response shape the client uses:
    (entry id, fields, or None for an entry trimmed away)."""
    if not result:
        return []
    if isinstance(result, dict):
        streams = list(result.values())
    elif isinstance(result[0], (bytes, str)):  # XAUTOCLAIM: [next start, entries, deleted ids]
        streams = [result[1]]
    else:
        streams = [item[1] for item in result]
    out: list[tuple[str, dict[str, str] | None]] = []
    for entries in streams:
        if entries and isinstance(entries[0], list) and entries[0] and isinstance(entries[0][0], tuple):
            entries = entries[0]  # RESP3 legacy shape wraps the list once more
        for entry_id, fields in entries or []:
            if entry_id is None:
                continue
            decoded = None if fields is None else {as_text(k): as_text(v) for k, v in fields.items()}
            out.append((as_text(entry_id), decoded))
    return out
