"""WordPress's export (WXR: RSS 2.0 with the `wp:` namespace), streamed: each `<item>` (a post or page) has its
`<link>` and its `<wp:comment>` elements.

Comments: `wp:comment_id`, `wp:comment_parent` (0: none), `wp:comment_author`, `wp:comment_author_email`,
`wp:comment_author_IP`, `wp:comment_date_gmt` (else `wp:comment_date`, taken as UTC), `wp:comment_content` (HTML
with the author's own line breaks), `wp:comment_type` (pingbacks and trackbacks are not comments: skipped).

States (`wp:comment_approved`): `1` -> approved; `0` -> pending; `spam` -> spam; `trash` and `post-trashed` ->
rejected (kept for moderators, never shown); anything else -> pending. WordPress keeps no approval time: a
comment is taken as approved when it was written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element

from service.importing.source import Skip, SourceComment, SourceState, iso_ms, local_name
from service.importing.xmlstream import child_text, elements, release

_STATES: dict[str, SourceState] = {"1": "approved", "0": "pending", "spam": "spam", "trash": "rejected",
                                   "post-trashed": "rejected"}
_NOT_COMMENTS = frozenset({"pingback", "trackback"})


def _date(comment: Element) -> int | None:
    gmt = (child_text(comment, "comment_date_gmt") or "").strip()
    if gmt and not gmt.startswith("0000"):
        return iso_ms(gmt)
    return iso_ms(child_text(comment, "comment_date"))


class WordPressReader:
    format = "wordpress"

    def __init__(self, path: Path) -> None:
        self.path = path

    def url(self, thread: str) -> str | None:
        return thread or None

    def comments(self) -> Iterator[SourceComment | Skip]:
        link = ""
        for event, element, stack in elements(self.path):
            name = local_name(element.tag)
            if event == "start":
                if name == "item":
                    link = ""
                continue
            parent = stack[-1] if stack else None
            parent_name = local_name(parent.tag) if parent is not None else ""
            if name == "link" and parent_name == "item":
                link = (element.text or "").strip()
            elif name == "comment" and parent_name == "item":
                yield self._comment(element, link)
                release(element, parent)
            elif name == "item":
                release(element, parent)

    @staticmethod
    def _comment(comment: Element, link: str) -> SourceComment | Skip:
        source_id = (child_text(comment, "comment_id") or "").strip()
        if not source_id:
            return Skip("", "no_id")
        kind = (child_text(comment, "comment_type") or "").strip().lower()
        if kind in _NOT_COMMENTS:
            return Skip(source_id, kind)
        approved = (child_text(comment, "comment_approved") or "").strip().lower()
        parent = (child_text(comment, "comment_parent") or "0").strip()
        return SourceComment(
            source_id=source_id, thread=link, parent=None if parent in ("", "0") else parent,
            state=_STATES.get(approved, "pending"), source_state=f"comment_approved={approved}",
            name=child_text(comment, "comment_author"), email=child_text(comment, "comment_author_email"),
            ip=child_text(comment, "comment_author_IP"), body=child_text(comment, "comment_content") or "",
            html=True, created_ms=_date(comment))
