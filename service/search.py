"""Search over every comment, whatever its state: by words (with or without Vietnamese diacritics), name,
email, address hash, article, state and submission dates, newest first, with pages.

How it scales, honestly. Each partition numbers its comments as they are stored (`keys.search_seq`: n, the
record's `n`) and keeps a compact index (`comments-service doctor --repair` rebuilds it). The store and
import.lua give a comment its n and its slot in the map, cheaply, in the submission's own step; its terms are
written after it by the indexer (`service.indexer`, lua/index_batch.lua, lua/lib/terms.lua), a batch of comments
at a time, a term's n's of the batch in one command, and the partition's watermark (`keys.search_done`) says how
far: every n at or below it has its terms. erase.lua takes an indexed comment out of its terms (one past the
watermark has none yet: the indexer indexes what its record then holds).

- the n -> comment map (`keys.search_ids`): 32 bytes a comment, its id and submitted ms; "every comment" is this
  map, walked from the top n down;
- per term, the n's of the comments that have it: a folded word (`keys.word_index`), the keyed digest of the
  sender's email (`keys.by_email`: the address itself never enters a key), the address hash (`keys.by_ip`). A
  rare term's n's (3 bytes each) are a field of one of `keys.SEARCH_BUCKETS` hashes of the partition (no key of
  its own: a key costs about 100 bytes, more than most terms' n's); past 96 bytes the term gets its own string
  (3-byte n's, ascending: read newest first from the end, a cursor found by bisection); once more than one
  comment in 24 has it, a bitmap (bit n), which then costs less than 3 bytes a comment.

Readers take the n's at or below the watermark from the terms, and the rest, the unindexed tail (done, n], from
the map and the records themselves (`Index.tail`: each record's terms computed as the indexer computes them,
`record_terms`), so a comment is found the moment it is stored. The tail read is bounded (`TAIL_MAX` a partition,
the newest): a term's search past that lag says `complete: false`. Privacy's by-email export and erasure run the
indexer to the end first (`Indexer.catch_up`), so they are exact whatever the lag.

A query drives each partition by its most selective term (the email's or the address's, else the rarest of its
indexed words, by count; a word no comment of the partition has answers nothing there, exactly), else by every
comment, walks the partitions by n from the top down, merged newest first by the submitted ms the map holds
(within a partition the order is the order of storing: submission order, imported comments by when they were
imported), and judges each candidate's record against every criterion: the results are exact. Dates are judged
on the map's ms before any record is read. A query fans out to every partition (or to the article's only), so it
runs on a Redis Cluster as on one server. A request reads at most `SCAN_MAX` records and `SLOT_SCAN_MAX` map
entries and says how far it got (`scanned`, `complete`, `next_cursor`: every partition's place), as the bulk
filters do.

Memory (docs/benchmarks.md, "Memory"): the map's 32 bytes and about 3 bytes per (comment, rare or mid term),
a bit per comment for dense terms, and a key per term past 96 bytes; erasure takes a comment's n out of its
terms (and a purge zeroes its slot), so nothing then names it.

Words: the folded words (`text.fold`: lower case, no diacritics, đ -> d) of the name, title and body, at least
`WORD_MIN` characters, without `STOP_WORDS`, cut to `WORD_MAX` characters (the key stays short; the record
check compares whole words), the first `WORDS_PER_COMMENT` distinct ones of a comment. A query's words must all
be words of the comment; a query word the index does not hold (too short, a stop word) is checked on the record.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

from service import keys, text
from service.scripts import Scripts

WORD_MIN: Final = 2
WORD_MAX: Final = 32
#: Distinct words of a comment that go to the index; a comment's later words are found only through others.
WORDS_PER_COMMENT: Final = 300
#: Candidates (records) one search request reads at most.
SCAN_MAX: Final = 2000
#: Entries of the n -> comment map one request looks at at most (those a date rules out cost no record read).
SLOT_SCAN_MAX: Final = 50_000
#: n's read from a term (or the map) per round trip while walking.
PAGE: Final = 200
#: Bitmap bytes a walk reads per round trip.
BITMAP_PAGE: Final = 4096
#: Unindexed comments (above the watermark) a reader judges on their records, a partition, at most.
TAIL_MAX: Final = 2000
#: The cursor's place of a partition not started yet (n's are below 2^23: lib/terms.lua).
TOP: Final = (1 << 24) - 1
#: Words too common to select anything (folded): Vietnamese function words and a few English ones.
STOP_WORDS: Final = frozenset({
    "va", "la", "cua", "co", "cac", "nhung", "mot", "cho", "khong", "duoc", "nay", "trong", "thi", "de", "voi",
    "da", "se", "dang", "cung", "nhu", "khi", "ma", "ra", "vao", "tu", "den", "con", "neu", "vi", "nen", "rat",
    "thay", "toi", "ban", "ho", "chung", "ay", "do", "o", "the", "and", "of", "to", "in", "is", "it", "a", "an",
})


class _WordKeys(dict[str, str]):
    """One partition's index word -> its term key (`keys.word_index`), made once per process (words recur across
    comments: about 40 keys a comment, docs/benchmarks.md, `search._WordKeys`). Bounded."""

    def __init__(self, partition: int) -> None:
        super().__init__()
        self.partition = partition

    def __missing__(self, word: str) -> str:
        if len(self) >= _CACHED_WORDS // 4:
            self.clear()
        key = self[word] = keys.word_index(self.partition, word)
        return key


_CACHED_WORDS: Final = 65536
_WORD_KEYS: Final = tuple(_WordKeys(p) for p in range(keys.PARTITIONS))


def index_words(*parts: str) -> list[str]:
    """The words of a comment's text that go to the word index, in order of first appearance: its distinct folded
    words at least `WORD_MIN` long and not `STOP_WORDS`, cut to `WORD_MAX`, the first `WORDS_PER_COMMENT` of
    those (tests/test_index_planning.py checks this against the loop over `text.folded_words` it was)."""
    words = _INDEX_WORDS("\n".join(parts))
    return words[:WORDS_PER_COMMENT] if len(words) > WORDS_PER_COMMENT else words


def record_fields(raw: Any) -> tuple[str, str, list[str]] | None:
    """What a record's `d` (JSON) is found by: its sender's email digest and address hash ("" when it has none) and
    its index words; None when it cannot be read (nothing to index it by)."""
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    get = data.get
    name, title, body = get("name") or "", get("title") or "", get("body") or ""
    email_digest, ip_hash = get("email_hash") or "", get("ip_hash") or ""
    if not all(isinstance(f, str) for f in (name, title, body, email_digest, ip_hash)):
        return None
    return email_digest, ip_hash, index_words(name, title, body)


def record_terms(partition: int, raw: Any) -> list[str] | None:
    """The terms a record's `d` (JSON) is found by (`keys.comment_terms`): what the indexer writes for it and what
    a reader matches the unindexed tail against; None when it cannot be read (nothing to index it by)."""
    fields = record_fields(raw)
    if fields is None:
        return None
    email_digest, ip_hash, words = fields
    # keys.comment_terms, with each word's key made once per process (`_WordKeys`).
    return [*keys.comment_terms(partition, email_digest, ip_hash, ()), *map(_WORD_KEYS[partition].__getitem__, words)]


def query_words(query: str) -> list[str]:
    """Every folded word of a query, in order, each once (all must be words of a comment that matches)."""
    return list(dict.fromkeys(text.folded_words(query)))


def indexed(word: str) -> str | None:
    """The word as the index holds it, or None when the index does not hold such words."""
    if len(word) < WORD_MIN or word in STOP_WORDS:
        return None
    return word[:WORD_MAX]


#: A comment's index words, each token's form kept per process (`text.WordForms`): one `map` over a dict in C for
#: a comment's ~75 tokens, where folding the text and a loop of tests per word cost 26-38 µs a comment
#: (docs/benchmarks.md, `search.index_words`).
_INDEX_WORDS: Final = text.WordForms(lambda word: indexed(word) or "")


def word_keys(partition: int, words: Sequence[str]) -> list[str]:
    return [keys.word_index(partition, word) for word in {w for w in map(indexed, words) if w is not None}]


# -- reading the index (lua/lib/terms.lua writes it) --------------------------------------------------------------

#: For each byte, the offsets (n % 8) of its set bits, highest first (bit n is the byte's 128 >> (n % 8)).
_BITS_DOWN: Final = tuple(tuple(k for k in range(7, -1, -1) if value & (128 >> k)) for value in range(256))


def decode_ns(raw: bytes) -> list[int]:
    """3-byte big-endian n's (a trailing partial entry of a damaged string is left out)."""
    return [int.from_bytes(raw[i:i + 3], "big") for i in range(0, len(raw) - 2, 3)]


def encode_ns(ns: Sequence[int]) -> bytes:
    return b"".join(n.to_bytes(3, "big") for n in ns)


def is_bitmap(raw: bytes) -> bool:
    """A term's own string is a bitmap when its first bit (n = 0, never a comment) is set."""
    return bool(raw) and raw[0] >= 128


def bitmap_ns(raw: bytes, first_byte: int = 0) -> list[int]:
    """The n's set in bitmap bytes that start at byte `first_byte` (bit 0, the mark, left out), ascending."""
    out = [(first_byte + i) * 8 + k for i, value in enumerate(raw) for k in reversed(_BITS_DOWN[value])]
    return out[1:] if out and out[0] == 0 else out


def bitmap_of(ns: Sequence[int]) -> bytes:
    """The bitmap form of n's (lib/terms.lua's `bitmap_of`): bit 0 set, then bit n for each."""
    out = bytearray(max(ns, default=0) // 8 + 1)
    for n in (0, *ns):
        out[n // 8] |= 128 >> (n % 8)
    return bytes(out)


def slot(raw: bytes) -> tuple[str, int] | None:
    """A slot of the n -> comment map: (id, submitted ms), or None where no comment is."""
    if len(raw) < keys.SEARCH_SLOT or not raw[0]:
        return None
    return raw[:26].decode(), int.from_bytes(raw[26:32], "big")


class Source(Protocol):
    """n's of one partition, read from the top down."""

    async def below(self, position: int, count: int) -> tuple[list[int], int]:
        """Up to `count` n's below `position`, highest first, and the next position: every n at or above it has
        been returned or ruled out; 0 when nothing is left."""
        ...

    def size(self) -> int:
        """How many n's (for a bitmap, bytes x 8: an upper bound, until counted)."""
        ...


class Listed:
    """n's held in memory (a bucket field, or none at all)."""

    def __init__(self, ns: Sequence[int]) -> None:
        self.ns = list(ns)

    def size(self) -> int:
        return len(self.ns)

    async def below(self, position: int, count: int) -> tuple[list[int], int]:
        end = bisect.bisect_left(self.ns, position)
        start = max(0, end - count)
        return self.ns[start:end][::-1], self.ns[start] if start > 0 else 0


class Postings:
    """A term's own string of 3-byte n's, ascending: pages from the end, a position found by bisection."""

    def __init__(self, scripts: Scripts, key: str, length: int) -> None:
        self._scripts, self.key, self.entries = scripts, key, length // 3
        self._known: tuple[int, int] | None = None  #: (position, entries below it) of the last page

    def size(self) -> int:
        return self.entries

    async def _range(self, start: int, end: int) -> list[int]:
        """Entries [start, end)."""
        if end <= start:
            return []
        return decode_ns(await self._scripts.command_soon("GETRANGE", self.key, start * 3, end * 3 - 1))

    async def _count_below(self, position: int) -> int:
        if position >= TOP:
            return self.entries
        if self._known is not None and self._known[0] == position:
            return self._known[1]
        low, high = 0, self.entries
        while high - low > 64:  # 31 probes a round trip
            probes = [low + (high - low) * k // 32 for k in range(1, 32)]
            values = await asyncio.gather(*(self._range(i, i + 1) for i in probes))
            new_low, new_high = low, high
            for index, value in zip(probes, values, strict=True):
                if value and value[0] < position:
                    new_low = index + 1
                else:
                    new_high = index
                    break
            low, high = new_low, new_high
        return low + bisect.bisect_left(await self._range(low, high), position)

    async def below(self, position: int, count: int) -> tuple[list[int], int]:
        end = await self._count_below(position)
        start = max(0, end - count)
        ns = (await self._range(start, end))[::-1]
        following = ns[-1] if start > 0 and ns else 0
        self._known = (following, start)
        return ns, following


class Bitmap:
    """A dense term's bitmap: bytes read from the position down."""

    def __init__(self, scripts: Scripts, key: str, length: int) -> None:
        self._scripts, self.key, self.length = scripts, key, length
        self.count: int | None = None

    def size(self) -> int:
        return self.count if self.count is not None else self.length * 8

    async def below(self, position: int, count: int) -> tuple[list[int], int]:
        high = min(position - 1, self.length * 8 - 1)  # the highest n still to look at
        found: list[int] = []
        for _ in range(4):
            if high < 1:
                return found, 0
            first = max(0, high // 8 - BITMAP_PAGE + 1)
            raw = await self._scripts.command_soon("GETRANGE", self.key, first, high // 8)
            for n in reversed(bitmap_ns(raw, first)):
                if n <= high:
                    found.append(n)
                    if len(found) == count:
                        return found, n
            high = first * 8 - 1
            if found:
                break
        return found, high + 1 if high >= 1 else 0


class Every:
    """Every n of the partition (the map itself), from its last n down."""

    def __init__(self, last: int) -> None:
        self.last = last

    def size(self) -> int:
        return self.last

    async def below(self, position: int, count: int) -> tuple[list[int], int]:
        top = min(position - 1, self.last)
        if top < 1:
            return [], 0
        low = max(1, top - count + 1)
        return list(range(top, low - 1, -1)), low if low > 1 else 0


class WithTail:
    """A term's n's: those of the unindexed tail whose records have it (above `done`), then the term's own (at or
    below `done`: what the term may hold beyond is left to the tail, so no n comes twice)."""

    def __init__(self, indexed: Source, tail: Sequence[int], done: int) -> None:
        self.indexed, self.recent, self.done = indexed, Listed(tail), done

    def size(self) -> int:
        return self.indexed.size() + self.recent.size()

    async def below(self, position: int, count: int) -> tuple[list[int], int]:
        out: list[int] = []
        if position > self.done + 1:
            out, following = await self.recent.below(position, count)
            if following:
                return out, following
            if len(out) == count:
                return out, self.done + 1 if self.done else 0
        more, following = await self.indexed.below(min(position, self.done + 1), count - len(out))
        return out + more, following


@dataclass
class Tail:
    """A partition's comments above its watermark, as read: their n's and each record's terms."""

    done: int
    last: int  #: the partition's last n
    first: int  #: the lowest n read (done + 1 unless the tail was longer than `TAIL_MAX`)
    terms: dict[int, set[str]] = field(default_factory=dict)  #: n -> its record's terms

    @property
    def complete(self) -> bool:
        """Whether every n above the watermark was read."""
        return self.first <= self.done + 1

    def ns(self, term: str) -> list[int]:
        """The tail's n's whose records have this term, ascending."""
        return sorted(n for n, terms in self.terms.items() if term in terms)


@dataclass(slots=True)
class Entry:
    t: int  #: submitted ms
    n: int
    id: str


@dataclass
class Stream:
    """One partition's source, walked from its cursor's place down; `position`: n's at or above it are seen."""

    partition: int
    source: Source
    position: int = TOP
    #: False when the source left out unindexed comments (a tail longer than `TAIL_MAX`): not every match is seen.
    whole: bool = True
    fetched: int = TOP  #: where the next read starts
    buffer: collections.deque[Entry] = field(default_factory=collections.deque)

    def __post_init__(self) -> None:
        self.fetched = self.position

    @property
    def finished(self) -> bool:
        return self.fetched == 0 and not self.buffer


class Index:
    """Reads a partition's index: terms, the n -> comment map, the walk."""

    def __init__(self, scripts: Scripts) -> None:
        self._scripts = scripts

    async def slots(self, partition: int, ns: Sequence[int]) -> dict[int, tuple[str, int]]:
        """The comments of these n's (n -> (id, submitted ms)); n's without one are left out. Near n's are read
        in one range."""
        runs: list[tuple[int, int]] = []
        for n in sorted(set(ns)):
            if runs and n - runs[-1][1] <= 8 and (n - 1) // keys.SEARCH_CHUNK == (runs[-1][0] - 1) // keys.SEARCH_CHUNK:
                runs[-1] = (runs[-1][0], n)
            else:
                runs.append((n, n))

        async def read(first: int, last: int) -> bytes:
            chunk, offset = divmod(first - 1, keys.SEARCH_CHUNK)
            raw: bytes = await self._scripts.command_soon(
                "GETRANGE", keys.search_ids(partition, chunk), offset * keys.SEARCH_SLOT,
                (offset + last - first + 1) * keys.SEARCH_SLOT - 1)
            return raw

        out: dict[int, tuple[str, int]] = {}
        for (first, last), raw in zip(runs, await asyncio.gather(*(read(*run) for run in runs)), strict=True):
            for n in range(first, last + 1):
                found = slot(raw[(n - first) * keys.SEARCH_SLOT:(n - first + 1) * keys.SEARCH_SLOT])
                if found is not None:
                    out[n] = found
        return out

    async def term(self, key: str, tail: Tail | None = None) -> Source:
        """A term's n's, wherever they are (its bucket's field, its own string, its bitmap); with the partition's
        `tail`, those of the unindexed comments too (`WithTail`)."""
        head, length, small = await asyncio.gather(
            self._scripts.command_soon("GETRANGE", key, 0, 0), self._scripts.command_soon("STRLEN", key),
            self._scripts.command_soon("HGET", keys.search_bucket(key), keys.search_field(key)))
        source: Source
        if is_bitmap(head):
            source = Bitmap(self._scripts, key, int(length))
        elif int(length):
            source = Postings(self._scripts, key, int(length))
        else:
            source = Listed(decode_ns(small or b""))
        return source if tail is None else WithTail(source, tail.ns(key), tail.done)

    async def tail(self, partition: int, limit: int | None = None) -> Tail:
        """The partition's comments above its watermark (the newest `limit` of them), each record's terms computed
        as the indexer computes them; a slot whose record is gone, or names another n, is left out."""
        last_raw, done_raw = await asyncio.gather(
            self._scripts.command_soon("GET", keys.search_seq(partition)),
            self._scripts.command_soon("GET", keys.search_done(partition)))
        last, done = int(last_raw or 0), int(done_raw or 0)
        first = max(done + 1, last - (TAIL_MAX if limit is None else limit) + 1)
        tail = Tail(done, last, first)
        if first > last:
            return tail
        found = await self.slots(partition, range(first, last + 1))
        rows = await asyncio.gather(*(self._scripts.command_soon("HMGET", keys.comment(comment_id), "d", "n")
                                      for comment_id, _ in found.values()))
        for n, (raw, number) in zip(found, rows, strict=True):
            if number is not None and number.isdigit() and int(number) == n:
                tail.terms[n] = set(record_terms(partition, raw) or ())
        return tail

    async def count(self, source: Source) -> int:
        """How many n's a source has (a bitmap's counted)."""
        if isinstance(source, Bitmap) and source.count is None:
            source.count = max(0, int(await self._scripts.command_soon("BITCOUNT", source.key)) - 1)
        return source.size()

    async def every(self, partition: int) -> Every:
        last = await self._scripts.command_soon("GET", keys.search_seq(partition))
        return Every(int(last or 0))

    async def all_ns(self, source: Source) -> list[int]:
        """Every n of a source, highest first."""
        out: list[int] = []
        position = TOP
        while position:
            ns, position = await source.below(position, 100_000)
            out += ns
        return out

    async def fill(self, stream: Stream) -> None:
        """Reads the stream's next page of n's and their comments (erased ones skipped)."""
        ns, stream.fetched = await stream.source.below(stream.fetched, PAGE)
        found = await self.slots(stream.partition, ns)
        stream.buffer.extend(Entry(found[n][1], n, found[n][0]) for n in ns if n in found)

    async def take(self, streams: Sequence[Stream], count: int) -> list[tuple[Stream, Entry]]:
        """The next `count` entries of the merge of `streams`, newest (submitted ms, then n) first; each
        stream's `position` moves past what it gave."""
        taken: list[tuple[Stream, Entry]] = []
        while len(taken) < count:
            waiting = [s for s in streams if not s.buffer and s.fetched]
            if waiting:
                await asyncio.gather(*(self.fill(s) for s in waiting))
                continue
            ready = [s for s in streams if s.buffer]
            if not ready:
                break
            stream = max(ready, key=lambda s: (s.buffer[0].t, s.buffer[0].n))
            entry = stream.buffer.popleft()
            stream.position = entry.n
            taken.append((stream, entry))
        return taken


def encode_cursor(streams: Sequence[Stream]) -> str:
    """Every partition's place (0: nothing left there), as an opaque cursor."""
    places = b"".join((0 if s.finished else s.position).to_bytes(3, "big") for s in streams)
    return "s1" + base64.urlsafe_b64encode(places).decode().rstrip("=")


def decode_cursor(cursor: str, partitions: int) -> list[int] | None:
    """The places a cursor holds, or None when it is not one for this many partitions (every character checked:
    the decoder would skip what is not of its alphabet)."""
    if not cursor.startswith("s1"):
        return None
    body = cursor[2:]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 3 * partitions:
        return None
    return [int.from_bytes(raw[i:i + 3], "big") for i in range(0, len(raw), 3)]
