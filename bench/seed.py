"""Seeding many comments fast: the service's own store and decide scripts, called in pipelines, without HTTP.

For what HTTP would take too long to fill (a million approved comments, a queue of 200,000): each comment goes
through `lua/submit_store.lua` (the store the service runs after its gate; the gate's short-lived markers are
left out) and, to approve it, `lua/decide.lua`, several decisions a call as `scripts.Coalescer` sends them; the
search terms are then written as the service's indexer writes them (`service.indexer.plan_batch`,
`lua/index_batch.lua`), so seeded data ends fully indexed and memory figures include the index. The keys come from
`service.keys` and the record is built as `Submissions._gate_and_store` builds it, so what is stored is what the
service stores; `bench.memory` checks that by measuring both ways at 20,000 comments.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from redis import Redis

from bench.api import NAME, TITLE, long_body
from service import indexer, keys, scripts, search
from service.clients import email_hash, keyed_hash
from service.models import iso
from service.submissions import OUTBOX_MAXLEN, RECORD_FINGERPRINT_HEX, new_comment_id

SECRET: Final = b"bench-seed-secret-0123456789abcdef"
#: Script calls a pipeline carries (submissions), decisions a decide.lua call carries, calls a pipeline carries.
PIPELINE: Final = 200
DECISIONS_PER_CALL: Final = 50
STATS_TTL_SECONDS: Final = 8 * 86400
UNDO_WINDOW_MS: Final = 10_000


@dataclass(frozen=True, slots=True)
class Seeded:
    comment_id: str
    article_id: str


class Seeder:
    """Stores pending comments and approves them through the service's scripts (one Redis server)."""

    def __init__(self, redis: Redis, moderator: str = "bench-seed") -> None:
        self.redis = redis
        self.moderator = moderator
        self.sha = {name: str(redis.script_load(scripts._source(name)))
                    for name in ("submit_store", "decide", "index_batch")}

    def _store_call(self, serial: int, article_id: str, now_ms: int) -> tuple[str, list[str], list[Any]]:
        email = f"reader{serial}@example.vn"
        body = long_body(serial)
        comment_id = new_comment_id(article_id, now_ms)
        ip_hash = keyed_hash(SECRET, "ip", f"10.{serial >> 16 & 255}.{serial >> 8 & 255}.{serial & 255}")
        digest = email_hash(SECRET, email)
        record = orjson.dumps({"name": NAME, "email": email, "title": TITLE, "body": body, "parent_id": None,
                               "ip_hash": ip_hash, "email_hash": digest,
                               "avatar": keyed_hash(SECRET, "avatar", email, 16), "created_at": iso(now_ms),
                               "risk": []})
        store_keys = keys.submit_keys(comment_id, article_id, indexed=True)
        fingerprint = hashlib.sha256(record).hexdigest()[:RECORD_FINGERPRINT_HEX]
        args = [comment_id, article_id, now_ms, record, "", fingerprint, OUTBOX_MAXLEN, ""]
        return comment_id, store_keys, args

    def submit(self, articles: Sequence[str], count: int, first_serial: int = 0, *,
               index: bool = True) -> list[Seeded]:
        """`count` pending comments spread over `articles` in turn, each with its own text and sender; `index`:
        their search terms written too (`catch_up`), as the service's indexer would soon after."""
        seeded: list[Seeded] = []
        for start in range(0, count, PIPELINE):
            pipe = self.redis.pipeline(transaction=False)
            now = int(time.time() * 1000)
            batch = []
            for serial in range(first_serial + start, first_serial + min(count, start + PIPELINE)):
                article_id = articles[serial % len(articles)]
                comment_id, store_keys, args = self._store_call(serial, article_id, now)
                pipe.evalsha(self.sha["submit_store"], len(store_keys), *store_keys, *args)
                batch.append(Seeded(comment_id, article_id))
            for answer, item in zip(pipe.execute(), batch, strict=True):
                if answer[0] != b"ok":
                    raise RuntimeError(f"submit_store answered {answer!r} for {item.comment_id}")
            seeded += batch
        if index:
            self.catch_up()
        return seeded

    def catch_up(self) -> None:
        """Every partition's search terms written up to its last n, by index_batch.lua (`service.indexer`)."""
        for p in range(keys.PARTITIONS):
            while True:
                done, last = (int(v or 0) for v in self.redis.mget(keys.search_done(p), keys.search_seq(p)))
                if done >= last:
                    break
                top = min(last, done + indexer.BATCH)
                slots = self._slots(p, done + 1, top)
                pipe = self.redis.pipeline(transaction=False)
                for comment_id, _ in slots.values():
                    pipe.hmget(keys.comment(comment_id), "d", "er", "n")
                script_keys, args = indexer.plan_batch(p, done, top, slots, pipe.execute() if slots else [])
                answer = self.redis.evalsha(self.sha["index_batch"], len(script_keys), *script_keys, *args)
                if answer[0] == b"corrupt":
                    raise RuntimeError(f"index_batch answered {answer!r}")

    def _slots(self, partition: int, first: int, last: int) -> dict[int, tuple[str, int]]:
        """The n -> comment map's entries first..last (`search.Index.slots`, read without asyncio)."""
        out: dict[int, tuple[str, int]] = {}
        size = keys.SEARCH_SLOT
        for chunk in range((first - 1) // keys.SEARCH_CHUNK, (last - 1) // keys.SEARCH_CHUNK + 1):
            low = max(first, chunk * keys.SEARCH_CHUNK + 1)
            high = min(last, (chunk + 1) * keys.SEARCH_CHUNK)
            raw = self.redis.getrange(keys.search_ids(partition, chunk), (low - 1) % keys.SEARCH_CHUNK * size,
                                      ((high - 1) % keys.SEARCH_CHUNK + 1) * size - 1)
            raw_bytes = raw if isinstance(raw, bytes) else raw.encode()
            for n in range(low, high + 1):
                found = search.slot(raw_bytes[(n - low) * size:(n - low + 1) * size])
                if found is not None:
                    out[n] = found
        return out

    def approve(self, comments: Sequence[Seeded]) -> None:
        """Approve each comment through decide.lua, `DECISIONS_PER_CALL` decisions a call."""
        for start in range(0, len(comments), DECISIONS_PER_CALL * 8):
            pipe = self.redis.pipeline(transaction=False)
            for call in _chunks(comments[start:start + DECISIONS_PER_CALL * 8], DECISIONS_PER_CALL):
                now = int(time.time() * 1000)
                call_keys: list[str] = []
                call_args: list[Any] = []
                for item in call:
                    call_keys += keys.decide_keys(item.comment_id, item.article_id, now // 3_600_000)
                    call_args += [item.comment_id, "approve", self.moderator, "", "", now, iso(now),
                                  secrets.token_hex(8), OUTBOX_MAXLEN, STATS_TTL_SECONDS, UNDO_WINDOW_MS, "admin", ""]
                pipe.evalsha(self.sha["decide"], len(call_keys), *call_keys, *call_args)
            for answers in pipe.execute():
                bad = [a for a in answers if a[0] != b"ok"]
                if bad:
                    raise RuntimeError(f"decide answered {bad[0]!r}")


def _chunks(items: Sequence[Seeded], size: int) -> Iterator[Sequence[Seeded]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
