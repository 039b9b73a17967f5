"""Commento's JSON export (`{"version": 1, "comments": [...], "commenters": [...]}`, often gzipped).

Comments: `commentHex`, `domain`, `url` (the page's path), `commenterHex` (`anonymous` for a guest),
`markdown` (what the author wrote, kept as plain text), `parentHex` (`root`: none), `state`, `creationDate`,
`deleted`. Commenters: `commenterHex`, `email`, `name`.

States: `state` `flagged` (held as spam) -> spam; else `deleted` true -> rejected; else `unapproved` -> pending;
`approved` -> approved. Commento keeps no approval time: a comment is taken as approved when it was written.
The export is one JSON document, so it is read whole (Commento's exports are small; the XML formats stream).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from service.importing.source import FileRefused, Skip, SourceComment, SourceState, iso_ms


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class CommentoReader:
    format = "commento"

    def __init__(self, path: Path) -> None:
        self.path = path

    def url(self, thread: str) -> str | None:
        return thread or None

    def _document(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            document = orjson.loads(raw)
        except (OSError, EOFError, orjson.JSONDecodeError) as exc:
            raise FileRefused(f"not a Commento export: {exc}") from None
        if not isinstance(document, dict) or not isinstance(document.get("comments"), list):
            raise FileRefused("not a Commento export: no comments list")
        return document

    def comments(self) -> Iterator[SourceComment | Skip]:
        document = self._document()
        people = {c.get("commenterHex"): c for c in document.get("commenters") or [] if isinstance(c, dict)}
        for item in document["comments"]:
            if isinstance(item, dict):
                yield self._comment(item, people)

    @staticmethod
    def _comment(item: dict[str, Any], people: dict[Any, dict[str, Any]]) -> SourceComment | Skip:
        source_id = _text(item.get("commentHex"))
        if source_id is None:
            return Skip("", "no_id")
        person = people.get(item.get("commenterHex"), {})
        state: SourceState
        raw_state = str(item.get("state") or "")
        if raw_state == "flagged":
            state = "spam"
        elif item.get("deleted") is True:
            state = "rejected"
        elif raw_state == "unapproved":
            state = "pending"
        else:
            state = "approved"
        domain, path = _text(item.get("domain")) or "", _text(item.get("url")) or ""
        parent = _text(item.get("parentHex"))
        return SourceComment(
            source_id=source_id, thread=f"https://{domain}{path}" if domain else path,
            parent=None if parent in (None, "root") else parent, state=state,
            source_state=f"state={raw_state or 'approved'}" + (", deleted" if item.get("deleted") else ""),
            name=_text(person.get("name")), email=_text(person.get("email")), ip=None,
            body=_text(item.get("markdown")) or "", html=False, created_ms=iso_ms(_text(item.get("creationDate"))))
