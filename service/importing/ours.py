"""Our own export (`service.exporting`, format version 1), read back as the entries it was made from: a restore.

Records are written as they were exported (ids, states, versions, decisions, approval order, history); the
indexes a comment belongs to are made again from its record. The exported `pub` is not stored (the public view is
made from the record: `records.public_view`), and a history of one entry that the record's fields describe
(`records.first_entry`) is not stored as a list either, as decide.lua would not have stored it. The file streams
a line at a time when it has the layout `comments-service export` writes; any other layout of the same JSON is
read whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from service import keys, records
from service.exporting import FORMAT, HEADER, JSON_FIELDS, VERSION
from service.importing.source import FileRefused, Skip
from service.importing.writer import Entry, index_keys, search_keys
from service.models import ARTICLE_ID_RE, COMMENT_ID_RE

_STATES = frozenset({"pending", "approved", "rejected", "spam", "retracted"})


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    open: bool
    sequence: int


class _Layout(Exception):
    """The file is not laid out a line an item: read it whole instead."""


class OursReader:
    format = "json"

    def __init__(self, path: Path) -> None:
        self.path = path

    def items(self) -> Iterator[tuple[str, Any]]:
        """("article" | "comment", the parsed object), in the file's order."""
        try:
            yield from self._lines()
        except _Layout:
            yield from self._whole()

    def _lines(self) -> Iterator[tuple[str, Any]]:
        section = ""
        with self.path.open("rb") as handle:
            if handle.readline() != HEADER:
                raise _Layout
            for raw in handle:
                text = raw.rstrip(b"\n")
                if text in (b'"articles":[', b'],"comments":[', b'"comments":['):
                    section = "article" if b"articles" in text else "comment"
                elif text in (b"],", b"]}"):
                    if text == b"]}":
                        section = "done"
                elif text and section in ("article", "comment"):
                    try:
                        yield section, orjson.loads(text.removesuffix(b","))
                    except orjson.JSONDecodeError:
                        raise _Layout from None
                elif text:
                    raise _Layout
        if section != "done":
            raise FileRefused("the export ends early (no closing `]}`): was it cut short?")

    def _whole(self) -> Iterator[tuple[str, Any]]:
        try:
            document = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise FileRefused(f"not a comments-service export: {exc}") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise FileRefused(f"not a comments-service export (no \"format\": \"{FORMAT}\")")
        if document.get("version") != VERSION:
            raise FileRefused(f"export version {document.get('version')!r}; this service reads version {VERSION}")
        for article in document.get("articles") or []:
            yield "article", article
        for comment in document.get("comments") or []:
            yield "comment", comment


def article(item: Any) -> Article | Skip:
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not ARTICLE_ID_RE.fullmatch(item["id"]):
        return Skip(str(item.get("id") if isinstance(item, dict) else ""), "invalid_article")
    sequence = item.get("sequence")
    return Article(item["id"], item.get("open") is not False, sequence if isinstance(sequence, int) else 0)


def _digits(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 18 and value.isascii() and value.isdigit()


def entry(item: Any) -> Entry | Skip:
    """A comment of the export as it is to be stored again, or why it cannot be."""
    if not isinstance(item, dict) or not isinstance(item.get("record"), dict):
        return Skip("", "invalid_comment")
    comment_id, record = item.get("id"), item["record"]
    if not isinstance(comment_id, str) or not COMMENT_ID_RE.fullmatch(comment_id):
        return Skip(str(comment_id), "invalid_id")
    article_id, state, submitted = record.get("a"), record.get("s"), record.get("t")
    if not isinstance(article_id, str) or not ARTICLE_ID_RE.fullmatch(article_id):
        return Skip(comment_id, "invalid_article")
    if keys.partition_of_article(article_id) != keys.partition_of_comment(comment_id):
        return Skip(comment_id, "id_not_of_the_article's_partition")
    if state not in _STATES or not _digits(submitted) or not _digits(record.get("v")):
        return Skip(comment_id, "invalid_record")
    fields: list[tuple[str, str]] = []
    for name, value in sorted(record.items()):
        if name == "pub":
            continue
        if name in JSON_FIELDS and not isinstance(value, str):
            value = orjson.dumps(value).decode()
        if not isinstance(name, str) or not isinstance(value, str):
            return Skip(comment_id, "invalid_record")
        fields.append((name, value))
    if state == "approved" and not _digits(record.get("ap")):
        return Skip(comment_id, "invalid_record")
    order = item.get("order")
    if state == "approved" and not isinstance(order, int):
        order = None
    history = _history(item.get("history") or [], fields)
    data = record.get("d") if isinstance(record.get("d"), dict) else {}
    decided = record.get("dt")
    words = _words(data)
    indexes = index_keys(comment_id, state, int(submitted), int(decided) if _digits(decided) else None,
                         str(data.get("email_hash") or ""), str(data.get("ip_hash") or ""), words)
    search = search_keys(comment_id)
    return Entry(id=comment_id, article=article_id, state=state, submitted_ms=int(submitted), fields=fields,
                 history=history, indexes=indexes, search=search, order=order if isinstance(order, int) else None,
                 source_id=comment_id)


def _history(exported: Any, fields: list[tuple[str, str]]) -> list[str]:
    """The history entries to store: none when the one exported entry is what the record's fields describe."""
    if isinstance(exported, list) and len(exported) == 1 and exported[0] == records.first_entry(dict(fields)):
        return []
    return [h if isinstance(h, str) else orjson.dumps(h).decode() for h in exported]


def _words(data: dict[str, Any]) -> list[str]:
    try:
        from service import search  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # a version without the search indexes
        return []
    parts = [str(data.get(name) or "") for name in ("name", "title", "body")]
    words: list[str] = search.index_words(*parts)
    return words
