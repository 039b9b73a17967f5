"""The approvals feed: what the site backend polls to render approved comments into its own pages.

Events live in one stream per partition (written by `lua/decide.lua` in the same step as the decision), so
a cursor is the position in every partition's stream: the feed merges them in decision order and advances
a partition's position only past events it returned. The same cursor returns the same events, and a
consumer that resumes after a crash has no gap. A cursor from before the retention window gets 410.

An event holds the comment's id, its article and the approval's ms (`ap`), not the comment: its `comment` is made
from the record when the feed is read (`records.public_view`, as the article's pages make it), with the
`approved_at` of that approval. So a comment anonymised since shows anonymised in every event, and an erased one
(`er` delete) as its tombstone (id, parent, times; empty name, title, text and avatar): nothing erased comes back
from the feed. An erasure also deletes the comment's earlier approval and retraction events (`privacy.py`), so a
reader gets its comment.erased or comment.anonymised event instead; an event whose record is gone altogether
(retention purged a rejected comment that was once approved, then undone) carries a tombstone too, its times
the approval's. Events written before this (with a `comment` field) are rendered the same way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

import orjson
from pydantic import BaseModel, Field

from service import clock, keys, records, tasks, text
from service.errors import CursorExpired, ValidationFailed
from service.models import COMMENT_ID_RE, PublicComment, iso
from service.scripts import Scripts, as_text

log = logging.getLogger(__name__)

CURSOR_VERSION: Final = "f1"
CURSOR_PREFIX: Final = CURSOR_VERSION.encode() + b"."
POLL_SECONDS: Final = 0.2
TRIM_EVERY_SECONDS: Final = 60.0

Position = tuple[int, int]


class FeedEvent(BaseModel):
    cursor: str = Field(description="The feed's position just after this event: store it once the event is "
                                    "processed and resume with `after=<cursor>`, missing nothing.")
    type: str = Field(description="`comment.approved` (publish `comment`), `comment.retracted` (a moderator "
                                  "unpublished it: take the comment with `comment.id` off your pages), "
                                  "`comment.erased` (its author's data was erased: delete every copy of "
                                  "`comment.id`, which is a tombstone here) or `comment.anonymised` (replace your "
                                  "copy with `comment`: the author is now “Bạn đọc”).")
    article_id: str = Field(description="The article the comment belongs to.")
    comment: PublicComment | None = Field(description="The comment as the public sees it (for a retraction, as "
                                                       "it was published).")


# What `Feed.read` answers; it writes the JSON itself, from the records, without the model.
class FeedPage(BaseModel):
    events: list[FeedEvent] = Field(description="Events in decision order; empty when nothing new happened "
                                                "within `wait`.")
    next_cursor: str = Field(description="Pass as `after` for the next read; the same as the last event's "
                                         "`cursor`, or unchanged when there was none.")


def _parse_id(raw: bytes | str) -> Position:
    ms, _, seq = as_text(raw).partition("-")
    return int(ms), int(seq or 0)


def _comment(position: Position, fields: dict[bytes, bytes], row: list[bytes | None] | None) -> bytes:
    """An event's comment, from its record's `d` and `ap` (`row` None: no id in the event). An erased record's
    `d` is its tombstone already (`privacy.py`)."""
    raw_id = fields.get(b"id")
    if raw_id is None or row is None:
        return b"null"
    comment_id = as_text(raw_id)
    private, stored_ap = row
    approved = records.stored_ms(fields.get(b"ap"))
    if approved is None:  # an event of before issue 19 (it held the comment), or an erasure's of a pending one
        approved = records.stored_ms(stored_ap)
    if private is None:  # the record is gone: nothing of it is left to show
        when = iso(approved if approved is not None else position[0])
        return orjson.dumps({"id": comment_id, "parent_id": None, "name": "", "title": "", "body": "",
                             "created_at": when, "approved_at": when, "avatar": ""})
    return records.public_json(comment_id, private, approved)


def _encode_position(position: Position) -> bytes:
    return b"%x-%x" % position


def _cursor(parts: list[bytes]) -> bytes:
    """A cursor from its partitions' encoded positions (`_encode_position`), one a partition in order."""
    return CURSOR_PREFIX + b".".join(parts)


def encode_cursor(positions: list[Position]) -> str:
    return _cursor([_encode_position(position) for position in positions]).decode()


def decode_cursor(cursor: str) -> list[Position]:
    try:
        version, *parts = cursor.split(".")
        if version != CURSOR_VERSION or len(parts) != keys.PARTITIONS:
            raise ValueError(cursor)
        positions = []
        for part in parts:
            ms_text, seq_text = part.split("-")
            # Strictly as `_encode_position` writes it: `int(x, 16)` alone also takes "٣", " 7", "0x7" and "1_0".
            ms = text.ascii_number(ms_text, max_digits=16, base=16)
            seq = text.ascii_number(seq_text, max_digits=16, base=16)
            if ms is None or seq is None:
                raise ValueError(cursor)
            positions.append((ms, seq))
        return positions
    except ValueError as exc:
        raise ValidationFailed("the cursor is not one this service gave out") from exc


class Feed:
    def __init__(self, scripts: Scripts, *, retention_seconds: int) -> None:
        self._scripts = scripts
        self._retention_ms = retention_seconds * 1000
        self._trimmed_cache: tuple[float, list[Position]] | None = None

    async def _trimmed(self) -> list[Position]:
        """Where retention cut each partition; read at most once a second (it moves once a minute)."""
        now = time.monotonic()
        if self._trimmed_cache is not None and self._trimmed_cache[0] > now:
            return self._trimmed_cache[1]
        batch = self._scripts.batch()
        for partition in range(keys.PARTITIONS):
            batch.command("GET", keys.feed_trimmed(partition))
        marks = [_parse_id(raw) if raw else (0, 0) for raw in await batch.execute()]
        self._trimmed_cache = (now + 1.0, marks)
        return marks

    async def read(self, after: str | None, limit: int, wait: float) -> bytes:
        trimmed = await self._trimmed()
        if after:
            positions = decode_cursor(after)
            if any(pos < mark for pos, mark in zip(positions, trimmed, strict=True)):
                raise CursorExpired("events after this cursor were dropped by retention; start again")
        else:
            positions = list(trimmed)
        deadline = time.monotonic() + wait
        while True:
            events = await self._events(positions, limit)
            if events or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        out = []
        rows = await self._records(events)
        # Each event carries the whole cursor after it; only one partition's part changes from one to the next.
        parts = [_encode_position(position) for position in positions]
        for partition, position, fields in events:
            parts[partition] = _encode_position(position)
            cursor = _cursor(parts)
            raw_id = fields.get(b"id")
            comment = _comment(position, fields, rows.get(as_text(raw_id)) if raw_id is not None else None)
            out.append(b"".join((
                b'{"cursor":"', cursor, b'","type":', orjson.dumps(fields[b"type"].decode()),
                b',"article_id":', orjson.dumps(fields[b"article"].decode()), b',"comment":', comment, b"}")))
        return b'{"events":[' + b",".join(out) + b'],"next_cursor":"' + _cursor(parts) + b'"}'

    async def _records(self, events: list[tuple[int, Position, dict[bytes, bytes]]]
                       ) -> dict[str, list[bytes | None]]:
        """The `d` and `ap` of each comment the events name, in one round trip (an id that names no record
        reads as none)."""
        named = dict.fromkeys(as_text(fields[b"id"]) for _, _, fields in events if b"id" in fields)
        ids = [comment_id for comment_id in named if COMMENT_ID_RE.fullmatch(comment_id)]
        found: dict[str, list[bytes | None]] = {comment_id: [None, None] for comment_id in named}
        if ids:
            batch = self._scripts.batch()
            for comment_id in ids:
                batch.command("HMGET", keys.comment(comment_id), "d", "ap")
            found.update(zip(ids, await batch.execute(), strict=True))
        return found

    async def _events(self, positions: list[Position], limit: int) -> list[tuple[int, Position, dict[bytes, bytes]]]:
        """The next `limit` events in decision order, merged from the partitions' streams.

        Each partition is first asked for a share of the page, not the whole page (16 times the data otherwise).
        Let T be the `limit`-th earliest event fetched so far: a partition that filled its share and whose last
        event is before T may hold events that belong in the page, so only such partitions are asked again."""
        fetched: list[tuple[Position, int, dict[bytes, bytes]]] = []
        reached = list(positions)
        todo = list(range(len(positions)))
        share = max(4, 2 * -(-limit // len(positions)))
        while True:
            batch = self._scripts.batch()
            for partition in todo:
                ms, seq = reached[partition]
                batch.command("XRANGE", keys.feed(partition), f"({ms}-{seq}", "+", "COUNT", share)
            may_hold_more = []
            for partition, entries in zip(todo, await batch.execute(), strict=True):
                for entry_id, fields in entries:
                    fetched.append((_parse_id(entry_id), partition, fields))
                if entries:
                    reached[partition] = _parse_id(entries[-1][0])
                if len(entries) == share:
                    may_hold_more.append(partition)
            fetched.sort(key=lambda item: (item[0], item[1]))
            cutoff = fetched[limit - 1][0] if len(fetched) >= limit else None
            todo = [p for p in may_hold_more if cutoff is None or reached[p] < cutoff]
            if not todo:
                return [(partition, position, fields) for position, partition, fields in fetched[:limit]]
            share = max(share * 2, limit) if cutoff is None else limit

    async def trim_once(self) -> int:
        self._trimmed_cache = None
        oldest = clock.now_ms() - self._retention_ms
        dropped = 0
        for partition in range(keys.PARTITIONS):
            dropped += int(await self._scripts.run(
                "trim_feed", [keys.feed(partition), keys.feed_trimmed(partition)], [f"{oldest}-0"]))
        self._trimmed_cache = None
        return dropped

    async def run_janitor(self) -> None:
        while True:
            try:
                await self.trim_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis away: try again next round
                log.warning("trimming the feed failed", exc_info=True)
            # A cancellation the client library swallowed is honoured here, or shutdown waits a whole round.
            tasks.raise_if_cancelled()
            await asyncio.sleep(TRIM_EVERY_SECONDS)
