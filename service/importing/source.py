"""What a reader yields: one comment of the source, in the source's terms, before our rules apply."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

#: A comment's state as the source means it, mapped by the reader (each reader's docstring says how).
SourceState = Literal["approved", "pending", "rejected", "spam"]
#: Formats `comments-service import --format` takes.
Format = Literal["disqus", "wordpress", "isso", "commento", "json"]


class FileRefused(Exception):
    """The file is not one this reader reads safely (an XML entity declaration, not an Isso database...)."""


@dataclass(slots=True)
class SourceComment:
    source_id: str
    #: The thread (article) as the reader knows it; the reader's `url(thread)` gives its URL.
    thread: str
    #: The source id of the comment replied to, or None.
    parent: str | None
    state: SourceState
    #: The source's own words for the state, for the imported history entry (e.g. "isDeleted").
    source_state: str
    name: str | None
    email: str | None
    ip: str | None
    body: str
    #: True: `body` is HTML (converted to text); False: plain text (kept, markdown included).
    html: bool
    created_ms: int | None


@dataclass(slots=True)
class Skip:
    """An item of the file that is not a comment we import (a pingback, an item without an id)."""

    source_id: str
    reason: str


def local_name(tag: str) -> str:
    """An XML tag or attribute name without its namespace."""
    return tag.rpartition("}")[2]


_FRACTION: Final = re.compile(r"(\.\d{1,6})\d*")


def iso_ms(value: str | None) -> int | None:
    """Milliseconds since the epoch from an ISO 8601 time (no zone: UTC); None when it is not one."""
    if not value:
        return None
    value = _FRACTION.sub(r"\1", value.strip(), count=1)
    if len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
