"""What a comment costs in Redis: `used_memory` before and after, per comment, less the text its author wrote.

Two ways of storing the same comments, on each server (Debian's redis-server with jemalloc, the embedded one):

* through the API (`measure_http`): the service on its own redis-server; 20,000 submissions (each with its
  own captcha and Idempotency-Key, as the widget sends them) of about 457 bytes of text; then every one
  approved through the bulk decisions API. Pending is measured twice: with the gate's short-lived keys (the
  captcha's single-use marker, the repeat counter, the idempotency fingerprint: gone within a day) and without.
* through the scripts (`bench.seed`): the same store and decide scripts without HTTP, which is how a million
  comments are stored in bounded time (`measure_sizing`); at 20,000 both ways must agree.

Approved counts everything an approved comment keeps: the record (the text once: the public view is made from
it, and a comment decided once has no history list), its place in the article's order, the state list, the
search indexes, and its feed and outbox entries (20,000 comments are
well within the outbox's length and the feed's retention). `breakdown` says where the bytes are, by kind of key
(`MEMORY USAGE` of every key, so its sum is close to, not equal to, the `used_memory` delta).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson
from redis import Redis

from bench.api import NAME, TITLE, long_body
from bench.redis_server import Server, running, used_memory
from bench.seed import Seeded, Seeder
from service import keys
from service.embedded import HASH_MAX_LISTPACK_VALUE, ZSET_MAX_LISTPACK_ENTRIES

#: Articles the memory comments are spread over (200 each at 20,000).
MEMORY_ARTICLES: Final = tuple(f"bench-mem-{i}" for i in range(100))


def text_bytes(serial: int) -> int:
    """What the author of comment `serial` wrote (name, email, title, body), as `bench.seed` writes it."""
    return sum(len(t.encode()) for t in (NAME, f"reader{serial}@example.vn", TITLE, long_body(serial)))


def kind(key: bytes) -> str:
    """The kind of a key, from `service.keys`' schema (`cm:{tag}:<kind>...`)."""
    text = key.decode(errors="replace")
    parts = text.split(":")
    if len(parts) < 3:
        return text
    tag, rest = parts[1], parts[2:]
    if tag == "{g}":
        return "gate:" + rest[0]
    name = rest[0]
    if name in ("c", "h", "w", "e", "i", "b", "a", "ao", "ap", "aq", "st", "stats", "lat"):
        return {"c": "record", "h": "history", "w": "index:word", "e": "index:email", "i": "index:address",
                "b": "index:bucket", "a": "article", "ao": "article:order", "ap": "article:public",
                "aq": "article:pending", "st": f"state:{rest[1] if len(rest) > 1 else ''}", "stats": "stats",
                "lat": "stats"}[name]
    if name == "n":
        return "index:ids" if len(rest) > 1 else "index:seq"
    if name in ("feed", "outbox") and len(rest) > 1:
        return f"{name}:{rest[1]}"
    return name


def wait_indexed(redis: Redis, within: float = 120.0) -> float:
    """Wait until the service's indexer has written every stored comment's search terms (each partition's
    `n:done` caught up with its `n`), so that a measurement counts the index; returns the seconds waited."""
    started = time.monotonic()
    while True:
        counters = redis.mget([k for p in range(keys.PARTITIONS) for k in (keys.search_done(p), keys.search_seq(p))])
        values = [int(v or 0) for v in counters]
        if all(values[i] >= values[i + 1] for i in range(0, len(values), 2)):
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise RuntimeError(f"the search index did not catch up within {within:.0f} s")
        time.sleep(0.1)


def breakdown(redis: Redis, count: int) -> dict[str, dict[str, float]]:
    """Bytes per comment by kind of key (`MEMORY USAGE ... SAMPLES 0` of every key) and how many keys."""
    sizes: dict[str, int] = defaultdict(int)
    numbers: dict[str, int] = defaultdict(int)
    for key in redis.scan_iter(count=1000):
        usage = redis.memory_usage(key, samples=0) or 0
        sizes[kind(key)] += int(usage)
        numbers[kind(key)] += 1
    return {k: {"bytes_per_comment": sizes[k] / count, "keys": numbers[k]}
            for k in sorted(sizes, key=lambda k: -sizes[k])}


def encodings(redis: Redis, comment_id: str, article_id: str) -> dict[str, str]:
    """The encodings of one comment's record and history (none for one decision) and of its article's order."""
    return {name: str(redis.object("encoding", key)) for name, key in (
        ("record", keys.comment(comment_id)), ("history", keys.history(comment_id)),
        ("article_order", keys.article_order(article_id)), ("word_index", keys.word_index(
            keys.partition_of_comment(comment_id), "duong")))}


def per_comment(delta: int, count: int, text: float) -> dict[str, float]:
    return {"used_memory_delta": delta, "bytes_per_comment": delta / count, "text_bytes": text,
            "beyond_text": delta / count - text}


def measure_seeded(server: Server, count: int, log: Callable[[str], None],
                   prepare: Callable[[Redis], None] | None = None) -> dict[str, Any]:
    """`count` comments stored and approved through the scripts; pending and approved per comment."""
    redis = Redis.from_url(server.url)
    try:
        if prepare is not None:
            prepare(redis)
        seeder = Seeder(redis)
        before = used_memory(redis)
        started = time.monotonic()
        seeded = seeder.submit(MEMORY_ARTICLES, count)
        pending = used_memory(redis)
        seeder.approve(seeded)
        approved = used_memory(redis)
        text = sum(text_bytes(s) for s in range(count)) / count
        found = {"server": server.label, "version": server.version, "allocator": server.allocator,
                 "comments": count, "seconds": time.monotonic() - started,
                 "pending": per_comment(pending - before, count, text),
                 "approved": per_comment(approved - before, count, text),
                 "encodings": encodings(redis, seeded[0].comment_id, seeded[0].article_id),
                 "breakdown": breakdown(redis, count)}
    finally:
        redis.close()
    log(f"  {server.label} (scripts): {(pending - before) / count - text:,.0f} B pending, "
        f"{(approved - before) / count - text:,.0f} B approved beyond {text:,.0f} B of text")
    return found


def measure_sizing(label: str, binary: str, workdir: Path, target: int, budget_seconds: float,
                   log: Callable[[str], None], step: int = 50_000, max_bytes: int = 8 << 30) -> dict[str, Any]:
    """Approved comments stored in steps until `target`, the time budget or `max_bytes` of used_memory (the
    machine is shared): used_memory at each step."""
    points: list[dict[str, float]] = []
    with running(label, binary, workdir) as server:
        redis = Redis.from_url(server.url)
        try:
            seeder = Seeder(redis)
            before = used_memory(redis)
            started = time.monotonic()
            stored = 0
            text_total = 0
            delta = 0
            while (stored < target and time.monotonic() - started < budget_seconds
                   and delta < max_bytes):
                batch = min(step, target - stored)
                seeded: list[Seeded] = seeder.submit(MEMORY_ARTICLES, batch, first_serial=stored)
                seeder.approve(seeded)
                text_total += sum(text_bytes(s) for s in range(stored, stored + batch))
                stored += batch
                delta = used_memory(redis) - before
                info = redis.info("memory")
                points.append({"comments": stored, "used_memory_delta": delta, "bytes_per_comment": delta / stored,
                               "beyond_text": (delta - text_total) / stored,
                               "used_memory_rss": int(info["used_memory_rss"]),
                               "seconds": time.monotonic() - started})
                log(f"  sizing: {stored:,} approved, {delta / 2**20:,.0f} MiB, {delta / stored:,.0f} B each "
                    f"({time.monotonic() - started:,.0f} s)")
        finally:
            redis.close()
    return {"server": label, "version": server.version, "allocator": server.allocator, "target": target,
            "budget_seconds": budget_seconds, "reached": points[-1]["comments"] if points else 0,
            "points": points}


# -- prototype layouts: what each way of storing less would still save, measured ------------------------------


def _scan(redis: Redis, pattern: str) -> list[bytes]:
    return list(redis.scan_iter(match=pattern, count=1000))


def _record_without_derivable(redis: Redis, seeded: list[Seeded]) -> None:
    """`d` without `created_at` (the record's `t` holds the same instant) and without a null `parent_id`."""
    pipe = redis.pipeline(transaction=False)
    for item in seeded:
        pipe.hget(keys.comment(item.comment_id), "d")
    records = pipe.execute()
    pipe = redis.pipeline(transaction=False)
    for item, raw in zip(seeded, records, strict=True):
        record = orjson.loads(raw)
        record.pop("created_at", None)
        if record.get("parent_id") is None:
            record.pop("parent_id", None)
        pipe.hset(keys.comment(item.comment_id), "d", orjson.dumps(record))
    pipe.execute()


def _no_feed_or_outbox(redis: Redis, seeded: list[Seeded]) -> None:
    """Feed and outbox entries gone, as they go once older than their retention (feed) or length (outbox)."""
    for partition in range(keys.PARTITIONS):
        redis.unlink(keys.feed(partition), keys.outbox(partition))


def _no_search_index(redis: Redis, seeded: list[Seeded]) -> None:
    """No moderator search: no comment numbers, map, terms or buckets."""
    for pattern in ("cm:{p*}:b:*", "cm:{p*}:w:*", "cm:{p*}:e:*", "cm:{p*}:i:*", "cm:{p*}:n", "cm:{p*}:n:*"):
        for key in _scan(redis, pattern):
            redis.unlink(key)
    pipe = redis.pipeline(transaction=False)
    for item in seeded:
        pipe.hdel(keys.comment(item.comment_id), "n")
    pipe.execute()


#: Each step applied after the ones before it, on approved comments stored as the service configures Redis
#: (`service.embedded.server_args`: records and small sorted sets in the compact encodings).
PROTOTYPES: Final[tuple[tuple[str, Callable[[Redis, list[Seeded]], None]], ...]] = (
    ("record without `created_at` and a null `parent_id` in `d`", _record_without_derivable),
    ("feed and outbox entries past their retention", _no_feed_or_outbox),
    ("no search index at all", _no_search_index),
)


def measure_prototypes(label: str, binary: str, workdir: Path, count: int,
                       log: Callable[[str], None]) -> dict[str, Any]:
    """Approved comments per byte under the layout as it is, with compact hashes, then each prototype step."""
    steps: list[dict[str, Any]] = []
    text = sum(text_bytes(s) for s in range(count)) / count
    for config, extra in (("Redis's defaults (hash-max-listpack-value 64, zset-max-listpack-entries 128)",
                           ("--hash-max-ziplist-value", "64", "--zset-max-ziplist-entries", "128")),
                          ("Redis's default zset-max-listpack-entries (128) only",
                           ("--zset-max-ziplist-entries", "128")),
                          (f"as the service configures Redis (hash-max-listpack-value {HASH_MAX_LISTPACK_VALUE}, "
                           f"zset-max-listpack-entries {ZSET_MAX_LISTPACK_ENTRIES})", ())):
        with running(label, binary, workdir, *extra) as server:
            redis = Redis.from_url(server.url)
            try:
                seeder = Seeder(redis)
                before = used_memory(redis)
                seeded = seeder.submit(MEMORY_ARTICLES, count)
                pending = used_memory(redis)
                seeder.approve(seeded)
                approved = used_memory(redis)
                steps.append({"step": config, "pending_beyond_text": (pending - before) / count - text,
                              "approved_beyond_text": (approved - before) / count - text,
                              "record_encoding": str(redis.object("encoding", keys.comment(seeded[0].comment_id)))})
                log(f"  prototype {config}: {steps[-1]['pending_beyond_text']:,.0f} B pending, "
                    f"{steps[-1]['approved_beyond_text']:,.0f} B approved")
                if not extra:
                    for name, change in PROTOTYPES:
                        change(redis, seeded)
                        after = used_memory(redis)
                        steps.append({"step": name, "approved_beyond_text": (after - before) / count - text})
                        log(f"  prototype + {name}: {steps[-1]['approved_beyond_text']:,.0f} B approved")
            finally:
                redis.close()
    return {"server": label, "comments": count, "text_bytes": text, "steps": steps}
