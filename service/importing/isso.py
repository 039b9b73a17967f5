"""An Isso SQLite database (Isso's own schema: `threads(id, uri, title)`, `comments(tid, id, parent, created,
modified, mode, remote_addr, text, author, email, website, ...)`), read only, row by row.

`threads.uri` is the page's path (Isso knows no host). `text` is the author's markdown, kept as plain text.
`created` is seconds since the epoch; Isso keeps no approval time: a comment is taken as approved when it was
written. `remote_addr` is already anonymised by Isso (its last part zeroed); it is hashed like ours.

States (`mode`): 1 (accepted) -> approved; 2 (waiting for moderation) -> pending; 4 (deleted) -> rejected. Isso
keeps a deleted comment that has replies with its text emptied: such a comment has nothing to import and is
skipped (empty body), and its replies become top-level comments.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from service.importing.source import FileRefused, Skip, SourceComment, SourceState

_STATES: dict[int, SourceState] = {1: "approved", 2: "pending", 4: "rejected"}
_QUERY = ("SELECT c.id, c.parent, c.created, c.mode, c.remote_addr, c.text, c.author, c.email, t.uri "
          "FROM comments AS c JOIN threads AS t ON c.tid = t.id ORDER BY c.created, c.id")


class IssoReader:
    format = "isso"

    def __init__(self, path: Path) -> None:
        self.path = path

    def url(self, thread: str) -> str | None:
        return thread or None

    def comments(self) -> Iterator[SourceComment | Skip]:
        if not self.path.is_file():
            raise FileRefused(f"no such file: {self.path}")
        try:
            connection = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise FileRefused(f"cannot open the Isso database: {exc}") from None
        try:
            try:
                rows = connection.execute(_QUERY)
            except sqlite3.DatabaseError as exc:
                raise FileRefused(f"not an Isso database (tables threads and comments): {exc}") from None
            for row in rows:
                yield self._comment(row)
        finally:
            connection.close()

    @staticmethod
    def _comment(row: tuple[object, ...]) -> SourceComment | Skip:
        source_id, parent, created, mode, address, text, author, email, uri = row
        state = _STATES.get(mode if isinstance(mode, int) else -1)
        if state is None:
            return Skip(str(source_id), f"unknown_mode_{mode}")
        when = int(float(created) * 1000) if isinstance(created, int | float) else None
        return SourceComment(
            source_id=str(source_id), thread=str(uri or ""), parent=str(parent) if parent is not None else None,
            state=state, source_state=f"mode={mode}", name=author if isinstance(author, str) else None,
            email=email if isinstance(email, str) else None, ip=address if isinstance(address, str) else None,
            body=text if isinstance(text, str) else "", html=False, created_ms=when)
