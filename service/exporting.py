"""`comments-service export FILE`: every comment in every state with its history, and every article with its
open or closed state, as one JSON document that `comments-service import FILE --format json` restores.

The format, version 1 (UTF-8, one article or comment a line, so that it streams both ways):

    {"format":"comments-service-export","version":1,
    "articles":[
    {"id":"bai-viet-7","open":false,"sequence":1700000000000000},
    ...
    ],
    "comments":[
    {"history":[{...}],"id":"0a...","order":1700000000000000,"record":{"a":"bai-viet-7","d":{...},...}},
    ...
    ]}

- an article: its `id`, whether it is `open` for comments, and `sequence`, the article's approval counter (the
  next approval's place in the article's order comes after it);
- a comment: its `id`; `record`, the stored record's fields as `keys.py` lists them (`a` article, `t` submitted
  ms, `s` state, `v` version, `f` request fingerprint, `d` the private record (name, email, title, body, parent,
  hashes, risk signals), `did`/`dt`/`db` the last decision's id, ms and maker, `dr` the reason of a first
  decision while it is the only one, `ap` approval ms, and `pub` the public view as readers see it, made from
  `d` and `ap` (`records.public_view`; it is not stored, and a restore does not read it) whenever the comment
  was published (`ap`) and not erased (`er` delete)), with `d` and `pub` as JSON objects and every other field
  as the string stored; `order`, its place in the article's public order (approved comments; else null);
  `history`, its changes of state, oldest first (a comment decided once has the one entry its record's fields
  describe: `records.history_entries`).

What it holds is personal data (emails, the keyed hashes of addresses): keep the file as safe as the database.
The hashes (`ip_hash`, `email_hash`, `avatar`) are keyed with COMMENTS_SECRET_KEY: restore under the same key.
Not exported: the feed and outbox streams (events already delivered), moderators' leases, hourly stats, tokens,
accounts and webhooks. Articles are sorted by id, comments by id, and the keys of every object sorted, so that
the same data gives the same bytes: export, import into an empty Redis, export again, and the files are equal.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from service import keys
from service.connections import RedisClient
from service.models import COMMENT_ID_RE
from service.records import HISTORY_FIELDS, history_entries, public_view, stored_ms
from service.scripts import as_text

FORMAT: Final = "comments-service-export"
VERSION: Final = 1
HEADER: Final = b'{"format":"comments-service-export","version":1,\n'
_CHUNK: Final = 500
#: Record fields that hold JSON, exported as objects.
JSON_FIELDS: Final = ("d", "pub")


def _json_or_text(raw: str) -> Any:
    """A stored JSON value as an object; a value that does not parse stays the string it is."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def line(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass
class Exported:
    articles: int = 0
    comments: int = 0


async def _scan(redis: RedisClient, partition: int, kind: str) -> list[str]:
    prefix = f"{keys.PREFIX}:{{p{partition:02x}}}:{kind}:"
    return [as_text(k).removeprefix(prefix) async for k in redis.scan_iter(match=f"{prefix}*", count=1000)]


async def _pipeline(redis: RedisClient, commands: list[tuple[Any, ...]]) -> list[Any]:
    pipe: Any = redis.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    result: list[Any] = await pipe.execute()
    return result


async def _articles(redis: RedisClient) -> list[bytes]:
    ids: list[str] = []
    for p in range(keys.PARTITIONS):
        ids += [a for a in await _scan(redis, p, "a") if keys.partition_of_article(a) == p]
    ids.sort()
    out: list[bytes] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        rows = await _pipeline(redis, [("HMGET", keys.article(a), "closed", "seq") for a in chunk])
        for article_id, (closed, seq) in zip(chunk, rows, strict=True):
            out.append(line({"id": article_id, "open": closed != b"1" and closed != "1",
                             "sequence": int(as_text(seq)) if seq is not None and as_text(seq).isdigit() else 0}))
    return out


def _pairs(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {as_text(k): as_text(v) for k, v in raw.items()}
    return {as_text(raw[i]): as_text(raw[i + 1]) for i in range(0, len(raw), 2)}


async def _comments(redis: RedisClient) -> AsyncIterator[bytes]:
    """Each comment's line, read a chunk at a time (memory holds the ids, not the comments)."""
    ids: list[str] = []
    for p in range(keys.PARTITIONS):
        found = await _scan(redis, p, "c")
        ids += [c for c in found if COMMENT_ID_RE.fullmatch(c) and keys.partition_of_comment(c) == p]
    ids.sort()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        commands: list[tuple[Any, ...]] = []
        for comment_id in chunk:
            commands += [("HGETALL", keys.comment(comment_id)), ("LRANGE", keys.history(comment_id), 0, -1)]
        rows = await _pipeline(redis, commands)
        records = [_pairs(rows[2 * i]) for i in range(len(chunk))]
        approved = [(i, r["a"]) for i, r in enumerate(records) if r.get("s") == "approved" and r.get("a")]
        scores = await _pipeline(redis, [("ZSCORE", keys.article_order(a), chunk[i]) for i, a in approved])
        order = {i: int(float(as_text(s))) for (i, _), s in zip(approved, scores, strict=True) if s is not None}
        for i, comment_id in enumerate(chunk):
            record: dict[str, Any] = dict(records[i])
            if not record:
                continue  # decided away between the scan and the read
            for name in JSON_FIELDS:
                if name in record:
                    record[name] = _json_or_text(record[name])
            record.pop("pub", None)  # a stored copy of before issue 19: made again below
            record.pop("n", None)  # its number in the partition's search index: a restore gives it a new one
            approved_ms = stored_ms(record.get("ap"))
            if approved_ms is not None and record.get("er") != "delete" and isinstance(record.get("d"), dict):
                record["pub"] = public_view(comment_id, record["d"], approved_ms)
            history = history_entries(_history_fields(record), rows[2 * i + 1])
            yield line({"id": comment_id, "record": record, "order": order.get(i), "history": history})


def _history_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The fields of `records.HISTORY_FIELDS` an exported record holds."""
    return {name: record[name] for name in HISTORY_FIELDS if isinstance(record.get(name), str)}


async def export(redis: RedisClient, path: Path) -> Exported:
    """Write the export to `path` (through a temporary file beside it, renamed at the end)."""
    done = Exported()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as out:
            out.write(HEADER)
            out.write(b'"articles":[\n')
            articles = await _articles(redis)
            out.write(b",\n".join(articles) + (b"\n" if articles else b""))
            done.articles = len(articles)
            out.write(b'],\n"comments":[\n')
            first = True
            async for comment in _comments(redis):
                out.write(comment if first else b",\n" + comment)
                first = False
                done.comments += 1
            out.write(b"\n]}\n" if not first else b"]}\n")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    return done
