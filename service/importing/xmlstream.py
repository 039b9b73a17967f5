"""XML read safely and in bounded memory: defusedxml refuses entity declarations and external references (no
billion laughs, no file or network reads), and `iterparse` hands over elements as they end, to be cleared."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from service.importing.source import FileRefused, local_name


def elements(path: Path) -> Iterator[tuple[str, Element, list[Element]]]:
    """("start" | "end", element, the open elements above it) for each tag of the file, in order. The caller
    reads an element at its end and may then clear it (and remove it from its parent)."""
    stack: list[Element] = []
    try:
        for event, element in iterparse(str(path), events=("start", "end"), forbid_dtd=False,
                                        forbid_entities=True, forbid_external=True):
            if event == "start":
                yield event, element, stack
                stack.append(element)
            else:
                stack.pop()
                yield event, element, stack
    except DefusedXmlException as exc:
        raise FileRefused(f"the XML declares entities or refers to external ones ({type(exc).__name__}); "
                          f"refused without reading further") from None
    except ParseError as exc:
        raise FileRefused(f"not well-formed XML: {exc}") from None


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
