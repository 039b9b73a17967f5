"""Disqus's XML export (`<disqus>` with `<thread dsq:id>` and `<post dsq:id>` elements), streamed.

Threads: `<thread dsq:id>` with its `<link>` (the article's URL). Posts: `<message>` (HTML), `<createdAt>`,
`<author>` (`<name>`, `<email>`, `<username>`), `<ipAddress>`, `<thread dsq:id>` and `<parent dsq:id>`.

States: `isSpam` true -> spam; else `isDeleted` true -> rejected (kept for moderators, never shown); else
`isApproved` false (newer exports) -> pending; else approved. Disqus keeps no approval time: a post is taken as
approved when it was written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from xml.etree.ElementTree import Element

from service.importing.source import Skip, SourceComment, SourceState, iso_ms, local_name
from service.importing.xmlstream import attribute, child_text, children, release, root_children


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


class DisqusReader:
    format = "disqus"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.links: dict[str, str] = {}

    def url(self, thread: str) -> str | None:
        return self.links.get(thread)

    def comments(self) -> Iterator[SourceComment | Skip]:
        for element, root in root_children(self.path):
            name = local_name(element.tag)
            if name == "thread":
                thread_id = attribute(element, "id")
                link = child_text(element, "link")
                if thread_id and link:
                    self.links[thread_id] = link.strip()
            elif name == "post":
                yield self._post(element)
            release(element, root)

    @staticmethod
    def _post(post: Element) -> SourceComment | Skip:
        source_id = attribute(post, "id") or ""
        fields = children(post)

        def text(name: str) -> str | None:
            found = fields.get(name)
            return found.text if found is not None else None

        thread = fields.get("thread")
        thread_id = attribute(thread, "id") if thread is not None else None
        if not source_id or not thread_id:
            return Skip(source_id, "no_id" if not source_id else "no_thread")
        parent = fields.get("parent")
        author = fields.get("author")
        name = email = None
        if author is not None:
            name = child_text(author, "name") or child_text(author, "username")
            email = child_text(author, "email")
        state: SourceState
        if _true(text("isSpam")):
            state, words = "spam", "isSpam"
        elif _true(text("isDeleted")):
            state, words = "rejected", "isDeleted"
        elif (text("isApproved") or "true").strip().lower() == "false":
            state, words = "pending", "isApproved=false"
        else:
            state, words = "approved", "approved"
        return SourceComment(
            source_id=source_id, thread=thread_id, parent=attribute(parent, "id") if parent is not None else None,
            state=state, source_state=words, name=name, email=email, ip=text("ipAddress"),
            body=text("message") or "", html=True, created_ms=iso_ms(text("createdAt")))
