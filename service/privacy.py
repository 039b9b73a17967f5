"""A reader's data on request: everything kept about an email address (export), its erasure (delete or
anonymise, by email or by comment ids), and the privacy log, which records each erasure and retention run
without personal data (who asked, who ran it, when, how many, which ids).

Comments are found by the sender's keyed email digest (`keys.by_email`: a search term the indexer writes for every
comment, `service.search`; run to the end before each look-up, so none is missed), partition by partition, so this
works on a Redis Cluster: each comment is erased by `lua/erase.lua`, atomically in its own partition's slot. The log
and the self-service requests live under `{privacy}`.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from service import keys, records, search
from service.clients import email_hash
from service.clock import now_ms
from service.errors import Conflict, NotFound
from service.indexer import Indexer
from service.models import CommentId, Email, iso
from service.moderation import HistoryEntry, State
from service.scripts import Scripts, as_text, corrupt
from service.submissions import OUTBOX_MAXLEN

#: Who an anonymised comment is by.
ANONYMOUS_NAME: Final = "Bạn đọc"
#: The privacy log keeps about this many entries.
LOG_MAXLEN: Final = 100_000
#: Times an erasure reads a comment again when it changed between the read and the script.
ERASE_ROUNDS: Final = 5
#: Comment ids one erasure request may name.
ERASE_IDS_MAX: Final = 1000
#: Feed entries read per round trip while scrubbing a partition's feed of erased comments.
FEED_SCAN_PAGE: Final = 1000
#: How long a self-service link works.
REQUEST_TTL_SECONDS: Final = 24 * 3600
#: A bound on the self-service requests' mail items: the mail service deletes each once its email is queued, so
#: only a mail service that stopped for long lets them pile up this far.
REQUEST_MAIL_MAXLEN: Final = 10_000


class ErasureMode(enum.StrEnum):
    DELETE = "delete"  #: no personal data left: name, email, IP hash and text become a tombstone
    ANONYMISE = "anonymise"  #: the text stays; the author becomes "Bạn đọc"; email and IP hash go


class ExportedComment(BaseModel):
    id: str = Field(description="The comment's id.")
    article_id: str = Field(description="The article it was submitted to.")
    state: State = Field(description="pending, approved, rejected, spam or retracted.")
    name: str = Field(description="The name given with it.")
    email: str = Field(description="The email given with it.")
    title: str = Field(description="Its title.")
    body: str = Field(description="Its text.")
    parent_id: str | None = Field(description="The comment it replies to; null for a top-level comment.")
    created_at: str = Field(description="When it was submitted (ISO 8601, UTC).")
    decided_at: str | None = Field(description="When it was last decided (ISO 8601, UTC); null while pending.")
    ip_hash: str | None = Field(description="A keyed hash of the sender's network address (the address itself is "
                                            "never stored); null once retention dropped it.")
    risk: list[str] = Field(description="The risk signals found when it was submitted.")
    erased: ErasureMode | None = Field(description="anonymise when it was anonymised; null otherwise.")
    history: list[HistoryEntry] = Field(description="Every change of its state, oldest first.")


class ExportedReport(BaseModel):
    comment_id: str = Field(description="The comment reported.")
    reason: str = Field(description="The reason chosen.")
    text: str = Field(description="The text given with the report; empty when none.")
    reported_at: str = Field(description="When it was reported (ISO 8601, UTC).")


class Subscription(BaseModel):
    comment_id: str = Field(description="The comment the subscription came with.")
    kind: Literal["decision", "replies"] = Field(description="decision (an email when a moderator decides the "
                                                             "comment) or replies (an email for each approved "
                                                             "reply to it, confirmed by the reader).")


class DataExport(BaseModel):
    """Everything kept about one email address."""

    email: str = Field(description="The address exported (normalised).")
    exported_at: str = Field(description="When this export was made (ISO 8601, UTC).")
    comments: list[ExportedComment] = Field(description="Every comment sent with this address, in every state, "
                                                        "oldest first, with its history.")
    reports: list[ExportedReport] = Field(description="Comments this address reported (when the reporter gave "
                                                      "it), oldest first.")
    subscriptions: list[Subscription] = Field(description="The emails this address asked for with its comments.")


class ExportRequest(BaseModel):
    """`POST /v1/privacy/export`: the address in the body, out of URLs and access logs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email = Field(description="The address whose data to export (case does not matter).")


class ErasureRequest(BaseModel):
    """What an admin asks: `POST /v1/privacy/erasures`; give either `email` or `comment_ids`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email | None = Field(default=None, description="Erase every comment sent with this address (and the "
                                                          "reports it made); case does not matter.")
    comment_ids: list[CommentId] | None = Field(default=None, min_length=1, max_length=ERASE_IDS_MAX,
                                                description="Erase these comments.")
    # Not strict: the JSON string "delete" is the enum's value.
    mode: ErasureMode = Field(strict=False, description=(
        "delete (nothing personal is left: name, email, address hash and text become a tombstone, and the comment "
        "leaves every public list) or anonymise (the text stays, the author becomes “Bạn đọc”, the email and "
        "address hash go)."))
    requested_by: StrictStr = Field(min_length=1, max_length=200, description=(
        "Who asked, for the privacy log, without personal data: e.g. `reader (ticket 4711)` or `self-service`."))

    @model_validator(mode="after")
    def _one_selector(self) -> ErasureRequest:
        if (self.email is None) == (self.comment_ids is None):
            raise ValueError("give either email or comment_ids")
        return self


class ErasureResult(BaseModel):
    mode: ErasureMode = Field(description="The mode applied.")
    erased: list[str] = Field(description="The comments erased now.")
    already: list[str] = Field(description="The comments already erased in this mode (nothing changed).")
    missing: list[str] = Field(description="The ids named that no comment has.")
    log_id: str = Field(description="The privacy log entry that records this erasure.")


class PrivacyLogEntry(BaseModel):
    id: str = Field(description="The entry's id (a stream id: its first part is the ms it was written).")
    at: str = Field(description="When it was written (ISO 8601, UTC).")
    kind: str = Field(description="erase (an erasure) or retention (a retention run).")
    mode: str = Field(description="For an erasure: delete or anonymise; for a retention run: what it removed.")
    requested_by: str = Field(description="Who asked (as given; no personal data).")
    run_by: str = Field(description="Who ran it: the admin's name, or `retention` for the background job.")
    count: int = Field(description="How many comments it changed.")
    ids: list[str] = Field(description="The comments it changed.")


class PrivacyLog(BaseModel):
    entries: list[PrivacyLogEntry] = Field(description="Newest first.")


RequestKind = Literal["export", "erase"]


class DataRequestForm(BaseModel):
    """What the widget's “Dữ liệu của tôi” sends: `POST /v1/privacy/requests`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: Email = Field(description="The reader's address: a link is sent there, and only there.")
    kind: RequestKind = Field(description="export (a link to download the data) or erase (a link to confirm "
                                          "the erasure).")
    lang: Literal["vi", "en"] = Field(default="vi", description="The language of the email with the link; vi "
                                                                "when not given.")


class DataRequestAccepted(BaseModel):
    status: Literal["sent"] = Field(default="sent", description="Always `sent`, whether or not the address has "
                                                                "any data: the answer tells nothing about it.")


class DataRequest(BaseModel):
    """A self-service request behind a link, as its page shows it."""

    kind: RequestKind = Field(description="export or erase.")
    email: str = Field(description="The address the link was sent to.")
    expires_at: str = Field(description="When the link stops working (ISO 8601, UTC).")


#: The fields of a comment record an erasure and an export read (`keys.py` documents them).
_FIELDS: Final = ("v", "a", "d", "ap", "er", "s", "t", "dt", "rs", "db", "dr")


def _with_risk_last(data: dict[str, Any]) -> bytes:
    """The record as JSON with "risk" last, as the store writes it (lib/store.lua appends to that list)."""
    risk = data.pop("risk", [])
    return orjson.dumps({**data, "risk": risk})


class Privacy:
    def __init__(self, scripts: Scripts, secret: bytes, *, clock: Callable[[], int] | None = None) -> None:
        self.clock = clock or now_ms
        self._scripts = scripts
        self._redis = scripts.redis
        self._secret = secret
        self._indexer = Indexer(scripts)

    # -- finding a person's data ------------------------------------------------------------------------

    async def _ids_by_email(self, digest: str) -> list[str]:
        """The comments of the digest's search term (`keys.by_email`) in every partition, by the n -> comment
        map. Exact: the indexer is run to the end first (`Indexer.catch_up`), and what was stored since is read
        from the records (the tail)."""
        await self._indexer.catch_up()
        index = search.Index(self._scripts)
        tails = await asyncio.gather(*(index.tail(p) for p in range(keys.PARTITIONS)))
        sources = await asyncio.gather(*(index.term(keys.by_email(p, digest), tails[p])
                                         for p in range(keys.PARTITIONS)))
        numbers = await asyncio.gather(*(index.all_ns(source) for source in sources))
        found = await asyncio.gather(*(index.slots(p, ns) for p, ns in enumerate(numbers)))
        return [comment_id for slots in found for comment_id, _ in slots.values()]

    async def _rows(self, ids: Sequence[str]) -> list[list[Any]]:
        if not ids:
            return []
        batch = self._scripts.batch()
        for comment_id in ids:
            batch.command("HMGET", keys.comment(comment_id), *_FIELDS)
        return list(await batch.execute())

    async def _own_ids(self, email: str) -> list[str]:
        """The comments sent with this address: by its digest's index, each record checked to hold it."""
        ids = await self._ids_by_email(email_hash(self._secret, email))
        wanted = email.casefold()
        own = []
        for comment_id, row in zip(ids, await self._rows(ids), strict=True):
            if row[2] is not None and str(orjson.loads(row[2]).get("email", "")).casefold() == wanted:
                own.append(comment_id)
        return own

    async def export(self, email: str) -> DataExport:
        ids = await self._own_ids(email)
        rows = await self._rows(ids)
        batch = self._scripts.batch()
        for comment_id in ids:
            batch.command("LRANGE", keys.history(comment_id), 0, -1)
        histories = await batch.execute() if ids else []
        comments = []
        subscriptions = []
        for comment_id, row, raw_history in zip(ids, rows, histories, strict=True):
            version, article, private, _, erased, state, created, decided, replies, by, reason = row
            if private is None or article is None or state is None or created is None:
                continue  # erased by retention meanwhile
            data = orjson.loads(private)
            if data.get("notify") is True:
                subscriptions.append(Subscription(comment_id=comment_id, kind="decision"))
            if replies == b"1":
                subscriptions.append(Subscription(comment_id=comment_id, kind="replies"))
            entries = records.history_entries({"s": state, "v": version, "dt": decided, "db": by, "dr": reason},
                                      raw_history)
            history = [HistoryEntry(at=iso(int(e["at"])), by=e["by"], action=e["action"], from_state=e["from"],
                                    to_state=e["to"], reason=e["reason"], version=int(e["version"]))
                       for e in entries]
            comments.append(ExportedComment(
                id=comment_id, article_id=as_text(article), state=State(as_text(state)), name=data["name"],
                email=data["email"], title=data["title"], body=data["body"], parent_id=data.get("parent_id"),
                created_at=iso(int(created)), decided_at=iso(int(decided)) if decided else None,
                ip_hash=data.get("ip_hash") or None, risk=list(data.get("risk", [])),
                erased=ErasureMode(as_text(erased)) if erased else None, history=history))
        comments.sort(key=lambda c: (c.created_at, c.id))
        return DataExport(email=email, exported_at=iso(self.clock()), comments=comments,
                          reports=await self._reports_made(email_hash(self._secret, email)),
                          subscriptions=subscriptions)

    async def _reports_made(self, digest: str) -> list[ExportedReport]:
        batch = self._scripts.batch()
        for p in range(keys.PARTITIONS):
            batch.command("ZRANGE", keys.reports_by_email(p, digest), 0, -1)
        reported = [as_text(i) for ids in await batch.execute() for i in ids]
        if not reported:
            return []
        batch = self._scripts.batch()
        for comment_id in reported:
            batch.command("HVALS", keys.reports(comment_id))
        found = []
        for comment_id, values in zip(reported, await batch.execute(), strict=True):
            for value in values:
                report = orjson.loads(value)
                if report.get("email_hash") == digest:
                    found.append(ExportedReport(comment_id=comment_id, reason=report["reason"],
                                                text=report.get("text", ""), reported_at=iso(int(report["at"]))))
        return sorted(found, key=lambda r: (r.reported_at, r.comment_id))

    # -- erasure --------------------------------------------------------------------------------------------

    async def erase(self, request: ErasureRequest, run_by: str) -> ErasureResult:
        if request.email is not None:
            ids = await self._own_ids(request.email)
        else:
            assert request.comment_ids is not None  # ErasureRequest has one or the other
            ids = list(dict.fromkeys(request.comment_ids))
        erased: list[str] = []
        already: list[str] = []
        missing: list[str] = []
        for comment_id in ids:
            status = await self.erase_comment(comment_id, request.mode.value, run_by)
            {"ok": erased, "already": already}.get(status, missing).append(comment_id)
        await self._scrub_feeds(erased)
        if request.email is not None:
            await self._forget_sender(request.email, request.mode)
        log_id = await self.record("erase", request.mode.value, request.requested_by, run_by, erased)
        return ErasureResult(mode=request.mode, erased=erased, already=already, missing=missing, log_id=log_id)

    async def erase_comment(self, comment_id: str, mode: str, run_by: str, cutoff_ms: int = 0) -> str:
        """One comment through erase.lua (`mode`: delete, anonymise, purge or strip_ip): "ok", "already",
        "missing" or "skipped" (purge and strip_ip: not in a state they apply to)."""
        for _ in range(ERASE_ROUNDS):
            version, article, private, _, erased, *_ = (await self._rows([comment_id]))[0]
            if version is None or article is None or private is None:
                return "missing"
            done = as_text(erased) if erased else None
            if done == mode or (mode == "anonymise" and done == "delete"):
                return "already"
            data = orjson.loads(private)
            record, words = self._rewrite(mode, data)
            # The search terms it leaves: strip_ip keeps the sender's (`keys.erase_keys`).
            digest = "" if mode == "strip_ip" else data.get("email_hash") or ""
            result = await self._scripts.run(
                "erase", keys.erase_keys(comment_id, as_text(article), digest, data.get("ip_hash") or "", words),
                [comment_id, mode, as_text(version), self.clock(), run_by, OUTBOX_MAXLEN, record, cutoff_ms])
            status = as_text(result[0])
            if status == "stale":
                continue
            if status == "corrupt":
                raise corrupt(result[1])
            if status == "error":
                raise RuntimeError(f"erase.lua: {as_text(result[1])}")
            if status == "ok" and mode in ("delete", "anonymise"):
                # The copy in an article's public hash of before issue 19, when one is left (`keys.py`).
                await self._redis.hdel(keys.legacy_article_public(as_text(article)), comment_id)
            return status
        raise Conflict("the comment kept changing while it was being erased; try again")

    @staticmethod
    def _rewrite(mode: str, data: dict[str, Any]) -> tuple[bytes, list[str]]:
        """The record erase.lua writes, and the word indexes the comment leaves. The public view is made from the
        record (`records.public_view`): a deleted comment's is then its tombstone (id, parent, times, nothing
        else), an anonymised one's says "Bạn đọc"."""
        words = search.index_words(data.get("name", ""), data.get("title", ""), data.get("body", ""))
        if mode in ("delete", "purge"):
            record = orjson.dumps({"name": "", "email": "", "title": "", "body": "",
                                   "parent_id": data.get("parent_id"), "ip_hash": "", "email_hash": "",
                                   "avatar": "", "created_at": data.get("created_at"), "risk": []})
        elif mode == "anonymise":
            record = _with_risk_last({**data, "name": ANONYMOUS_NAME, "email": "", "ip_hash": "",
                                      "email_hash": "", "avatar": ""})
            kept = set(search.index_words(ANONYMOUS_NAME, data.get("title", ""), data.get("body", "")))
            words = [w for w in words if w not in kept]
        else:  # strip_ip
            record = _with_risk_last({**data, "ip_hash": ""})
            words = []
        return record, words

    async def _scrub_feeds(self, ids: Sequence[str]) -> int:
        """Earlier approval and retraction events of an erased comment are deleted (XDEL): a reader of the feed
        from before the erasure gets the comment.erased or comment.anonymised event instead (events carry ids; the
        feed renders the record, already erased, so this is about which events a reader meets, and about the
        copies events of before issue 19 still hold)."""
        by_partition: dict[int, set[str]] = {}
        for comment_id in ids:
            by_partition.setdefault(keys.partition_of_comment(comment_id), set()).add(comment_id)
        removed = 0
        for partition, members in by_partition.items():
            stream = keys.feed(partition)
            start = "-"
            while True:
                entries: list[Any] = await self._redis.execute_command("XRANGE", stream, start, "+", "COUNT",
                                                                       FEED_SCAN_PAGE)
                doomed = [entry_id for entry_id, fields in entries
                          if as_text(fields.get(b"id", b"")) in members
                          and fields.get(b"type") in (b"comment.approved", b"comment.retracted")]
                if doomed:
                    removed += int(await self._redis.xdel(stream, *doomed))
                if len(entries) < FEED_SCAN_PAGE:
                    break
                start = "(" + as_text(entries[-1][0])
        return removed

    async def _forget_sender(self, email: str, mode: ErasureMode) -> None:
        """What else is keyed by the address's digest: its spam reputation, and the reports it made (their text
        goes with a deletion; the link to the address with either mode)."""
        digest = email_hash(self._secret, email)
        await self._redis.delete(keys.reputation("email", digest))
        for p in range(keys.PARTITIONS):
            index = keys.reports_by_email(p, digest)
            members: list[bytes] = await self._redis.execute_command("ZRANGE", index, 0, -1)
            for member in members:
                comment_id = as_text(member)
                for client, value in (await self._redis.hgetall(keys.reports(comment_id))).items():
                    report = orjson.loads(value)
                    if report.get("email_hash") != digest:
                        continue
                    report.pop("email_hash")
                    if mode is ErasureMode.DELETE:
                        report["text"] = ""
                    await self._redis.hset(keys.reports(comment_id), client, orjson.dumps(report))
            await self._redis.delete(index)

    # -- the log ------------------------------------------------------------------------------------------

    async def record(self, kind: str, mode: str, requested_by: str, run_by: str, ids: Sequence[str]) -> str:
        entry_id: bytes = await self._redis.execute_command(
            "XADD", keys.privacy_log(), "MAXLEN", "~", LOG_MAXLEN, "*", "kind", kind, "mode", mode,
            "requested_by", requested_by, "run_by", run_by, "at", self.clock(), "count", len(ids),
            "ids", ",".join(ids))
        return as_text(entry_id)

    async def log(self, limit: int) -> PrivacyLog:
        rows: list[Any] = await self._redis.execute_command("XREVRANGE", keys.privacy_log(), "+", "-", "COUNT",
                                                            limit)
        entries = []
        for entry_id, raw in rows:
            fields = {as_text(k): as_text(v) for k, v in raw.items()}
            entries.append(PrivacyLogEntry(
                id=as_text(entry_id), at=iso(int(fields["at"])), kind=fields["kind"], mode=fields["mode"],
                requested_by=fields["requested_by"], run_by=fields["run_by"], count=int(fields["count"]),
                ids=[i for i in fields["ids"].split(",") if i]))
        return PrivacyLog(entries=entries)

    # -- self-service: a link by email ------------------------------------------------------------------------

    async def request_link(self, form: DataRequestForm, origin: str) -> str:
        """A one-time link for the reader's request, valid `REQUEST_TTL_SECONDS`: only its SHA-256 is kept.
        The mail item goes on `keys.data_request_mail()`, where the mail service (`mail.mailer.Mail.requests_once`)
        makes it an email and deletes it; the link is returned for tests only, never to the client."""
        token = secrets.token_urlsafe(32)
        expires = self.clock() + REQUEST_TTL_SECONDS * 1000
        digest = hashlib.sha256(token.encode()).hexdigest()
        link = f"{origin}/privacy/{token}"
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.data_request(digest), mapping={"email": form.email, "kind": form.kind, "expires": expires})
        pipe.expire(keys.data_request(digest), REQUEST_TTL_SECONDS)
        pipe.xadd(keys.data_request_mail(), {"type": "data_request", "to": form.email, "kind": form.kind,
                                             "link": link, "expires": expires, "lang": form.lang},
                  maxlen=REQUEST_MAIL_MAXLEN, approximate=True)
        await pipe.execute()
        return link

    async def data_request(self, token: str) -> DataRequest:
        row = await self._redis.hmget(keys.data_request(hashlib.sha256(token.encode()).hexdigest()),
                                      ["email", "kind", "expires"])
        email, kind, expires = row
        if email is None or kind is None or expires is None or int(expires) <= self.clock():
            raise NotFound("this link does not exist, was used or expired")
        return DataRequest(kind="erase" if as_text(kind) == "erase" else "export", email=as_text(email),
                           expires_at=iso(int(expires)))

    async def use_request(self, token: str) -> DataRequest:
        """The request, used up: a link works once (a download or an erasure)."""
        request = await self.data_request(token)
        if not await self._redis.delete(keys.data_request(hashlib.sha256(token.encode()).hexdigest())):
            raise NotFound("this link does not exist, was used or expired")
        return request
