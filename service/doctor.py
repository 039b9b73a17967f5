"""`comments-service doctor [--repair]`: finds damaged and inconsistent data, and mends what can be mended.

For every partition (a SCAN with the partition's match, which a Redis Cluster client runs on each master) it
looks for:

- keys of the wrong type for their kind (`wrong_type`), and keys of no kind `keys` builds (`unknown_key`);
- pending records missing from the pending queue or from their article's pending index; queue and index entries
  without a pending record (a lease included: a lease of a comment that is not pending);
- leases without a holder (a repair drops the lease: the comment is claimable again) and holders without a lease;
- a claim hint that is ahead (`keys.claim_hint`: a pending comment scored below its `from` with no lease that a
  claim's sweep will still see, or one the repair makes claimable): `claim_hint_ahead`, the hint deleted by a
  repair (claims then start at the queue's head, and set it again);
- the queue keys of before (`keys.legacy_ready`, `keys.legacy_pending_articles`: claimable is now pending without
  a live lease, and the record names its article): `legacy_queue_key`, deleted by a repair;
- the search sorted sets of before (`all`, and the `w:`, `e:`, `i:` keys as sorted sets where the compact index
  keeps strings): `legacy_search_index`, deleted by a repair (which then indexes every record anew);
- approved records missing from their article's order set (the article's public list: pages are made from the
  records); order entries of comments that are not approved; an article `count` that differs from its order set;
- copies of the public view left by versions before issue 19 (`keys.py`): an article's public hash `ap:`
  (`legacy_public_hash`) and a record's `pub` field (`legacy_public_field`), deleted by a repair;
- records missing from the search index (`not_in_search_index`: stored before it, or their n's slot names
  another comment), slots of the n -> comment map naming a comment that is gone (`search_slot_stale`), a comment
  counter behind the map (`search_seq_behind`), search terms whose n's differ from the records' (unsorted, a
  stale or missing n, in two places: `search_term_mismatch`, reported by the term's bucket and kind, never the
  word or digest; a repair writes the term again as the indexer would), a watermark past the last n
  (`search_done_ahead`), and decided records missing from their state's list, or listed under another state
  (`state_list_*`). Terms are checked for the n's the indexer has passed (`keys.search_done`); the comments it has
  not reached yet are its lag, reported apart (`Doctor.lag`: not damage). A repair first runs the indexer to the
  end (`Indexer.catch_up`) and again after giving records their missing numbers, so it ends fully indexed.

Each finding is one line: a kind code and the key (and comment id), never the text, names or emails of a
comment. With `repair`, each mendable finding is mended by one command (re-added to a queue, a dangling entry
dropped, a count recomputed, a leftover copy deleted); a key of the wrong type is never touched
(it may be the only copy of something: an operator looks at it). Best run while the service is quiet: a
decision made between the scan and a repair can make that repair stale (a later run then reports it).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from service import keys, search
from service.connections import RedisClient
from service.errors import StorageCorrupt
from service.indexer import Indexer
from service.models import COMMENT_ID_RE
from service.records import stored_ms
from service.scripts import Scripts, as_text, scored

#: The type each kind of key must have.
_FIXED: Final = {"pending": "zset", "leases": "zset", "holders": "hash", "claim": "hash",
                 "feed": "stream", "feed:trimmed": "string", "outbox": "stream"}
#: The partition's queue keys of before, no longer written or read (`keys.legacy_ready`,
#: `keys.legacy_pending_articles`): reported and, by a repair, deleted.
_LEGACY_QUEUE: Final = {keys.legacy_ready(0).rpartition(":")[2], keys.legacy_pending_articles(0).rpartition(":")[2]}
_BY_ID: Final = {"c": "hash", "h": "list"}
_ARTICLE_TYPES: Final = {"article": "hash", "article_order": "zset", "article_pending": "zset"}
#: The code of the article's public hash of before issue 19 (`keys.RETIRED_ARTICLE_KINDS`).
_LEGACY_PUBLIC: Final = next(code for code, name in keys.RETIRED_ARTICLE_KINDS.items()
                             if name == "legacy_article_public")

_STATS: Final = re.compile(r"(?:stats|lat):[0-9]{1,12}")
#: Search terms by a hash or a folded word (`keys.by_email`, `keys.by_ip`, `keys.word_index`): strings.
_INDEX_CODES: Final = set(keys.SEARCH_TERM_KINDS)
_SEARCH_IDS: Final = re.compile(r"n:[0-9]{1,7}")
_SEARCH_BUCKET: Final = re.compile(r"b:[0-9a-f]{2,4}")
_CHUNK: Final = 1000
#: Bytes of n's a term keeps in its bucket (lib/terms.lua's SEARCH_SMALL).
SEARCH_SMALL: Final = 96


@dataclass
class Finding:
    kind: str
    key: str
    id: str = ""
    mended: bool | None = None  #: None when not asked to repair

    def line(self) -> str:
        where = f"{self.key} {self.id}".strip()
        state = "" if self.mended is None else " (mended)" if self.mended else " (not mended)"
        return f"{self.kind} {where}{state}"


@dataclass
class _Partition:
    number: int
    types: dict[str, str] = field(default_factory=dict)  #: key -> type, of keys of a known kind
    wrong: set[str] = field(default_factory=set)  #: keys of the wrong type: reported, then left alone
    articles: set[str] = field(default_factory=set)
    #: article pending indexes as read: once an article, not once a comment (an article may have thousands)
    indexes: dict[str, dict[str, float] | None] = field(default_factory=dict)
    #: The search watermark read before the scan: every term holding an n at or below it existed before the scan
    #: began, so the scan lists it (an indexer running meanwhile only adds n's above it).
    search_done: int = 0


def _kind_of(partition: int, key: str) -> tuple[str, str] | None:
    """(expected type, article id or "") for a key of this partition, or None if `keys` builds no such key."""
    rest = key.removeprefix(f"{keys.PREFIX}:{{p{partition:02x}}}:")
    if rest in _FIXED:
        return _FIXED[rest], ""
    if rest.startswith("st:") and rest[3:] in keys.DECIDED_STATES:
        return "zset", ""
    if _STATS.fullmatch(rest) or _SEARCH_BUCKET.fullmatch(rest):
        return "hash", ""
    if rest in ("n", "n:done") or _SEARCH_IDS.fullmatch(rest):
        return "string", ""
    code, _, value = rest.partition(":")
    if code in _BY_ID and COMMENT_ID_RE.fullmatch(value) and keys.partition_of_comment(value) == partition:
        return _BY_ID[code], ""
    if code in _INDEX_CODES and value:
        return "string", ""
    name = keys.ARTICLE_KINDS.get(code)
    if name in _ARTICLE_TYPES and value and keys.partition_of_article(value) == partition:
        return _ARTICLE_TYPES[name], value
    return None


def _legacy_search(partition: int, key: str, found: str) -> bool:
    """Whether the key is a search sorted set of before issue 19: every comment (`all`), or a word's, a sender's
    or an address's ids by time, where the compact index now keeps strings (`keys.SEARCH_TERM_KINDS`)."""
    rest = key.removeprefix(f"{keys.PREFIX}:{{p{partition:02x}}}:")
    code, _, value = rest.partition(":")
    return found == "zset" and (rest == "all" or (code in _INDEX_CODES and bool(value)))


def _legacy_public(partition: int, key: str) -> bool:
    """Whether the key is an article's public hash of before issue 19 (`keys.legacy_article_public`)."""
    code, _, article = key.removeprefix(f"{keys.PREFIX}:{{p{partition:02x}}}:").partition(":")
    return code == _LEGACY_PUBLIC and bool(article) and keys.partition_of_article(article) == partition


async def _each(redis: RedisClient, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """Commands sent in pipelines of a thousand (a partition may hold a hundred thousand records)."""
    out: list[Any] = []
    for start in range(0, len(commands), _CHUNK):
        pipe: Any = redis.pipeline(transaction=False)
        for command in commands[start:start + _CHUNK]:
            pipe.execute_command(*command)
        out += await pipe.execute()
    return out


def _indexed_terms(partition: int, raw: Any, submitted: Any) -> list[str] | None:
    """The search terms of a record (`search.record_terms`, as the indexer writes them), or None when it is too
    damaged to say."""
    if not raw or not submitted or not as_text(submitted).isdigit():
        return None
    return search.record_terms(partition, raw)


def _pairs_raw(raw: Any) -> list[tuple[bytes, bytes]]:
    """A HGETALL reply as (field, value) pairs, values as bytes."""
    if isinstance(raw, dict):
        return list(raw.items())
    return [(raw[i], raw[i + 1]) for i in range(0, len(raw), 2)]


def _pairs(flat: Any) -> dict[str, float]:
    return {as_text(member): score for member, score in scored(flat)}


@dataclass
class _Queues:
    """A partition's queues as read (None: the key has the wrong type, so the checks that need it are skipped)."""

    pending: dict[str, float] | None
    leases: dict[str, float] | None
    holders: dict[str, str] | None


class Doctor:
    def __init__(self, redis: RedisClient, *, repair: bool) -> None:
        self._redis = redis
        self._repair = repair
        self._indexer = Indexer(Scripts(redis))
        self.findings: list[Finding] = []
        #: Comments stored and not indexed yet, by partition (those behind: the indexer's lag, not damage).
        self.lag: dict[int, int] = {}

    async def examine(self) -> list[Finding]:
        for partition in range(keys.PARTITIONS):
            await self._partition(partition)
        return self.findings

    async def _found(self, kind: str, key: str, comment_id: str = "", *mend: Sequence[Any]) -> None:
        """Record a finding; with repair, run its mending commands (none: it cannot be mended)."""
        finding = Finding(kind, key, comment_id)
        if self._repair:
            for command in mend:
                await self._redis.execute_command(*command)
            finding.mended = bool(mend)
        self.findings.append(finding)

    async def _catch_up(self, number: int) -> None:
        """With repair, the partition's search terms written up to its last n (a damaged key stops that: it is
        reported as such)."""
        if self._repair:
            with contextlib.suppress(StorageCorrupt):
                await self._indexer.catch_up([number])

    async def _partition(self, number: int) -> None:
        await self._catch_up(number)
        part = _Partition(number, search_done=stored_ms(await self._redis.get(keys.search_done(number))) or 0)
        names = [as_text(k) async for k in self._redis.scan_iter(match=f"{keys.PREFIX}:{{p{number:02x}}}:*",
                                                              count=1000)]
        found_types = await _each(self._redis, [("TYPE", name) for name in names])
        for name, found in zip(names, found_types, strict=True):
            if _legacy_public(number, name):
                await self._found("legacy_public_hash", name, "", ("DEL", name))
                continue
            if name.removeprefix(f"{keys.PREFIX}:{{p{number:02x}}}:") in _LEGACY_QUEUE:
                await self._found("legacy_queue_key", name, "", ("DEL", name))
                continue
            if _legacy_search(number, name, as_text(found)):
                await self._found("legacy_search_index", name, "", ("DEL", name))
                continue
            kind = _kind_of(number, name)
            if kind is None:
                await self._found("unknown_key", name)
                continue
            expected, article = kind
            if as_text(found) != expected:
                await self._found("wrong_type", name)
                part.wrong.add(name)
                continue
            part.types[name] = expected
            if article:
                part.articles.add(article)
        await self._queues(part)
        await self._catch_up(number)  # the records given a number by the repair: their terms

    async def _zset(self, part: _Partition, key: str) -> dict[str, float] | None:
        """Members and scores; None for a key of the wrong type (the checks that need it are skipped)."""
        if key in part.wrong:
            return None
        return _pairs(await self._redis.execute_command("ZRANGE", key, 0, -1, "WITHSCORES"))

    async def _hash(self, part: _Partition, key: str) -> dict[str, str] | None:
        if key in part.wrong:
            return None
        raw = await self._redis.execute_command("HGETALL", key)
        if isinstance(raw, dict):
            return {as_text(k): as_text(v) for k, v in raw.items()}
        return {as_text(raw[i]): as_text(raw[i + 1]) for i in range(0, len(raw), 2)}

    async def _queues(self, part: _Partition) -> None:
        p = part.number
        prefix = f"{keys.PREFIX}:{{p{p:02x}}}:c:"
        ids = [k.removeprefix(prefix) for k in part.types if k.startswith(prefix)]
        rows = await _each(self._redis, [("HMGET", keys.comment(i), "s", "a", "t", "pub") for i in ids])
        records = {i: [None if v is None else as_text(v) for v in row] for i, row in zip(ids, rows, strict=True)}
        pending_ids = {i: r for i, r in records.items() if r[0] == "pending" and r[1] and r[2]}
        approved = {i: r for i, r in records.items() if r[0] == "approved" and r[1]}
        for cid in sorted(i for i, r in records.items() if r[3] is not None):
            await self._found("legacy_public_field", keys.comment(cid), cid, ("HDEL", keys.comment(cid), "pub"))
        part.articles |= {r[1] for r in records.values() if r[1] and keys.partition_of_article(r[1]) == p}
        queues = _Queues(await self._zset(part, keys.pending(p)), await self._zset(part, keys.leases(p)),
                         await self._hash(part, keys.holders(p)))
        index_of = getattr(keys, "article_pending", None)  # the per-article pending index, where it exists
        for cid, record in pending_ids.items():
            await self._pending_record(part, cid, record, queues, index_of)
        await self._dangling(p, pending_ids, queues)
        await self._claim_hint(part, pending_ids, queues)
        for article in sorted(part.articles):
            await self._article(part, article, approved, pending_ids, index_of)
        await self._search_indexes(part, ids)
        await self._state_lists(part, records)

    async def _search_indexes(self, part: _Partition, ids: list[str]) -> None:
        """The search index (`service.search`) against the records: every record has a number n whose slot names
        it (`not_in_search_index`: a new n, its slot and its terms), no slot names a comment that is gone or has
        another n (`search_slot_stale`: zeroed), the partition's counter is past every n (`search_seq_behind`),
        and every term holds exactly the n's of the records that have it, ascending, in one place
        (`search_term_mismatch`: written again, in the form the store would give it)."""
        p = part.number
        seq_key = keys.search_seq(p)
        tag = seq_key[:-2]
        terms_of = [k for k in part.types if k.startswith(tag + ":") and k[len(tag) + 1:].partition(":")[0]
                    in _INDEX_CODES]
        buckets = [k for k in part.types if _SEARCH_BUCKET.fullmatch(k[len(tag) + 1:])]
        if seq_key in part.wrong or any(k.startswith(seq_key + ":") for k in part.wrong):
            return
        seq = stored_ms(await self._redis.get(seq_key)) or 0
        done = part.search_done
        slots = await self._search_slots(part)
        rows = await _each(self._redis, [("HMGET", keys.comment(i), "d", "t", "n") for i in ids])
        expected: dict[str, list[int]] = {}
        numbered: dict[str, int] = {}
        missing: list[tuple[str, int, list[str]]] = []
        for cid, (raw, submitted, number) in zip(ids, rows, strict=True):
            terms = _indexed_terms(p, raw, submitted)
            n = int(number) if number is not None and as_text(number).isdigit() else 0
            if n and slots.get(n, ("", 0))[0] == cid:
                numbered[cid] = n
            if terms is None:
                continue  # a damaged record: nothing to index it by (its slot stays)
            if numbered.get(cid) == n:
                if n <= done:  # past the watermark: the indexer writes its terms
                    for term in terms:
                        expected.setdefault(term, []).append(n)
            else:
                missing.append((cid, int(submitted), terms))
        top = max([seq, *slots, *numbered.values()])
        if top > seq:
            await self._found("search_seq_behind", seq_key, "", ("SET", seq_key, top))
        if done > top:
            await self._found("search_done_ahead", keys.search_done(p), "", ("SET", keys.search_done(p), top))
            done = top
        self.lag[p] = top - done
        await self._stale_slots(p, slots, numbered)
        for cid, submitted, terms in missing:
            if any(t in part.wrong or keys.search_bucket(t) in part.wrong for t in terms):
                continue
            # A new number past the watermark: its terms are the indexer's (the repair's `_catch_up`).
            top += 1
            n = int(await self._redis.execute_command("INCR", seq_key)) if self._repair else top
            top = max(top, n)
            chunk, offset = divmod(n - 1, keys.SEARCH_CHUNK)
            await self._found("not_in_search_index", keys.comment(cid), cid,
                              ("SETRANGE", keys.search_ids(p, chunk), offset * keys.SEARCH_SLOT,
                               cid.encode() + submitted.to_bytes(6, "big")), ("HSET", keys.comment(cid), "n", n))
        await self._search_terms(part, terms_of, buckets, expected, done)

    async def _stale_slots(self, p: int, slots: dict[int, tuple[str, int]], numbered: dict[str, int]) -> None:
        for n, (cid, _) in sorted(slots.items()):
            if numbered.get(cid) != n:
                chunk, offset = divmod(n - 1, keys.SEARCH_CHUNK)
                await self._found("search_slot_stale", keys.search_ids(p, chunk), cid,
                                  ("SETRANGE", keys.search_ids(p, chunk), offset * keys.SEARCH_SLOT,
                                   bytes(keys.SEARCH_SLOT)))

    async def _search_slots(self, part: _Partition) -> dict[int, tuple[str, int]]:
        """The n -> comment map as stored: n -> (id, submitted ms)."""
        seq_key = keys.search_seq(part.number)
        chunks = sorted({int(k[len(seq_key) + 1:]) for k in part.types
                         if k.startswith(seq_key + ":") and k[len(seq_key) + 1:].isdigit()})
        slots: dict[int, tuple[str, int]] = {}
        raws = await _each(self._redis, [("GET", keys.search_ids(part.number, c)) for c in chunks])
        for chunk, raw in zip(chunks, raws, strict=True):
            for offset in range(0, len(raw or b""), keys.SEARCH_SLOT):
                found = search.slot(raw[offset:offset + keys.SEARCH_SLOT])
                if found is not None:
                    slots[chunk * keys.SEARCH_CHUNK + offset // keys.SEARCH_SLOT + 1] = found
        return slots

    async def _search_terms(self, part: _Partition, own: list[str], buckets: list[str],
                            expected: dict[str, list[int]], done: int) -> None:
        """Each term as found against the records' (those at or below the watermark `done`: n's above it that
        an indexer wrote since it was read are not looked at)."""
        tag = keys.search_seq(part.number)[:-2]
        found: dict[str, list[list[int]]] = {}  #: term -> the n's of each place it is found in
        own_raw = await _each(self._redis, [("GET", k) for k in own])
        for key, raw in zip(own, own_raw, strict=True):
            raw = raw or b""
            found.setdefault(key, []).append(search.bitmap_ns(raw) if search.is_bitmap(raw)
                                             else search.decode_ns(raw) + ([-1] if len(raw) % 3 else []))
        for bucket in buckets:
            for name, raw in _pairs_raw(await self._redis.execute_command("HGETALL", bucket)):
                term = f"{tag}:{as_text(name)}"
                ns = search.decode_ns(raw) + ([-1] if len(raw) % 3 else [])
                if keys.search_bucket(term) != bucket:
                    ns = [-1, *ns]  # in a bucket it does not belong to
                found.setdefault(term, []).append(ns)
        for term in sorted(found.keys() | expected.keys()):
            want = sorted(expected.get(term, []))
            places = [kept for kept in ([n for n in ns if n <= done] for ns in found.get(term, [])) if kept]
            if places == ([want] if want else []) or await self._term_now_is(term, want, done):
                continue
            if term in part.wrong or keys.search_bucket(term) in part.wrong:
                continue
            await self._found("search_term_mismatch", keys.search_bucket(term), keys.search_field(term)[0],
                              *self._rewrite_term(term, want, buckets))

    async def _term_now_is(self, term: str, want: list[int], done: int) -> bool:
        """Whether the term, read again now, holds exactly `want` (at or below `done`) in one place: an indexer
        running since the scan may have moved a growing term from its bucket to a key of its own."""
        raw_own, raw_field = await _each(self._redis, [("GET", term),
                                                       ("HGET", keys.search_bucket(term), keys.search_field(term))])
        places = []
        if raw_own is not None:
            places.append(search.bitmap_ns(raw_own) if search.is_bitmap(raw_own)
                          else search.decode_ns(raw_own) + ([-1] if len(raw_own) % 3 else []))
        if raw_field is not None:
            places.append(search.decode_ns(raw_field) + ([-1] if len(raw_field) % 3 else []))
        kept = [ns for ns in ([n for n in found if n <= done] for found in places) if ns]
        return kept == ([want] if want else [])

    @staticmethod
    def _rewrite_term(term: str, ns: list[int], buckets: list[str]) -> list[tuple[Any, ...]]:
        """Commands that leave the term's n's in one place, as lib/terms.lua puts them."""
        field = keys.search_field(term)
        commands: list[tuple[Any, ...]] = [("DEL", term), *(("HDEL", b, field) for b in buckets)]
        if not ns:
            return commands
        if len(ns) * 3 <= SEARCH_SMALL:
            return [*commands, ("HSET", keys.search_bucket(term), field, search.encode_ns(ns))]
        if len(ns) * 24 > ns[-1]:
            return [*commands, ("SET", term, search.bitmap_of(ns))]
        return [*commands, ("SET", term, search.encode_ns(ns))]

    async def _state_lists(self, part: _Partition, records: dict[str, list[str | None]]) -> None:
        p = part.number
        rows = await _each(self._redis, [("HGET", keys.comment(i), "dt") for i in records])
        decided = {i: as_text(dt) for i, dt in zip(records, rows, strict=True) if dt is not None}
        for state in keys.DECIDED_STATES:
            key = keys.state_index(p, state)
            listed = await self._zset(part, key)
            if listed is None:
                continue
            for cid, record in sorted(records.items()):
                if record[0] == state and cid not in listed and cid in decided:
                    await self._found("state_list_missing", key, cid, ("ZADD", key, decided[cid], cid))
            for cid in sorted(set(listed) - {i for i, r in records.items() if r[0] == state}):
                await self._found("state_list_entry_stale", key, cid, ("ZREM", key, cid))

    async def _pending_record(self, part: _Partition, cid: str, record: list[str | None], queues: _Queues,
                              index_of: Any) -> None:
        """A pending record is in the pending queue and its article's index."""
        p, article, submitted = part.number, record[1], record[2]
        if queues.pending is not None and cid not in queues.pending:
            await self._found("pending_not_in_queue", keys.pending(p), cid, ("ZADD", keys.pending(p), submitted, cid))
        if index_of is not None:
            index = index_of(article)
            if index not in part.indexes:
                part.indexes[index] = await self._zset(part, index)
            members = part.indexes[index]
            if members is not None and cid not in members:
                await self._found("pending_not_in_article_index", index, cid, ("ZADD", index, submitted, cid))

    async def _dangling(self, p: int, pending_ids: dict[str, list[str | None]], queues: _Queues) -> None:
        """Queue entries without a pending record (a lease of a comment that is not pending); leases without a
        holder, holders without a lease."""
        for key, entries, drop in ((keys.pending(p), queues.pending, "ZREM"), (keys.leases(p), queues.leases, "ZREM"),
                                   (keys.holders(p), queues.holders, "HDEL")):
            for cid in sorted(set(entries or ()) - set(pending_ids)):
                await self._found("queue_entry_without_record", key, cid, (drop, key, cid))
        if queues.holders is None or queues.leases is None:
            return
        for cid in sorted(set(queues.leases) & set(pending_ids) - set(queues.holders)):
            # Without its lease the comment is claimable again (pending, not leased).
            await self._found("lease_without_holder", keys.leases(p), cid, ("ZREM", keys.leases(p), cid))
        for cid in sorted(set(queues.holders) & set(pending_ids) - set(queues.leases)):
            await self._found("holder_without_lease", keys.holders(p), cid, ("HDEL", keys.holders(p), cid))

    async def _claim_hint(self, part: _Partition, pending_ids: dict[str, list[str | None]], queues: _Queues) -> None:
        """The claim hint (claim.lua) is behind every claimable comment: each pending comment scored below `from`
        has a lease with a holder that ends after `swept` (a lease ending before was swept already: it would
        never be claimed). A repair deletes a hint that is ahead: claims start at the head, then set it again."""
        key = keys.claim_hint(part.number)
        hint = await self._hash(part, key)
        if not hint or queues.leases is None or queues.holders is None:
            return
        try:
            start, swept = float(hint["from"]), float(hint["swept"])
        except (KeyError, ValueError):
            await self._found("claim_hint_ahead", key, "", ("DEL", key))
            return
        # Where each pending comment is (or will be, once a repair re-queued it).
        scores = dict(queues.pending or {})
        for cid, record in pending_ids.items():
            if cid not in scores and record[2] is not None:
                with contextlib.suppress(ValueError):
                    scores[cid] = float(record[2])
        for cid, score in sorted(scores.items(), key=lambda item: (item[1], item[0])):
            if score >= start:
                break
            if cid not in pending_ids:
                continue
            lease = queues.leases.get(cid)
            if lease is None or lease <= swept or cid not in queues.holders:
                await self._found("claim_hint_ahead", key, cid, ("DEL", key))
                return

    async def _article(self, part: _Partition, article: str, approved: dict[str, list[str | None]],
                       pending_ids: dict[str, list[str | None]], index_of: Any) -> None:
        order_key, article_key = keys.article_order(article), keys.article(article)
        if index_of is not None:
            index = index_of(article)
            members = await self._zset(part, index)
            for cid in sorted(set(members or ()) - {i for i, r in pending_ids.items() if r[1] == article}):
                await self._found("index_entry_without_record", index, cid, ("ZREM", index, cid))
        order = await self._zset(part, order_key)
        if order is None or article_key in part.wrong:
            return
        mine = {i: r for i, r in approved.items() if r[1] == article}
        for cid in sorted(mine):
            if cid not in order:
                seq = await self._redis.execute_command("HINCRBY", article_key, "seq", 1) if self._repair else 0
                await self._found("approved_not_in_order", order_key, cid, ("ZADD", order_key, seq, cid))
                order[cid] = seq
        for cid in sorted(set(order) - set(mine)):
            await self._found("order_entry_not_approved", order_key, cid, ("ZREM", order_key, cid))
        count = await self._redis.execute_command("HGET", article_key, "count")
        expected = len(set(order) & set(mine))
        if (count is not None or expected) and as_text(count or b"0") != str(expected):
            await self._found("count_mismatch", article_key, "", ("HSET", article_key, "count", expected),
                              ("HINCRBY", article_key, "ver", 1))


def report(findings: list[Finding], lag: int = 0) -> str:
    """One line a finding, then the count; `lag`: comments the search indexer has not reached yet (not damage:
    searches read them from their records meanwhile)."""
    lines = [f.line() for f in findings]
    if lag:
        lines.append(f"search index: {lag} comment(s) not indexed yet (the indexer's lag; --repair indexes them)")
    mended = sum(1 for f in findings if f.mended)
    unmended = sum(1 for f in findings if f.mended is False)
    summary = f"{len(findings)} finding(s)" + (f", {mended} mended, {unmended} not mended"
                                               if any(f.mended is not None for f in findings) else "")
    return "\n".join([*lines, summary])


async def doctor(redis: RedisClient, *, repair: bool) -> list[Finding]:
    return await Doctor(redis, repair=repair).examine()
