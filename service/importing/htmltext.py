"""HTML comment bodies as our plain text: paragraphs and line breaks become line breaks, a link becomes
"text (address)", entities are decoded, scripts, styles and every other tag are dropped (their text kept).

Built on the standard library's `html.parser`, which never fetches anything and parses in linear time. The text
is shown by the widget as text, never as HTML, so what matters here is readability, not sanitising.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final

#: Tags that end a paragraph (a blank line) or a line.
_PARAGRAPHS: Final = frozenset({"p", "div", "blockquote", "pre", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5",
                                "h6", "section", "article", "figure"})
_LINES: Final = frozenset({"li", "tr", "dt", "dd", "figcaption"})
_HIDDEN: Final = frozenset({"script", "style", "template", "head", "title"})
_SHOWN_SCHEMES: Final = ("http://", "https://", "mailto:")
_SPACES: Final = re.compile(r"[ \t\r\n\f\v]+")
#: Stands for a line break made by a tag while the source's own whitespace is collapsed (once, at the end):
#: XML and HTML text cannot hold it.
_BREAK: Final = "\x00"
_MANY_BREAKS: Final = re.compile(r"\n{3,}")
_LINE_EDGES: Final = re.compile(r"[ \t]*\n[ \t]*")


class _Text(HTMLParser):
    def __init__(self, *, keep_newlines: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.keep_newlines = keep_newlines
        self.parts: list[str] = []
        self.hidden = 0
        self.pre = 0
        self.links: list[tuple[str, int]] = []  #: open links: address, where their text starts in `parts`

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "br":
            self.parts.append(_BREAK)
        elif tag in _PARAGRAPHS:
            self.parts.append(_BREAK * 2)
            self.pre += tag == "pre"
        elif tag in _LINES:
            self.parts.append(_BREAK)
        elif tag == "a":
            href = next((value or "" for name, value in attrs if name == "href"), "").strip()
            self.links.append((href, len(self.parts)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "a":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _PARAGRAPHS:
            self.parts.append(_BREAK * 2)
            self.pre = max(0, self.pre - (tag == "pre"))
        elif tag in _LINES:
            self.parts.append(_BREAK)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            shown = "".join(self.parts[start:]).strip()
            if href.lower().startswith(_SHOWN_SCHEMES) and href not in (shown, f"mailto:{shown}"):
                self.parts.append(f" ({href})" if shown else href)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        data = data.replace(_BREAK, "")
        if self.pre and not self.keep_newlines:
            data = data.replace("\n", _BREAK)  # kept through the collapsing of whitespace
        self.parts.append(data)


def html_to_text(source: str, *, keep_newlines: bool = False) -> str:
    """The text of an HTML fragment. `keep_newlines`: the source's own line breaks count (WordPress stores
    comments with raw line breaks and adds the paragraphs only when it shows them)."""
    parser = _Text(keep_newlines=keep_newlines)
    parser.feed(source)
    parser.close()
    out = "".join(parser.parts).replace("\r\n", "\n").replace("\xa0", " ")
    if not keep_newlines:
        out = _SPACES.sub(" ", out)
    out = _LINE_EDGES.sub("\n", out.replace(_BREAK, "\n"))
    return _MANY_BREAKS.sub("\n\n", out).strip()
