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

from redis import Redis

from bench.api import NAME, TITLE, long_body
from bench.redis_server import Server, running, used_memory
from bench.seed import Seeded, Seeder
from service import keys, search
from service.embedded import HASH_MAX_LISTPACK_VALUE

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


# -- prototype layouts: what each way of storing less would save, measured ------------------------------------



def _scan(redis: Redis, pattern: str) -> list[bytes]:
    return list(redis.scan_iter(match=pattern, count=1000))


def _word_postings(redis: Redis, seeded: list[Seeded]) -> None:
    """The word index as append-only strings of ids (a posting list per word and partition, 27 bytes an entry)
    instead of sorted sets (about 150 bytes an entry once a word is common)."""
    words: dict[str, list[str]] = defaultdict(list)
    for index, item in enumerate(seeded):
        for word in search.index_words(NAME, TITLE, long_body(index)):
            words[keys.word_index(keys.partition_of_comment(item.comment_id), word)].append(item.comment_id)
    for old in _scan(redis, "cm:{p*}:w:*"):
        redis.unlink(old)
    pipe = redis.pipeline(transaction=False)
    for key, ids in words.items():
        pipe.append(key, "".join(i + " " for i in ids))
    pipe.execute()


def _no_word_index(redis: Redis, seeded: list[Seeded]) -> None:
    for key in _scan(redis, "cm:{p*}:w:*"):
        redis.unlink(key)


#: Each step applied after the ones before it, on approved comments stored as the service configures Redis
#: (`service.embedded.HASH_MAX_LISTPACK_VALUE`: records in the compact hash encoding).
PROTOTYPES: Final[tuple[tuple[str, Callable[[Redis, list[Seeded]], None]], ...]] = (
    ("word index as append-only posting strings", _word_postings),
    ("no word index at all", _no_word_index),
)


def measure_prototypes(label: str, binary: str, workdir: Path, count: int,
                       log: Callable[[str], None]) -> dict[str, Any]:
    """Approved comments per byte under the layout as it is, with compact hashes, then each prototype step."""
    steps: list[dict[str, Any]] = []
    text = sum(text_bytes(s) for s in range(count)) / count
    for config, extra in (("Redis's default hash-max-listpack-value (64)", ("--hash-max-ziplist-value", "64")),
                          (f"as the service configures Redis (hash-max-listpack-value {HASH_MAX_LISTPACK_VALUE})", ())):
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
