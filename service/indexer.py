"""The search indexer: writes the terms of stored comments into the compact search index, in batches, after the
submission (`service.search` documents the index).

A submission's store gives its comment a number n and a slot in the partition's n -> comment map, in its own
atomic step, and nothing more: writing its ~50 terms there cost ten times the rest of the store. Here, in the
worker holding the indexer's lease (`keys.search_indexer_lease`: every worker runs the loop, one indexes), a
background loop (`run`, every `INTERVAL_SECONDS` or when woken) looks at each partition's last n and its watermark
`done` (`keys.search_done`), and for a partition behind reads the slots of (done, done + BATCH], the records (one
lua/index_read.lua call), computes each record's terms in Python (`search.record_terms`, as readers compute them)
and groups them by term; lua/index_batch.lua then adds each term's n's in one command and moves `done`, atomically.
While its worker is busy serving requests, the loop gives way: it indexes only a partition `BUSY_LAG` or more
behind or behind for `BUSY_WAIT_SECONDS`, and the rest once the worker is quiet (`Indexer.busy`).

Several indexers (a worker whose lease ran out, `catch_up` callers) may run at once: the script refuses a batch
whose `done` is no longer the one read (another went first) or one of whose records changed since it was read (an
erasure: its `d` and `er`), and the batch is read again. A damaged key refuses the batch with nothing written
(`StorageCorrupt`); that partition stays behind (readers still find its comments through the tail, bounded) and
the others go on. Readers never wait for this: they read the unindexed tail from the map and the records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from redis.exceptions import RedisError, ResponseError

from service import keys, search
from service.errors import StorageCorrupt
from service.scripts import Arg, Scripts, as_text, corrupt
from service.tasks import raise_if_cancelled

if TYPE_CHECKING:
    from service.metrics import Metrics

log = logging.getLogger(__name__)

#: Comments one index_batch.lua call covers: enough that a common term's n's of the batch go in one command, few
#: enough that the script stays short (Redis answers nobody else meanwhile): about 60-70 µs of Redis CPU a comment
#: of the bench's text on a loaded machine (docs/benchmarks.md, "lua/index_batch.lua"), so 64 comments hold it for
#: a few ms.
BATCH: Final = 64
#: How often each worker looks for comments to index when it found none.
INTERVAL_SECONDS: Final = 0.2
ERROR_PAUSE_SECONDS: Final = 2.0
#: The idle wait's jitter, from a generator of our own so the global `random` is never touched (see jobs._RNG).
_RNG: Final = random.Random()
#: While its worker serves more than `BUSY_READS_PER_SECOND` (reads of request bytes, about one a request), the
#: background indexer gives way to the requests: it indexes a partition only once `BUSY_LAG` of its comments wait
#: (searches find them meanwhile through their records: `search.TAIL_MAX` a partition at most), so under a burst
#: the indexing waits for the loop's quiet moments, and under a sustained load it keeps each partition's tail at
#: about `BUSY_LAG` (docs/benchmarks.md, "indexer: giving way").
BUSY_READS_PER_SECOND: Final = 200
BUSY_LAG: Final = 512
#: ... yet never lets a partition's comments wait longer than this while its worker stays busy: under a sustained
#: load (not a burst) the tail that every search reads from the records stays what a few seconds bring.
BUSY_WAIT_SECONDS: Final = 5.0
#: The background indexer's lease (`keys.search_indexer_lease`): one worker of a deployment indexes at a time.
#: Each worker's indexer racing for the same batches (the loser's reads and planning refused as "moved") cost
#: about 150-170 µs of Python a comment with two of them against 80-100 µs for one (docs/benchmarks.md,
#: "indexer lease"). The lease lives `LEASE_MS`, renewed every `LEASE_RENEW_SECONDS` while its holder runs; a worker
#: without it asks every `LEASE_POLL_SECONDS`, so a holder that stops is replaced within a few seconds. The index
#: stays right without the lease (index_batch.lua refuses a batch another indexer wrote first): a lease that runs
#: out while its holder is slow costs only a batch done twice.
LEASE_MS: Final = 3000
LEASE_RENEW_SECONDS: Final = 1.0
LEASE_POLL_SECONDS: Final = 1.0


class _WordTerms(dict[str, tuple[str, str]]):
    """One partition's index word -> its term key and that key's bucket (`keys.word_index`, `keys.search_bucket`),
    made once per process: a batch holds about 200 distinct terms, whose key and bucket (a crc32) cost more than
    the rest of its planning when made each time (docs/benchmarks.md, `indexer.plan_batch`). Bounded."""

    def __init__(self, partition: int) -> None:
        super().__init__()
        self.partition = partition

    def __missing__(self, word: str) -> tuple[str, str]:
        if len(self) >= _CACHED_WORDS:
            self.clear()
        key = keys.word_index(self.partition, word)
        terms = self[word] = (key, keys.search_bucket(key))
        return terms


_CACHED_WORDS: Final = 16384
_WORD_TERMS: Final = tuple(_WordTerms(p) for p in range(keys.PARTITIONS))


def plan_batch(partition: int, done: int, top: int, slots: dict[int, tuple[str, int]],
               rows: Sequence[Sequence[Any]]) -> tuple[list[str], list[Arg]]:
    """index_batch.lua's KEYS and ARGV for the comments (done, top] of a partition: `slots`, their map entries
    (n -> (id, submitted ms), empty slots left out), `rows`, each slot's record as HMGET d er n (in `slots`'
    order). A record that is gone is checked to stay gone; one whose `n` is another (a stale slot) is left out.

    What `keys.index_batch_keys` and `search.record_terms` would give, made in one pass (tests/test_index_planning.py
    checks them against that plain form): each term's n's are grouped by the word itself (a word has no `:`, so
    it is never taken for a sender's or an address's key), and each distinct word's key and bucket come from
    `_WordTerms`."""
    record_keys: list[str] = [keys.search_done(partition)]
    states: list[Arg] = [done, top, 0]
    by_term: defaultdict[str, list[bytes]] = defaultdict(list)
    ascending = True
    previous = 0
    for (n, (comment_id, _)), (raw, erased, number) in zip(slots.items(), rows, strict=True):
        if raw is None and erased is None and number is None:
            record_keys.append(keys.comment(comment_id))
            states.append("")
            continue
        if number is None or not as_text(number).isdigit() or int(number) != n:
            continue
        record_keys.append(keys.comment(comment_id))
        states.append(f"{len(raw or b'')}:{as_text(erased) if erased is not None else ''}")
        fields = search.record_fields(raw)
        if fields is None:
            continue
        email_digest, ip_hash, words = fields
        code = n.to_bytes(3, "big")  # search.encode_ns
        ascending = ascending and n > previous
        previous = n
        if email_digest:
            by_term[keys.by_email(partition, email_digest)].append(code)
        if ip_hash:
            by_term[keys.by_ip(partition, ip_hash)].append(code)
        for word in words:
            by_term[word].append(code)
    states[2] = len(states) - 3
    word_terms = _WORD_TERMS[partition]
    script_keys = record_keys
    args = states
    for term, codes in by_term.items():
        if ":" in term:  # a sender's or an address's key
            script_keys += (term, keys.search_bucket(term))
        else:
            script_keys += word_terms[term]
        args.append(b"".join(codes if ascending else sorted(codes)))
    return script_keys, args


class Indexer:
    def __init__(self, scripts: Scripts, *, batch: int = BATCH, metrics: Metrics | None = None,
                 interval_seconds: float = INTERVAL_SECONDS, activity: Callable[[], int] | None = None,
                 busy_wait_seconds: float = BUSY_WAIT_SECONDS) -> None:
        """`activity`: the worker's count of request reads so far (`server.ACTIVITY`), for `run` to give way to
        requests while it climbs fast; None: never busy. `busy_wait_seconds`: how long a partition behind waits
        for a busy worker at most."""
        self._scripts = scripts
        self._batch = batch
        self._metrics = metrics
        self._interval = interval_seconds
        self._woken = asyncio.Event()
        self._activity = activity
        self._looked = (0.0, 0)
        self._token = secrets.token_hex(8)
        self._holding = False
        self._renewed = 0.0
        self._busy_wait = busy_wait_seconds
        #: Partition -> when a step first found it behind and left it (`least`): it waits `busy_wait` at most.
        self._waiting_since: dict[int, float] = {}

    async def positions(self, partitions: Sequence[int]) -> list[tuple[int, int]]:
        """Each partition's (done, last n), in one round trip."""
        batch = self._scripts.batch()
        for p in partitions:
            batch.command("GET", keys.search_done(p))
            batch.command("GET", keys.search_seq(p))
        try:
            raw = await batch.execute()
        except ResponseError as exc:
            raise corrupt("wrong_type:search_seq") from exc
        out = []
        for i in range(len(partitions)):
            done, last = raw[2 * i], raw[2 * i + 1]
            if not all(v is None or as_text(v).isdigit() for v in (done, last)):
                raise corrupt("not_integer:search_seq")
            out.append((int(done or 0), int(last or 0)))
        return out

    async def lag(self) -> int:
        """Comments stored and not indexed yet, over every partition."""
        return sum(max(0, last - done) for done, last in await self.positions(range(keys.PARTITIONS)))

    async def index_batch(self, partition: int, done: int, last: int) -> int:
        """Index the partition's comments (done, min(last, done + batch)]: how many n's that covered; 0 when
        another indexer moved `done` first or a record changed meanwhile (the caller reads again)."""
        top = min(last, done + self._batch)
        if top <= done:
            return 0
        slots = await search.Index(self._scripts).slots(partition, range(done + 1, top + 1))
        rows: list[Sequence[Any]] = []
        if slots:
            # One script call for the records (a record of the wrong type: StorageCorrupt, as index_batch.lua
            # would refuse it), not an HMGET each: redis-py's cost of 64 commands was most of the read.
            record_keys = [keys.comment(comment_id) for comment_id, _ in slots.values()]
            raw = await self._scripts.run("index_read", record_keys, ())
            rows = [raw[i:i + 3] for i in range(0, len(raw), 3)]
        script_keys, args = plan_batch(partition, done, top, slots, rows)
        result = await self._scripts.run("index_batch", script_keys, args)
        status = as_text(result[0])
        if status == "ok":
            return top - done
        if status == "corrupt":
            raise corrupt(result[1])
        return 0  # "moved" or "changed"

    async def catch_up(self, partitions: Iterable[int] | None = None) -> int:
        """Index every comment stored in these partitions (all: None) before this call: when it returns, their
        watermarks are at least each partition's last n as it read it. Comments indexed (by this call)."""
        chosen = list(range(keys.PARTITIONS) if partitions is None else partitions)

        async def one(p: int, done: int, goal: int) -> int:
            indexed = 0
            while done < goal:
                indexed += await self.index_batch(p, done, goal)
                done = (await self.positions([p]))[0][0]
            return indexed

        goals = await self.positions(chosen)
        counts = await asyncio.gather(*(one(p, done, last) for p, (done, last) in zip(chosen, goals, strict=True)))
        return sum(counts)

    def busy(self) -> bool:
        """Whether the worker served more than `BUSY_READS_PER_SECOND` since the last look."""
        if self._activity is None:
            return False
        now, reads = asyncio.get_running_loop().time(), self._activity()
        (then, before), self._looked = self._looked, (now, reads)
        return reads - before > BUSY_READS_PER_SECOND * (now - then)

    async def step(self, *, least: int = 1) -> int:
        """One round over the partitions: a batch in each that is `least` or more behind, or that has been behind
        for `busy_wait_seconds` (in turn, from a random one). Comments indexed; a partition with a damaged key is
        logged and left behind."""
        start = _RNG.randrange(keys.PARTITIONS)
        order = [(start + i) % keys.PARTITIONS for i in range(keys.PARTITIONS)]
        positions = await self.positions(order)
        if self._metrics is not None:
            self._metrics.search_index_lag.set(sum(max(0, last - done) for done, last in positions))
        indexed = 0
        now = asyncio.get_running_loop().time()
        for p, (done, last) in zip(order, positions, strict=True):
            if last <= done:
                self._waiting_since.pop(p, None)
                continue
            if last - done < least and now - self._waiting_since.setdefault(p, now) < self._busy_wait:
                continue
            try:
                covered = await self.index_batch(p, done, last)
                indexed += covered
                if done + covered >= last:  # caught up: its next comments wait afresh
                    self._waiting_since.pop(p, None)
            except StorageCorrupt as exc:
                log.error("search indexer: partition %02x has a damaged key (%s); run comments-service doctor", p,
                          exc)
        return indexed

    @property
    def holding(self) -> bool:
        """Whether this indexer held the lease when it last looked."""
        return self._holding

    async def hold_lease(self) -> bool:
        """Whether this indexer holds the deployment's lease (`LEASE_MS`): taken when nobody holds it, renewed while
        held (at most every `LEASE_RENEW_SECONDS`)."""
        key = keys.search_indexer_lease()
        now = asyncio.get_running_loop().time()
        if not self._holding:
            taken = await self._scripts.command_soon("SET", key, self._token, "NX", "PX", LEASE_MS)
            self._holding, self._renewed = taken is not None, now
        elif now - self._renewed >= LEASE_RENEW_SECONDS:
            # PEXPIRE extends whoever holds it: when ours ran out and another worker took it, its lease, a little
            # longer (harmless); we then see its token and step down.
            holder, _ = await asyncio.gather(self._scripts.command_soon("GET", key),
                                             self._scripts.command_soon("PEXPIRE", key, LEASE_MS))
            self._holding, self._renewed = holder is not None and as_text(holder) == self._token, now
        return self._holding

    async def release_lease(self) -> None:
        """Give the lease up (the worker stops), so another worker's indexer takes over at its next look rather
        than when the lease runs out."""
        if not self._holding:
            return
        self._holding = False
        redis = self._scripts.redis
        key = keys.search_indexer_lease()
        holder = await redis.get(key)
        if holder is not None and as_text(holder) == self._token:
            await redis.delete(key)

    def wake(self) -> None:
        """Look for work now rather than at the next interval."""
        self._woken.set()

    async def run(self) -> None:
        """Index until cancelled, while this worker holds the lease (else ask for it every `LEASE_POLL_SECONDS`):
        round after round while there is work, else every `interval` (with jitter) or when woken. Redis failures
        are waited out."""
        while True:
            raise_if_cancelled()
            try:
                if not await self.hold_lease():
                    await asyncio.sleep(LEASE_POLL_SECONDS * _RNG.uniform(0.75, 1.25))
                    continue
                indexed = await self.step(least=BUSY_LAG if self.busy() else 1)
            except (RedisError, StorageCorrupt) as exc:
                log.warning("search indexer: %s; retrying in %.0f s", exc, ERROR_PAUSE_SECONDS)
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
                continue
            except Exception:
                log.exception("search indexer failed; retrying in %.0f s", ERROR_PAUSE_SECONDS)
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
                continue
            if not indexed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._woken.wait(), self._interval * _RNG.uniform(0.75, 1.25))
                self._woken.clear()
