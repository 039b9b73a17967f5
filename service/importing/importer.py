"""An import from start to end: two passes over the file, the records made, written in pipelines, reported.

The first pass only learns which source comments will be public (approved, with a non-empty body, in a thread
that maps to an article), so that a reply knows before it is written whether its parent will be there: the
service keeps a reply's `parent_id` only when the parent is an approved comment of the same article. A reply
whose parent is deleted, spam, pending, missing from the file or in another article becomes a top-level
comment, with a note in the report (`parent_not_published`, `parent_missing`); no placeholder is made for the
parent. A reply that comes before its parent in the file waits until the parent has been sent. With
`--state pending` threads are kept: a reply keeps the parent that would have been approved.

What each comment becomes, as a submission and a decision would have made it:
- id: the article's partition (2 hex digits, as `submissions.new_comment_id`), then 24 characters of an HMAC
  (COMMENTS_SECRET_KEY) of the format and the source's id: the same source comment always gets the same id, so
  an import run twice, or again after an interruption, adds only what is missing (`lua/import.lua` leaves an
  existing id alone);
- text: NFC, trimmed; HTML bodies turned into text (`htmltext`); control and bidi characters removed (noted);
  invisible joiners stripped from names; whitespace in a name collapsed; a name, title or body longer than our
  limits (`models.NAME_MAX`, `TITLE_MAX`, `BODY_MAX`) shortened with an ellipsis and noted; no name: "Ẩn danh"
  (noted); an empty body: skipped. The sources have no titles: a title is made of the body's first words;
- privacy as ours: the email, normalised, in the private record only (invalid or missing: empty, noted); the
  address only as our keyed hash (`clients.keyed_hash` of its /64 or IPv4); the avatar seed from the email
  (without one, from the name);
- state and times: the source's state (each reader says how it maps; `--state pending` queues the approved ones
  instead), submitted when the source says it was written; a decided comment carries one decision by `import`
  at the approval time the source knows (the writing time where it keeps none), version 2, with the reason
  "imported from <format> (<source state>)": the record's `dt`, `db` and `dr` describe it, as decide.lua's
  first decision (its history entry is made from them: `records.history_entries`);
- approved comments go into their article's list and count; into the approvals feed only with `--feed` (off by
  default: the site backends would otherwise receive years of old comments as new approvals); never into the
  webhook outbox.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import re
import time
from base64 import b32encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import orjson
from pydantic import TypeAdapter, ValidationError

from service import keys, risk, text
from service.clients import email_hash, keyed_hash, subject
from service.importing import ours
from service.importing.articles import ArticleMap
from service.importing.commento import CommentoReader
from service.importing.disqus import DisqusReader
from service.importing.htmltext import html_to_text
from service.importing.isso import IssoReader
from service.importing.source import Format, Skip, SourceComment
from service.importing.wordpress import WordPressReader
from service.importing.writer import BATCH, Answer, Entry, index_keys, search_keys, write, write_article
from service.indexer import Indexer
from service.models import BODY_MAX, NAME_MAX, TITLE_MAX, Email, iso
from service.scripts import Scripts

#: Who the imported decisions are by, in the history and the record (`db`).
IMPORTER: Final = "import"
ANONYMOUS: Final = "Ẩn danh"
TITLE_WORDS: Final = 60
#: Per-comment details kept in the report (the counts count everything).
DETAILS_MAX: Final = 10_000
_EMAIL: Final = TypeAdapter(Email)
_TAGS: Final = re.compile(r"<[^>]*>")


class Reader(Protocol):
    format: str

    def url(self, thread: str) -> str | None: ...

    def comments(self) -> Iterator[SourceComment | Skip]: ...


READERS: Final[dict[str, Callable[[Path], Reader]]] = {
    "disqus": DisqusReader, "wordpress": WordPressReader, "isso": IssoReader, "commento": CommentoReader}


@dataclass(frozen=True, slots=True)
class Options:
    format: Format
    path: Path
    articles: str = "path"
    #: "pending": comments the source approved are queued for moderation instead.
    state: Literal["approved", "pending"] = "approved"
    dry_run: bool = False
    feed: bool = False


@dataclass
class Report:
    format: str
    file: str
    dry_run: bool
    read: int = 0
    imported: dict[str, int] = field(default_factory=dict)
    already_present: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    unmapped_urls: dict[str, str] = field(default_factory=dict)
    articles_restored: int = 0
    details: list[dict[str, str]] = field(default_factory=list)
    details_left_out: int = 0
    seconds: float = 0.0

    def _detail(self, what: str, source_id: str, reason: str, comment_id: str = "") -> None:
        if len(self.details) < DETAILS_MAX:
            self.details.append({"what": what, "source_id": source_id, "reason": reason,
                                 **({"comment_id": comment_id} if comment_id else {})})
        else:
            self.details_left_out += 1

    def skip(self, source_id: str, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        self._detail("skipped", source_id, reason)

    def fail(self, source_id: str, reason: str, comment_id: str) -> None:
        self.failed[reason] = self.failed.get(reason, 0) + 1
        self._detail("failed", source_id, reason, comment_id)

    def note(self, source_id: str, reason: str, comment_id: str) -> None:
        self.notes[reason] = self.notes.get(reason, 0) + 1
        self._detail("note", source_id, reason, comment_id)

    @property
    def imported_total(self) -> int:
        return sum(self.imported.values())

    def as_json(self) -> dict[str, Any]:
        return {"format": self.format, "file": self.file, "dry_run": self.dry_run, "read": self.read,
                "imported": self.imported_total, "imported_by_state": self.imported,
                "already_present": self.already_present, "skipped": self.skipped, "failed": self.failed,
                "notes": self.notes, "unmapped_urls": self.unmapped_urls, "articles_restored": self.articles_restored,
                "details": self.details, "details_left_out": self.details_left_out, "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        lines = [f"{self.format} {self.file}: read {self.read}, {verb} {self.imported_total} "
                 f"({', '.join(f'{k} {v}' for k, v in sorted(self.imported.items())) or 'none'}), already present "
                 f"{self.already_present}, skipped {sum(self.skipped.values())}, failed {sum(self.failed.values())}"
                 f" in {self.seconds:.1f} s"]
        for title, counts in (("skipped", self.skipped), ("failed", self.failed), ("notes", self.notes)):
            if counts:
                lines.append(f"  {title}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        if self.unmapped_urls:
            shown = list(self.unmapped_urls.items())[:10]
            lines.append(f"  URLs that map to no article ({len(self.unmapped_urls)}): "
                         + "; ".join(f"{url} ({why})" for url, why in shown)
                         + (" ..." if len(self.unmapped_urls) > 10 else ""))
        return "\n".join(lines)


class Progress(Protocol):
    def start(self, total: int | None, label: str) -> None: ...

    def advance(self, count: int = 1) -> None: ...


class _Silent:
    def start(self, total: int | None, label: str) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass


def stable_id(secret: bytes, source_format: str, source_id: str, article_id: str) -> str:
    """The id a source comment always gets: partition, then 24 characters of an HMAC of (format, source id)."""
    digest = hmac.digest(secret, f"import:{source_format}:{source_id}".encode(), "sha256")
    return f"{keys.partition_of_article(article_id):02x}{b32encode(digest[:15]).decode().lower()}"


def _shortened(value: str, maximum: int) -> str:
    return value[:maximum - 1].rstrip() + "…"


def _title(body: str) -> str:
    first = body.split("\n", 1)[0].strip()
    if len(first) <= TITLE_WORDS:
        return first
    cut = first[:TITLE_WORDS - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[TITLE_WORDS // 2:] else cut).rstrip(" ,.;:-") + "…"


@dataclass(slots=True)
class _Text:
    name: str
    email: str
    title: str
    body: str
    notes: list[str]


def _clean(value: str, *, maximum: int, line: bool, what: str, notes: list[str]) -> str:
    """A field as the form's validators would take it, except that what they refuse is mended and noted."""
    value = " ".join(value.split()) if line else text.normalise_newlines(value)
    value = text.normalise(value)
    if text.has_forbidden_characters(value, allow_newlines=not line):
        value = "".join(c for c in value if not text.has_forbidden_characters(c, allow_newlines=not line)).strip()
        notes.append(f"{what}_forbidden_characters_removed")
    if line:
        value = text.strip_zero_width(value).strip()
    if len(value) > maximum:
        value = _shortened(value, maximum)
        notes.append(f"{what}_shortened")
    return value


def prepare_text(comment: SourceComment, *, keep_newlines: bool) -> _Text | None:
    """The comment's text by our rules, with notes of what was mended; None when the body is empty."""
    notes: list[str] = []
    body = html_to_text(comment.body, keep_newlines=keep_newlines) if comment.html else comment.body
    body = re.sub(r"\n{3,}", "\n\n", _clean(body, maximum=BODY_MAX, line=False, what="body", notes=notes))
    if not body:
        return None
    name = _clean(comment.name or "", maximum=NAME_MAX, line=True, what="name", notes=notes)
    if not name:
        name = ANONYMOUS
        notes.append("name_missing")
    email = ""
    if comment.email and comment.email.strip():
        try:
            email = _EMAIL.validate_python(comment.email.strip())
        except ValidationError:
            notes.append("email_invalid")
    else:
        notes.append("email_missing")
    title = _clean(_title(body), maximum=TITLE_MAX, line=True, what="title", notes=[]) or "…"
    return _Text(name, email, title, body, notes)


def _ip_hash(secret: bytes, raw: str | None) -> str:
    if not raw or len(raw) > 64:
        return ""
    try:
        return keyed_hash(secret, "ip", subject(ipaddress.ip_address(raw.strip())))
    except ValueError:
        return ""


class Importer:
    def __init__(self, scripts: Scripts | None, secret: bytes, blocklist: frozenset[str], options: Options,
                 progress: Progress | None = None) -> None:
        self.scripts = scripts
        self.secret = secret
        self.blocklist = blocklist
        self.options = options
        self.progress = progress or _Silent()
        self.report = Report(options.format, str(options.path), options.dry_run)
        self._pending: list[Entry] = []
        self._inflight: tuple[list[Entry], asyncio.Future[list[Answer]]] | None = None

    # -- writing ---------------------------------------------------------------------------------------

    async def _send(self, entry: Entry) -> None:
        self._pending.append(entry)
        if len(self._pending) >= BATCH:
            await self._flush()

    async def _flush(self) -> None:
        """Send what is pending as one pipeline, after the answers of the pipeline before it have been read: one
        pipeline in flight while the next batch is being prepared, so Redis and this process work side by side
        (and in order: a reply's parent is always written before the reply)."""
        entries, self._pending = self._pending, []
        await self._settle()
        if entries:
            if self.scripts is None:  # a dry run
                done: asyncio.Future[list[Answer]] = asyncio.get_running_loop().create_future()
                done.set_result([("ok", "")] * len(entries))
                self._inflight = (entries, done)
            else:
                self._inflight = (entries, asyncio.ensure_future(write(self.scripts, entries)))
                await asyncio.sleep(0)  # the pipeline goes out now; its answers are read at the next flush

    async def _drain(self) -> None:
        while self._pending or self._inflight is not None:
            await self._flush()

    async def _settle(self) -> None:
        if self._inflight is None:
            return
        entries, answers = self._inflight
        self._inflight = None
        again: list[Entry] = []
        for entry, (status, detail) in zip(entries, await answers, strict=True):
            if status == "ok":
                self.report.imported[entry.state] = self.report.imported.get(entry.state, 0) + 1
            elif status == "exists":
                self.report.already_present += 1
            elif status == "bad_parent" and entry.orphan is not None:
                orphan = entry.orphan()
                self.report.note(entry.source_id, "parent_not_imported", orphan.id)
                again.append(orphan)
            else:
                self.report.fail(entry.source_id, f"{status}:{detail}" if detail else status, entry.id)
        self.progress.advance(len(entries) - len(again))
        self._pending += again

    # -- the external formats ----------------------------------------------------------------------------

    async def run(self) -> Report:
        started = time.monotonic()
        if self.options.format == "json":
            await self._restore()
        else:
            await self._import(READERS[self.options.format](self.options.path))
        if self.scripts is not None:
            # The imported comments' search terms (import.lua gave them their numbers): written now, so that an
            # import ends fully indexed.
            await Indexer(self.scripts).catch_up()
        self.report.seconds = time.monotonic() - started
        return self.report

    async def _import(self, reader: Reader) -> None:
        self.progress.start(None, "reading")
        # source id -> thread of a comment that will be public (approved, with text); None: will not be
        public: dict[str, str | None] = {}
        total = 0
        for item in reader.comments():
            total += 1
            if isinstance(item, SourceComment):
                visible = item.state == "approved" and bool(
                    (_TAGS.sub("", item.body) if item.html else item.body).strip())
                public[item.source_id] = item.thread if visible else None
            if total % 1000 == 0:
                self.progress.advance(1000)
        articles = ArticleMap(self.options.articles)
        self.progress.start(total, "importing")
        sent: set[str] = set()
        waiting: list[tuple[SourceComment, str, _Text]] = []
        for item in reader.comments():
            self.report.read += 1
            if isinstance(item, Skip):
                self.report.skip(item.source_id, item.reason)
                self.progress.advance()
                continue
            prepared = self._prepare(item, reader, articles)
            if prepared is None:
                self.progress.advance()
                continue
            article, words = prepared
            parent = item.parent
            if (parent is not None and public.get(parent) == item.thread and parent not in sent
                    and self._state(item) == "approved"):
                waiting.append((item, article, words))  # its parent comes later in the file
                continue
            await self._send(self._entry(item, article, words, public))
            sent.add(item.source_id)
        while waiting:
            ready = [w for w in waiting if w[0].parent in sent]
            if not ready:  # the parents never came (skipped on their way): top-level, noted (`orphan`)
                ready = waiting
            chosen = {w[0].source_id for w in ready}
            waiting = [w for w in waiting if w[0].source_id not in chosen]
            for item, article, words in ready:
                await self._send(self._entry(item, article, words, public))
                sent.add(item.source_id)
        await self._drain()

    def _state(self, item: SourceComment) -> str:
        return "pending" if item.state == "approved" and self.options.state == "pending" else item.state

    def _prepare(self, item: SourceComment, reader: Reader, articles: ArticleMap) -> tuple[str, _Text] | None:
        url = reader.url(item.thread)
        mapped = articles.article(url)
        if mapped.article is None:
            self.report.skip(item.source_id, f"article_unmapped:{mapped.reason}")
            if url and url not in self.report.unmapped_urls and len(self.report.unmapped_urls) < 1000:
                self.report.unmapped_urls[url[:300]] = mapped.reason
            return None
        if item.created_ms is None:
            self.report.skip(item.source_id, "invalid_date")
            return None
        words = prepare_text(item, keep_newlines=self.options.format == "wordpress")
        if words is None:
            self.report.skip(item.source_id, "empty_body")
            return None
        return mapped.article, words

    def _entry(self, item: SourceComment, article: str, words: _Text, public: dict[str, str | None],
               *, orphan: bool = False) -> Entry:
        source_format = self.options.format
        comment_id = stable_id(self.secret, source_format, item.source_id, article)
        state = self._state(item)
        parent_id: str | None = None
        if item.parent is not None and not orphan:
            if item.parent not in public:
                self.report.note(item.source_id, "parent_missing", comment_id)
            elif public[item.parent] != item.thread:
                self.report.note(item.source_id, "parent_not_published", comment_id)
            else:
                parent_id = stable_id(self.secret, source_format, item.parent, article)
        for note in words.notes if not orphan else ():
            self.report.note(item.source_id, note, comment_id)
        created = item.created_ms or 0
        email_digest = email_hash(self.secret, words.email) if words.email else ""
        ip_hash = _ip_hash(self.secret, item.ip)
        avatar = keyed_hash(self.secret, "avatar", words.email.casefold() if words.email
                            else f"{source_format}:{words.name}", 16)
        risks = risk.signals(name=words.name, title=words.title, body=words.body, blocklist=self.blocklist)
        record = orjson.dumps({"name": words.name, "email": words.email, "title": words.title, "body": words.body,
                               "parent_id": parent_id, "ip_hash": ip_hash, "email_hash": email_digest,
                               "avatar": avatar, "created_at": iso(created), "risk": risks}).decode()
        fields = [("d", record), ("a", article), ("t", str(created)), ("s", state),
                  ("v", "1" if state == "pending" else "2"), ("f", "")]
        decided = created if state != "pending" else None
        if decided is not None:
            fields += [("did", f"import:{comment_id}"), ("dt", str(decided)), ("db", IMPORTER),
                       ("dr", f"imported from {source_format} ({item.source_state})")]
        if state == "approved":
            fields.append(("ap", str(created)))
        indexes = index_keys(comment_id, state, created, decided, email_digest, ip_hash, [])
        search = search_keys(comment_id)
        return Entry(
            id=comment_id, article=article, state=state, submitted_ms=created, fields=fields,
            indexes=indexes, search=search, check_parent=parent_id if state == "approved" and parent_id else "",
            feed=self.options.feed and state == "approved", source_id=item.source_id,
            orphan=(lambda: self._entry(item, article, words, public, orphan=True)) if parent_id else None)

    # -- our own export: a restore ----------------------------------------------------------------------

    async def _restore(self) -> None:
        reader = ours.OursReader(self.options.path)
        self.progress.start(None, "restoring")
        articles: list[ours.Article] = []
        for kind, item in reader.items():
            if kind == "article":
                found = ours.article(item)
                if isinstance(found, Skip):
                    self.report.skip(found.source_id, found.reason)
                else:
                    articles.append(found)
                continue
            self.report.read += 1
            entry = ours.entry(item)
            if isinstance(entry, Skip):
                self.report.skip(entry.source_id, entry.reason)
                self.progress.advance()
                continue
            await self._send(entry)
        await self._drain()
        # After the comments: an approval restored above may have moved an article's sequence; the export's wins.
        for found in articles:
            if self.scripts is not None:
                status, detail = await write_article(self.scripts, found.id, not found.open, found.sequence)
                if status != "ok":
                    self.report.fail(found.id, f"article_{status}:{detail}", "")
                    continue
            self.report.articles_restored += 1
