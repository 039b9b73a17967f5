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
_LINK: Final = re.compile(rf"(?i)\b(?:https?://|www\.)\S+|\b[\w-]+\.(?:{'|'.join(_TLDS)})\b")
#: What any link must contain; most comments contain none of these, and looking for them is cheaper than the
#: expression (about 3 us against 16 for a comment of 400 characters).
_LINK_HINTS: Final = ("http", "www.", *(f".{tld}" for tld in _TLDS))


def _links(text: str) -> int:
    # (?i) also matches "ı" and "İ" (which lower() makes "i" + U+0307) to "i"; a hint too many costs only the
    # expression, a hint missed would hide a link.
    folded = text.lower().replace("ı", "i").replace("\u0307", "")
    if not any(hint in folded for hint in _LINK_HINTS):
        return 0
    return len(_LINK.findall(text))


def signals(*, name: str, title: str, body: str, blocklist: frozenset[str]) -> list[str]:
    found: list[str] = []
    links = _links(f"{title}\n{body}")
    if links:
        found.append("links" if links < 3 else "many_links")
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
