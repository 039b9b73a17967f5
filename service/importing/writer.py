"""Imported comments into Redis: each one an `Entry` (the record's hash fields, its history, its indexes) that
`lua/import.lua` stores as the service itself would have, sent in pipelines of `BATCH` script calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.exceptions import RedisError

from service import keys
from service.scripts import Arg, Scripts, as_text

#: Script calls per pipeline: enough to pay one round trip per few hundred comments, small enough to keep
#: Redis answering others meanwhile.
BATCH: Final = 300


@dataclass(slots=True)
class Entry:
    id: str
    article: str
    state: str
    submitted_ms: int
    #: The record's hash fields (`d`, `a`, `t`, `s`, `v`, `f`; decided: `did`, `dt`, `db`, `dr`; approved: `ap`).
    fields: list[tuple[str, str]]
    #: History entries (JSON), oldest first; none for a first decision the fields describe (`records.history_entries`).
    history: list[str] = field(default_factory=list)
    #: The indexes the comment joins (zset key, score).
    indexes: list[tuple[str, int]] = field(default_factory=list)
    #: The search block (`search_keys` here: the partition's `n` key, which gives it its number), last in KEYS.
    search: list[str] = field(default_factory=list)
    #: A restored approved comment's place in its article's order set; None: from its approval time.
    order: int | None = None
    #: An approved reply's parent id, which must be public in the article (else the answer is "bad_parent").
    check_parent: str = ""
    feed: bool = False
    #: For the report: the source's id of the comment.
    source_id: str = ""
    #: The same comment as a top-level one, for when its parent turns out not to be public.
    orphan: Callable[[], Entry] | None = None


def index_keys(comment_id: str, state: str, submitted_ms: int, decided_ms: int | None, email_digest: str,
               ip_hash: str, words: Sequence[str]) -> list[tuple[str, int]]:
    """The sorted sets decide.lua puts a comment of this state in (where this version of `keys` has them): its
    decided state's list by decision time. (The search terms: `search_keys`.)"""
    p = keys.partition_of_comment(comment_id)
    out: list[tuple[str, int]] = []
    state_index = getattr(keys, "state_index", None)
    if state_index is not None and state != "pending" and decided_ms is not None:
        out.append((state_index(p, state), decided_ms))
    return out


def search_keys(comment_id: str) -> list[str]:
    """The search block the store gives a comment: import.lua gives it the partition's next comment number and
    its slot; its terms are the indexer's (`service.indexer`: `Importer.run` catches it up at the end)."""
    return [keys.search_seq(keys.partition_of_comment(comment_id))]


def script_call(entry: Entry) -> tuple[list[str], list[Arg]]:
    """import.lua's KEYS and ARGV for an entry."""
    script_keys = [*keys.import_keys(entry.id, entry.article), *(key for key, _ in entry.indexes), *entry.search]
    args: list[Arg] = [entry.id, entry.article, entry.state, entry.submitted_ms,
                       "" if entry.order is None else entry.order, entry.check_parent, "1" if entry.feed else "0",
                       len(entry.fields), len(entry.history)]
    for name, value in entry.fields:
        args += [name, value]
    args += entry.history
    args += [score for _, score in entry.indexes]
    return script_keys, args


#: One answer of import.lua: ("ok" | "exists" | "bad_parent" | "invalid" | "corrupt" | "error", detail).
Answer = tuple[str, str]


async def write(scripts: Scripts, entries: Sequence[Entry]) -> list[Answer]:
    """Each entry's answer. A pipeline that fails as a whole (a refused command) is tried again call by call, so
    one bad entry fails alone."""
    batch = scripts.batch()
    for entry in entries:
        batch.script("import", *script_call(entry))
    try:
        return [_answer(result) for result in await batch.execute()]
    except RedisError:
        pass
    answers: list[Answer] = []
    for entry in entries:
        try:
            answers.append(_answer(await scripts.run("import", *script_call(entry))))
        except RedisError as exc:
            answers.append(("error", str(exc)[:200]))
    return answers


def _answer(result: Any) -> Answer:
    status = as_text(result[0])
    return status, as_text(result[1]) if len(result) > 1 else ""


async def write_article(scripts: Scripts, article_id: str, closed: bool, sequence: int) -> Answer:
    """A restored article's open or closed state and approval sequence (import.lua's article form)."""
    return _answer(await scripts.run("import", [keys.article(article_id)],
                                     ["article", "1" if closed else "0", sequence]))
