"""XML read safely and in bounded memory: defusedxml refuses entity declarations and external references (no
billion laughs, no file or network reads), and `iterparse` hands over elements as they end, to be cleared.

defusedxml parses with the standard library's pure-Python parser class (to hook expat's declaration handlers),
several times slower than its C twin. Declarations can only stand in the document type declaration, before the
root element: so defusedxml reads the file up to the root element's start, and refuses it there if it declares
an entity or names an external one; the rest, which then cannot refer to any entity but XML's five and
character references (expat refuses an undeclared one), is streamed by the C-accelerated `iterparse`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.etree.ElementTree import iterparse as fast_iterparse

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse as defused_iterparse

from service.importing.source import FileRefused, local_name


def _prolog_declares_nothing(path: Path) -> None:
    for _ in defused_iterparse(str(path), events=("start",), forbid_dtd=False, forbid_entities=True,
                               forbid_external=True):
        break  # the root element's start: its prolog declared nothing


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except DefusedXmlException as exc:
        raise FileRefused(f"the XML declares entities or refers to external ones ({type(exc).__name__}); "
                          f"refused without reading further") from None
    except ParseError as exc:
        raise FileRefused(f"not well-formed XML: {exc}") from None


def elements(path: Path) -> Iterator[tuple[str, Element, list[Element]]]:
    """("start" | "end", element, the open elements above it) for each tag of the file, in order. The caller
    reads an element at its end and may then clear it (and remove it from its parent)."""
    stack: list[Element] = []
    with _refusals():
        _prolog_declares_nothing(path)
        for event, element in fast_iterparse(str(path), events=("start", "end")):
            if event == "start":
                yield event, element, stack
                stack.append(element)
            else:
                stack.pop()
                yield event, element, stack


def root_children(path: Path) -> Iterator[tuple[Element, Element]]:
    """(element, root) for each child of the root element, once it has ended; the leaner `elements` for formats
    whose items are the root's children (Disqus)."""
    depth = 0
    root: Element | None = None
    with _refusals():
        _prolog_declares_nothing(path)
        for event, element in fast_iterparse(str(path), events=("start", "end")):
            if event == "start":
                depth += 1
                if root is None:
                    root = element
            else:
                depth -= 1
                if depth == 1 and root is not None:
                    yield element, root


def children(element: Element) -> dict[str, Element]:
    """An element's children by local name (the first of each name), for reading several of them."""
    found: dict[str, Element] = {}
    for item in element:
        found.setdefault(local_name(item.tag), item)
    return found


def child_text(element: Element, name: str) -> str | None:
    """The text of the first child with this local name (namespaces ignored), or None."""
    for child in element:
        if local_name(child.tag) == name:
            return child.text
    return None


def child(element: Element, name: str) -> Element | None:
    for found in element:
        if local_name(found.tag) == name:
            return found
    return None


def attribute(element: Element, name: str) -> str | None:
    """An attribute by local name (Disqus writes `dsq:id`)."""
    for key, value in element.attrib.items():
        if local_name(key) == name:
            return value
    return None


def release(element: Element, parent: Any) -> None:
    """Forget an element that was read, so that memory stays bounded however long the file."""
    element.clear()
    if parent is not None:
        parent.remove(element)
