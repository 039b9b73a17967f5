"""Rule-based risk signals, computed at submission and shown to moderators beside each pending comment.

They never decide anything by themselves: pre-moderation means a person decides. They help sort the queue
and find the spam run (bulk decisions can filter on them).

The signals of the text are judged here; those of the sender (`repeated_text`, `ip_reputation`,
`email_reputation`) come from what Redis knows, in the submission's gate (`lua/lib/gate.lua`), which adds them to
the record in the same step that stores it.
"""

from __future__ import annotations

import re
from typing import Final

from service import text

_TLDS: Final = ("com", "net", "org", "vn", "info", "xyz", "top", "io")
#: What any link must contain; most comments contain none of these, and looking for them is several times
#: cheaper than the scan (docs/benchmarks.md).
_LINK_HINTS: Final = ("http", "www.", *(f".{tld}" for tld in _TLDS))
#: Whether a folded text holds any of `_LINK_HINTS`: one search in C rather than a Python loop over eleven `in`
#: tests (docs/benchmarks.md).
_ANY_HINT: Final = re.compile("|".join(re.escape(hint) for hint in _LINK_HINTS))

# What counts as a link is what `findall` of this expression counts:
#
#     (?i)\b(?:https?://|www\.)\S+|\b[\w-]+\.(?:com|net|...)\b
#
# but that expression costs quadratic time: the engine tries `\b[\w-]+` at every word boundary of a run such as
# "a-a-a-...", runs to the run's end each time and only then finds no ".com" ("a-" * 2495 + " .com" takes a
# visible fraction of a second; docs/benchmarks.md).
# `_links` counts the same matches with three expressions that each look at a character a bounded number of
# times, and a loop that advances over matches, never back (tests/test_risk.py checks both agree, and that the
# cost grows linearly):
#: Where the first alternative starts; its end (the `\S+`) is looked for only when it is taken.
_URL_START: Final = re.compile(r"(?i)\b(?:https?://|www\.)(?=\S)")
_NON_SPACE: Final = re.compile(r"\S+")
#: A whole run of [\w-] (never part of one: the look-behind) followed by a domain ending. A run holds no ".", so
#: the possessive `++` gives nothing back and each run is read once.
_DOMAIN_RUN: Final = re.compile(rf"(?i)(?<![\w-])[\w-]++(?=\.(?:{'|'.join(_TLDS)})\b)")
_DOMAIN_END: Final = re.compile(rf"(?i)\.(?:{'|'.join(_TLDS)})\b")
_BOUNDARY: Final = re.compile(r"\b")
#: From this many links a comment has "many_links"; counting stops there.
_MANY_LINKS: Final = 3


def _links(text: str, enough: int | None = None) -> int:
    # (?i) also matches "ı" and "İ" (which lower() makes "i" + U+0307) to "i"; a hint too many costs only the
    # scan, a hint missed would hide a link.
    folded = text.lower() if text.isascii() else text.lower().replace("ı", "i").replace("\u0307", "")
    if not _ANY_HINT.search(folded):
        return 0
    return _count_links(text, enough)


def _count_links(text: str, enough: int | None = None) -> int:
    r"""The number of non-overlapping links, left to right, as `findall` of the expression above counts them
    (or `enough`, once that many are found).

    At each step the next match is the leftmost start of either alternative at or after `pos`, the first
    alternative on a tie. The second alternative starting at p needs a word boundary at p and the run of [\w-]
    from p to be followed by a domain ending: so within a run it starts at the first boundary at or after
    `pos`, if any. A search is made again only when `pos` passed its answer, from `pos`: no character is
    looked at twice by the same search.
    """
    count = 0
    pos = 0
    url = _URL_START.search(text)
    runs = _DOMAIN_RUN.finditer(text)
    run = next(runs, None)
    domain: int | None = None  # where the second alternative starts in `run` (None: not looked for yet)
    while (url is not None or run is not None) and count != enough:
        if url is not None and url.start() < pos:
            url = _URL_START.search(text, pos)
            continue
        if run is not None and (domain is None or domain < pos):
            boundary = _BOUNDARY.search(text, max(run.start(), pos))
            if boundary is None or boundary.start() >= run.end():
                run, domain = next(runs, None), None  # no link can start in this run any more
                continue
            domain = boundary.start()
        if url is not None and (domain is None or url.start() <= domain):
            rest = _NON_SPACE.match(text, url.end())
            pos = rest.end() if rest is not None else url.end()
        else:
            assert run is not None
            ending = _DOMAIN_END.match(text, run.end())
            assert ending is not None  # the look-ahead saw it
            pos = ending.end()
            run, domain = next(runs, None), None
        count += 1
    return count


def signals(*, name: str, title: str, body: str, blocklist: frozenset[str]) -> list[str]:
    found: list[str] = []
    links = _links(f"{title}\n{body}", enough=_MANY_LINKS)
    if links:
        found.append("links" if links < _MANY_LINKS else "many_links")
    if blocklist:
        folded = text.fold(f"{name}\n{title}\n{body}")
        words = set(text.WORDS.findall(folded))
        if words & blocklist or any(" " in phrase and phrase in folded for phrase in blocklist):
            found.append("blocklisted_words")
    # All in capitals (str.isupper: no lower-case letter at all, at least one cased one), judged in C.
    if len(body) >= 20 and body.isupper():
        found.append("shouting")
    return found


def fold_blocklist(words: list[str]) -> frozenset[str]:
    return frozenset(text.fold(word).strip() for word in words if word.strip())
