"""Search over every comment, whatever its state: by words (with or without Vietnamese diacritics), name,
email, address hash, article, state and submission dates, newest first, with pages.

How it scales, honestly. Each partition keeps sorted sets of comment ids scored by submission time (written by
`lua/lib/store.lua` at submission; `comments-service doctor --repair` fills them for comments stored before):
every comment (`keys.comments_index`), by the keyed digest of the sender's email (`keys.by_email`: the address
itself never enters a key), by address hash (`keys.by_ip`) and by folded word (`keys.word_index`). A query picks
the most selective of these per partition (the email's or the address's set, else the rarest of its words,
else every comment), walks the partitions' sets merged newest first, and judges each candidate's record against
every criterion. A query fans out to every partition (or to the article's only), so it runs on a Redis Cluster
as on one server. Criteria no index serves (a name, a state, dates narrow only the walk) cost a record read per
candidate: a request reads at most `SCAN_MAX` candidates and says how far it got (`scanned`, `complete`,
`next_cursor`), as the bulk filters do.

Words: the folded words (`text.fold`: lower case, no diacritics, đ -> d) of the name, title and body, at least
`WORD_MIN` characters, without `STOP_WORDS`, cut to `WORD_MAX` characters (the key stays short; the record
check compares whole words), the first `WORDS_PER_COMMENT` distinct ones of a comment. A query's words must all
be words of the comment; a query word the index does not hold (too short, a stop word) is checked on the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from service import keys, text

WORD_MIN: Final = 2
WORD_MAX: Final = 32
#: Distinct words of a comment that go to the index; a comment's later words are found only through others.
WORDS_PER_COMMENT: Final = 300
#: Candidates one search request reads at most.
SCAN_MAX: Final = 2000
#: Words too common to select anything (folded): Vietnamese function words and a few English ones.
STOP_WORDS: Final = frozenset({
    "va", "la", "cua", "co", "cac", "nhung", "mot", "cho", "khong", "duoc", "nay", "trong", "thi", "de", "voi",
    "da", "se", "dang", "cung", "nhu", "khi", "ma", "ra", "vao", "tu", "den", "con", "neu", "vi", "nen", "rat",
    "thay", "toi", "ban", "ho", "chung", "ay", "do", "o", "the", "and", "of", "to", "in", "is", "it", "a", "an",
})


def index_words(*parts: str) -> list[str]:
    """The words of a comment's text that go to the word index, in order of first appearance."""
    seen: dict[str, None] = {}
    for word in text.folded_words("\n".join(parts)):
        if len(word) >= WORD_MIN and word not in STOP_WORDS:
            seen.setdefault(word[:WORD_MAX], None)
            if len(seen) == WORDS_PER_COMMENT:
                break
    return list(seen)


def query_words(query: str) -> list[str]:
    """Every folded word of a query, in order, each once (all must be words of a comment that matches)."""
    return list(dict.fromkeys(text.folded_words(query)))


def indexed(word: str) -> str | None:
    """The word as the index holds it, or None when the index does not hold such words."""
    if len(word) < WORD_MIN or word in STOP_WORDS:
        return None
    return word[:WORD_MAX]


def word_keys(partition: int, words: Sequence[str]) -> list[str]:
    return [keys.word_index(partition, word) for word in {w for w in map(indexed, words) if w is not None}]
