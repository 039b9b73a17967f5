"""The mail service: outbox events become emails in a durable job queue, sent in the background.

1. **Dispatcher**: an `outbox.OutboxConsumer` in the group `mail`. `comment.submitted` makes one email per
   moderator who wants each new comment; `comment.approved` one to the author who ticked the widget's box, and
   one to the author of the comment replied to if they confirmed they want to hear of replies;
   `comment.rejected` (a rejection, not spam) one to the author who ticked the box, if
   `COMMENTS_MAIL_REJECTION_NOTICE` is on. The addresses are read from the comment records (`d`), never carried
   in the outbox. Each email is rendered then (`messages.compose`) and becomes a job whose id derives from
   (event, recipient): an entry handled twice makes each job once, and a repeat of a send carries the same
   Message-ID.
2. **Digests**: every `digest_every_seconds`, moderators who want a digest every N minutes get one per N-minute
   window in which comments wait (the job id names the window, so several workers make it once).
3. **Sender**: the queue leases due jobs; before every send the suppression list is read (an address there gets
   nothing: unsubscribed, or refused for good `COMMENTS_MAIL_BOUNCE_LIMIT` times), then the overall limit (over
   it, the email waits: retried later) and the address's limit (over it, the email is dropped); then one SMTP
   transaction. A failure is retried with backoff up to `COMMENTS_MAIL_MAX_ATTEMPTS`.

Emails asked for from a request (a reply subscription's confirmation) are jobs made by the request: durable as
the rest, and sent by the same sender, never by the request.

4. **Data requests** (“Dữ liệu của tôi”, `privacy.Privacy.request_link`): each item of `keys.data_request_mail()`
   becomes a `data_request` email with its link, in the reader's language; the item is deleted once its job
   exists, so the address waits on that stream only until then. A transactional email: no List-Unsubscribe, and
   an address that unsubscribed from notifications still gets the link it just asked for (an address suppressed
   because its server refuses mail for good does not).
5. **Overdue reports**: a comment whose first open report waited longer than `COMMENTS_REPORT_ALERT_HOURS` is told
   to every moderator with notifications (each or digest) once per overdue period (from that first report to the
   reports' resolution: `keys.mail_overdue`), several newly overdue ones in one email.

Nothing here logs an address: logs name job ids and kinds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import math
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Final, Literal
from urllib.parse import quote

import orjson
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import WatchError

from service import keys, tasks
from service.accounts import Account, Accounts, Notifications, NotifyMode, ResetDelivery, digest, fold
from service.clients import email_hash
from service.clock import now_ms
from service.connections import RedisClient
from service.errors import Conflict, MailLinkInvalid, NotFound
from service.i18n import Lang
from service.jobs import JobQueue, Lease, NewJob, QueueKeys, Result
from service.mail import links, smtp
from service.mail.messages import TRANSACTIONAL, Envelope, Kind, age, compose, excerpt, mailto, message_id
from service.metrics import Metrics
from service.models import Email
from service.moderation import CommentWithHistory, Moderation, ModeratorComment
from service.outbox import Entry, OutboxConsumer
from service.scripts import Scripts, as_text
from service.settings import Settings
from service.tokens import Principal

log = logging.getLogger(__name__)

CONSUMER: Final = "mail"
#: The queue's one owner: jobs need one (`jobs.JobQueue`), and email has no per-owner registrations.
OWNER: Final = "mail"
QUEUE_KEYS: Final = QueueKeys(owners=keys.mail_owners(), due=keys.mail_due(), recent=keys.mail_recent(),
                              job=keys.mail_job)
#: Sent (or dropped) emails, their addresses included, are kept this long, then expire.
DONE_TTL_SECONDS: Final = 86_400
RECENT_KEEP: Final = 10_000
LEASE_MARGIN_SECONDS: Final = 30.0
BOUNCE_TTL_SECONDS: Final = 30 * 86_400
DIGEST_CHECK_SECONDS: Final = 30.0
#: A moderator's email lists the oldest waiting comments, at most this many.
QUEUE_ITEMS: Final = 10
REPLY_LINK_SECONDS: Final = 30 * 86_400
CONFIRM_LINK_SECONDS: Final = 7 * 86_400
MAX_DELIVERIES: Final = 10
#: Data request items read per round, and how often the stream is looked at when it was empty.
REQUEST_BATCH: Final = 100
REQUEST_IDLE_SECONDS: Final = 0.5
#: Overdue reported comments read per partition (the email lists the oldest `QUEUE_ITEMS`).
OVERDUE_SCAN_MAX: Final = 1000


class NotificationSettings(BaseModel):
    """A moderator's email notifications: `PUT /v1/moderation/notifications/{name}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: Email | None = Field(description="Where the notifications go; null for nowhere. Shown only to the "
                                            "person and to admins.")
    mode: NotifyMode = Field(description="each: an email for every new comment; digest: an email every "
                                         "`minutes` while comments wait; none: no email.")
    minutes: int = Field(default=30, ge=1, le=24 * 60, description="The digest's interval in minutes (mode "
                                                                  "digest); 30 when not given.")
    lang: Literal["vi", "en"] = Field(default="vi", description="The language of the emails.")

    def notifications(self) -> Notifications:
        return Notifications(email=self.email, mode=self.mode, minutes=self.minutes, lang=self.lang)

    @classmethod
    def of(cls, found: Notifications) -> NotificationSettings:
        return cls(email=found.email, mode=found.mode, minutes=found.minutes, lang=found.lang)


@dataclass(frozen=True, slots=True)
class QueueItem:
    id: str
    article_id: str
    submitted_ms: int
    name: str
    title: str
    body: str
    risk: list[str]


@dataclass(frozen=True, slots=True)
class QueueSummary:
    count: int
    oldest_ms: int | None
    items: list[QueueItem]


@dataclass(frozen=True, slots=True)
class DecisionPreview:
    link: links.DecisionLink
    comment: CommentWithHistory


def _record(raw: bytes | str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _lang(record: dict[str, Any]) -> Lang:
    return "en" if record.get("lang") == "en" else "vi"


class Mail:
    def __init__(self, redis: RedisClient, scripts: Scripts, settings: Settings, accounts: Accounts,
                 moderation: Moderation, *, metrics: Metrics | None = None) -> None:
        self._redis = redis
        self._scripts = scripts
        self._settings = settings
        self._secret = settings.secret
        self._accounts = accounts
        self._moderation = moderation
        self._metrics = metrics
        self.enabled = settings.mail_enabled
        self._server: smtp.Server | None = None
        self._sender = ""
        if settings.smtp_url is not None and settings.mail_from:
            self._server = smtp.Server.from_url(settings.smtp_url.get_secret_value(), settings.mail_timeout_seconds)
            self._sender = smtp.envelope_sender(settings.mail_from)
        display, address = parseaddr(settings.mail_from or "")
        self.newspaper = display or address.rpartition("@")[2] or "comments"
        # An entry that keeps failing (a damaged record, say) goes to the dead letters rather than round for ever.
        self._outbox = OutboxConsumer(redis, CONSUMER, self._handle, max_deliveries=MAX_DELIVERIES, metrics=metrics)
        self._queue = JobQueue(
            scripts, QUEUE_KEYS, self._attempt, name=CONSUMER, max_attempts=settings.mail_max_attempts,
            backoff_base_seconds=settings.mail_backoff_base_seconds,
            lease_seconds=settings.mail_timeout_seconds * smtp.SEND_TIMEOUTS + LEASE_MARGIN_SECONDS,
            done_ttl_seconds=DONE_TTL_SECONDS, recent_keep=RECENT_KEEP, metrics=metrics)
        #: How often digests are looked at (and the lag measured); tests shorten it.
        self.digest_every_seconds = DIGEST_CHECK_SECONDS

    @property
    def outbox(self) -> OutboxConsumer:
        return self._outbox

    @property
    def queue(self) -> JobQueue:
        return self._queue

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Create the consumer group at `$` (emails are made for events from now on) and the queue's owner."""
        if not self.enabled:
            return
        await self._redis.hset(keys.mail_owners(), OWNER, "1")
        await self._outbox.start()

    async def run(self) -> None:
        if not self.enabled:
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._outbox.run())
            group.create_task(self._queue.run())
            group.create_task(tasks.forever("mail digests", self.digest_once, idle_seconds=self.digest_every_seconds,
                                            error_pause_seconds=self.digest_every_seconds))
            group.create_task(tasks.forever("mail data requests", self.requests_once,
                                            idle_seconds=REQUEST_IDLE_SECONDS, error_pause_seconds=1.0))
            group.create_task(tasks.forever("mail overdue reports", self._overdue_round,
                                            idle_seconds=self.digest_every_seconds,
                                            error_pause_seconds=self.digest_every_seconds))

    # -- links ---------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return self._settings.public_origin + path

    def comment_url(self, article_id: str, comment_id: str) -> str:
        """The comment on the article's page: COMMENTS_ARTICLE_URL_TEMPLATE (a path of this service or the
        newspaper's URL) with the comment's anchor."""
        page = self._settings.article_url_template.replace("{article_id}", quote(article_id, safe=""))
        if page.startswith("/"):
            page = self.url(page)
        return f"{page}#comment-{comment_id}"

    # -- jobs ------------------------------------------------------------------------------------------------

    def _job(self, kind: Kind, event: str, to: str, lang: Lang, context: dict[str, Any]) -> NewJob | None:
        """The email as a job; None (counted `unsendable`) for an address SMTP without SMTPUTF8 cannot carry."""
        if not to.isascii():
            self._count(kind, "unsendable")
            return None
        digest = email_hash(self._secret, to)
        job_id = hashlib.sha256(f"{kind}:{event}:{digest}".encode()).hexdigest()[:32]
        token = links.unsubscribe_link(self._secret, digest)
        listed = kind not in TRANSACTIONAL
        envelope = Envelope(sender=self._settings.mail_from or "", reply_to=self._settings.mail_reply_to, to=to,
                            unsubscribe_https=self.url(f"/mail/unsubscribe/{token}") if listed else "",
                            unsubscribe_mailto=mailto(self._sender, token) if listed else "",
                            newspaper=self.newspaper)
        message = compose(kind, lang, envelope, message_id(job_id, self._sender), context)
        body = orjson.dumps({"to": to, "digest": digest, "message": base64.b64encode(message).decode()})
        return NewJob(job_id, OWNER, kind, body)

    async def _enqueue(self, made: list[NewJob | None]) -> int:
        jobs = [job for job in made if job is not None]
        if not jobs:
            return 0
        # The owner again: a Redis that lost its data since start would otherwise drop every job.
        await self._redis.hset(keys.mail_owners(), OWNER, "1")
        return await self._queue.enqueue(jobs)

    # -- dispatcher: outbox entries become emails ------------------------------------------------------------

    async def _handle(self, partition: int, entries: list[Entry]) -> None:
        jobs: list[NewJob | None] = []
        submitted: list[str] = []
        for entry_id, fields in entries:
            event = fields.get("type")
            comment_id = fields.get("id", "")
            where = f"{partition}:{entry_id}"
            if event == "comment.submitted":
                submitted.append(entry_id)
            elif event == "comment.approved" and comment_id:
                jobs += await self._approved(where, comment_id)
            elif event == "comment.rejected" and comment_id and fields.get("action") == "reject":
                jobs += await self._rejected(where, comment_id, fields.get("reason", ""))
        if submitted:
            jobs += await self._each(partition, submitted)
        await self._enqueue(jobs)

    async def _each(self, partition: int, submitted: list[str]) -> list[NewJob | None]:
        """For moderators who want each new comment: one email per batch of new comments the consumer read
        together (a burst of comments is one email, not one each), named by the batch's entries, so the same
        batch handled again makes the same email."""
        each = [(a, n) for a, n in await self._accounts.notification_recipients() if n.mode == "each"]
        if not each:
            return []
        summary = await self.queue_summary()
        batch = hashlib.sha256(",".join(submitted).encode()).hexdigest()[:16]
        return [self._moderator_job(account, wanted, summary, f"{partition}:{batch}:{fold(account.name)}",
                                    new=len(submitted))
                for account, wanted in each]

    async def _read(self, comment_id: str) -> tuple[dict[str, Any] | None, str, str, str]:
        """A comment's record `d`, its article, state and reply subscription flag."""
        raw, article, state, replies = await self._redis.hmget(keys.comment(comment_id), ["d", "a", "s", "rs"])
        return (_record(raw), as_text(article) if article else "", as_text(state) if state else "",
                as_text(replies) if replies else "")

    async def _approved(self, where: str, comment_id: str) -> list[NewJob | None]:
        record, article, state, _ = await self._read(comment_id)
        if record is None or state != "approved":  # undone or retracted meanwhile: say nothing
            return []
        jobs: list[NewJob | None] = []
        url = self.comment_url(article, comment_id)
        if record.get("notify") is True and record.get("email"):
            expires = now_ms() + REPLY_LINK_SECONDS * 1000
            replies = self.url(f"/mail/replies/{links.comment_link(self._secret, 'r', comment_id, expires)}")
            jobs.append(self._job("approved", where, record["email"], _lang(record), {
                "name": record.get("name", ""), "title": record.get("title", ""), "body": record.get("body", ""),
                "comment_url": url, "replies_url": replies}))
        parent_id = record.get("parent_id")
        if parent_id:
            parent, _, _, subscribed = await self._read(parent_id)
            if (parent is not None and subscribed == "1" and parent.get("email")
                    and parent.get("email_hash") != record.get("email_hash")):
                jobs.append(self._job("reply", where, parent["email"], _lang(parent), {
                    "title": parent.get("title", ""), "reply_name": record.get("name", ""),
                    "reply_title": record.get("title", ""), "reply_body": record.get("body", ""),
                    "comment_url": url}))
        return jobs

    async def _rejected(self, where: str, comment_id: str, reason: str) -> list[NewJob | None]:
        if not self._settings.mail_rejection_notice:
            return []
        record, _, state, _ = await self._read(comment_id)
        if record is None or state != "rejected" or record.get("notify") is not True or not record.get("email"):
            return []
        return [self._job("rejected", where, record["email"], _lang(record), {
            "name": record.get("name", ""), "title": record.get("title", ""), "reason": reason})]

    # -- moderators ----------------------------------------------------------------------------------------

    async def queue_summary(self) -> QueueSummary:
        """What waits: how many, the oldest's submission time, the oldest `QUEUE_ITEMS` with their risk labels."""
        pipe = self._redis.pipeline(transaction=False)
        for partition in range(keys.PARTITIONS):
            pipe.zcard(keys.pending(partition))
            pipe.zrange(keys.pending(partition), 0, QUEUE_ITEMS - 1, withscores=True)
        replies: list[Any] = await pipe.execute()
        count = sum(int(n) for n in replies[::2])
        oldest = sorted((int(score), as_text(member)) for page in replies[1::2] for member, score in page)
        oldest = oldest[:QUEUE_ITEMS]
        pipe = self._redis.pipeline(transaction=False)
        for _, comment_id in oldest:
            pipe.hmget(keys.comment(comment_id), ["d", "a"])
        rows: list[Any] = await pipe.execute() if oldest else []
        items = []
        for (submitted, comment_id), (raw, article) in zip(oldest, rows, strict=True):
            record = _record(raw)
            if record is not None and article is not None:
                risk = record.get("risk")
                items.append(QueueItem(comment_id, as_text(article), submitted, str(record.get("name", "")),
                                       str(record.get("title", "")), str(record.get("body", "")),
                                       [str(r) for r in risk] if isinstance(risk, list) else []))
        return QueueSummary(count, oldest[0][0] if oldest else None, items)

    def _moderator_job(self, account: Account, wanted: Notifications, summary: QueueSummary, event: str, *,
                       new: int) -> NewJob | None:
        now = now_ms()
        lang = wanted.lang
        expires = now + self._settings.mail_link_seconds * 1000

        def decide_url(comment_id: str, action: Literal["approve", "reject"]) -> str:
            token = links.decision_link(self._secret, comment_id, action, account.name, expires)
            return self.url(f"/mail/decide/{token}")

        items = [{"title": item.title, "name": item.name, "article_id": item.article_id, "risk": item.risk,
                  "age": age((now - item.submitted_ms) / 1000, lang), "excerpt": excerpt(item.body),
                  "approve_url": decide_url(item.id, "approve"), "reject_url": decide_url(item.id, "reject")}
                 for item in summary.items]
        oldest = age((now - summary.oldest_ms) / 1000, lang) if summary.oldest_ms is not None else age(0, lang)
        assert wanted.email is not None
        return self._job("moderator", event, wanted.email, lang, {
            "count": summary.count, "oldest_age": oldest, "items": items, "new": new,
            "console_url": self.url("/moderation/")})

    async def digest_once(self) -> int:
        """Make the digests due in this window (each at most once per window); measure the lag."""
        now = now_ms()
        await self._measure_lag(now)
        wanted = [(a, n) for a, n in await self._accounts.notification_recipients() if n.mode == "digest"]
        if not wanted:
            return 0
        summary = await self.queue_summary()
        if not summary.count:
            return 0
        jobs = [self._moderator_job(account, notifications, summary,
                                    f"digest:{fold(account.name)}:{now // (notifications.minutes * 60_000)}",
                                    new=0)
                for account, notifications in wanted]
        return await self._enqueue(jobs)

    # -- data requests ---------------------------------------------------------------------------------------

    async def requests_once(self) -> int:
        """The data request items waiting on `keys.data_request_mail()` become jobs, then are deleted. No consumer
        group: an item leaves the stream as soon as its job exists, so the stream itself is what is left to do.
        Read twice (two workers, or a crash between the enqueue and the delete), an item makes its job once:
        the job id derives from the item's id."""
        stream = keys.data_request_mail()
        rows: list[Any] = await self._redis.xrange(stream, count=REQUEST_BATCH) or []
        if not rows:
            return 0
        now = now_ms()
        await self._enqueue([self._data_request(as_text(entry_id), {as_text(k): as_text(v) for k, v in raw.items()},
                                                now)
                             for entry_id, raw in rows])
        await self._redis.xdel(stream, *(entry_id for entry_id, _ in rows))
        return len(rows)

    def _data_request(self, entry_id: str, item: dict[str, str], now: int) -> NewJob | None:
        to, kind, link, expires = (item.get(name, "") for name in ("to", "kind", "link", "expires"))
        if (item.get("type") != "data_request" or kind not in ("export", "erase") or not to
                or not link.startswith(self.url("/privacy/")) or not expires.isdigit()):
            self._count("data_request", "malformed")
            return None
        if int(expires) <= now:  # the link no longer works: saying nothing is kinder than a dead link
            self._count("data_request", "expired")
            return None
        lang: Lang = "en" if item.get("lang") == "en" else "vi"
        hours = max(1, math.ceil((int(expires) - now) / 3_600_000))
        return self._job("data_request", f"request:{entry_id}", to, lang,
                         {"to": to, "request": kind, "link": link, "hours": hours})

    # -- password resets ---------------------------------------------------------------------------------------

    async def password_reset(self, delivery: ResetDelivery) -> None:
        """Queue the email of a reset a moderator asked for (`accounts.Accounts.request_reset`); the sender sends
        it, never the request. Transactional: no List-Unsubscribe, and it reaches an address that unsubscribed
        from notifications. The job (its message holds the link) is kept `DONE_TTL_SECONDS` once sent, as every
        email is; the link is single use and runs out in an hour."""
        if not self.enabled:
            return
        reset = delivery.reset
        hours = max(1, math.ceil((reset.expires_at - now_ms()) / 3_600_000))
        await self._enqueue([self._job("password_reset", f"reset:{digest(reset.token)}", delivery.email,
                                       delivery.lang, {"name": reset.name, "hours": hours,
                                                       "link": self.url(f"/moderation/reset/{reset.token}")})])

    # -- overdue reports -------------------------------------------------------------------------------------

    async def _overdue_round(self) -> int:
        await self.overdue_once()
        return 0  # one look per interval, however many were found

    async def overdue_once(self) -> int:
        """Email moderators with notifications about the reported comments newly overdue; returns how many were
        newly overdue. A comment is told once per overdue period: `keys.mail_overdue` keeps the first open
        report's time it was told for, and forgets it once the reports are resolved (a later report starts a new
        period). Two workers looking at once make the same jobs (ids from the comments and periods)."""
        now = now_ms()
        hours = self._settings.report_alert_hours
        cutoff = now - hours * 3_600_000
        pipe = self._redis.pipeline(transaction=False)
        for partition in range(keys.PARTITIONS):
            pipe.zrangebyscore(keys.reported(partition), "-inf", f"({cutoff}", start=0, num=OVERDUE_SCAN_MAX,
                               withscores=True)
        pipe.hgetall(keys.mail_overdue())
        *pages, raw_told = await pipe.execute()
        overdue = {as_text(member): int(score) for page in pages for member, score in page}
        told = {as_text(k): as_text(v) for k, v in raw_told.items()}
        resolved = [comment_id for comment_id, first in told.items() if str(overdue.get(comment_id)) != first]
        if resolved:
            await self._redis.hdel(keys.mail_overdue(), *resolved)
        fresh = sorted((first, comment_id) for comment_id, first in overdue.items()
                       if told.get(comment_id) != str(first))
        if not fresh:
            return 0
        wanted = await self._accounts.notification_recipients()
        if wanted:
            items = await self._overdue_items(fresh[:QUEUE_ITEMS], now)
            period = hashlib.sha256(",".join(f"{c}:{first}" for first, c in fresh).encode()).hexdigest()[:16]
            await self._enqueue([self._job("report_overdue", f"overdue:{period}:{fold(account.name)}",
                                           notifications.email, notifications.lang, {
                                               "count": len(fresh), "hours": hours,
                                               "items": [{**item, "age": age(item["waited"], notifications.lang)}
                                                         for item in items],
                                               "console_url": self.url("/moderation/#/reported")})
                                 for account, notifications in wanted if notifications.email])
        await self._redis.hset(keys.mail_overdue(), mapping={c: str(first) for first, c in fresh})
        return len(fresh)

    async def _overdue_items(self, fresh: list[tuple[int, str]], now: int) -> list[dict[str, Any]]:
        pipe = self._redis.pipeline(transaction=False)
        for _, comment_id in fresh:
            pipe.hmget(keys.comment(comment_id), ["d", "a"])
            pipe.hget(keys.report_counts(keys.partition_of_comment(comment_id)), comment_id)
        replies: list[Any] = await pipe.execute()
        items = []
        for (first, _), (raw, article), count in zip(fresh, replies[::2], replies[1::2], strict=True):
            record = _record(raw) or {}
            items.append({"title": str(record.get("title", "")), "name": str(record.get("name", "")),
                          "article_id": as_text(article) if article else "", "reports": int(count or 0),
                          "excerpt": excerpt(str(record.get("body", ""))), "waited": (now - first) / 1000})
        return items

    async def _measure_lag(self, now: int) -> None:
        if self._metrics is None:
            return
        oldest: list[Any] = await self._redis.zrange(keys.mail_due(), 0, 0, withscores=True)
        self._metrics.mail_lag.set(max(0.0, (now - int(oldest[0][1])) / 1000) if oldest else 0.0)

    # -- sender ----------------------------------------------------------------------------------------------

    def _count(self, kind: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.mail.labels(kind, outcome).inc()

    async def _over(self, scope: str, subject: str, limit: tuple[int, int]) -> bool:
        count, window = limit
        hits, _ = await self._scripts.run("rate_limit", [keys.rate_limit(scope, subject, window)], [window * 1000])
        return int(hits) > count

    async def _attempt(self, lease: Lease) -> Result:
        """One attempt at one email."""
        job = orjson.loads(lease.body)
        digest: str = job["digest"]
        suppressed = await self._redis.hget(keys.mail_suppressed(), digest)
        # A transactional email goes to an address that only unsubscribed from notifications.
        if suppressed is not None and (lease.type not in TRANSACTIONAL
                                       or (_record(suppressed) or {}).get("why") != "unsubscribed"):
            self._count(lease.type, "suppressed")
            return Result(ok=True, error="suppressed")
        if await self._over("mail-all", "all", self._settings.mail_limit_overall):
            self._count(lease.type, "throttled")
            return Result(ok=False, error="throttled")
        if await self._over("mail-address", digest, self._settings.mail_limit_address):
            self._count(lease.type, "limited")
            return Result(ok=True, error="limited")
        assert self._server is not None
        refusal = await smtp.send(self._server, self._sender, job["to"], base64.b64decode(job["message"]))
        if refusal is None:
            self._count(lease.type, "sent")
            return Result(ok=True, status=250)
        self._count(lease.type, "failed")
        if refusal.permanent:
            await self._bounced(digest)
        return Result(ok=False, status=refusal.code, error=refusal.error)

    async def _bounced(self, digest: str) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.incr(keys.mail_bounces(digest))
        pipe.expire(keys.mail_bounces(digest), BOUNCE_TTL_SECONDS)
        bounces, _ = await pipe.execute()
        if int(bounces) >= self._settings.mail_bounce_limit:
            await self.suppress(digest, "bounced")

    async def suppress(self, digest: str, why: str) -> None:
        await self._redis.hset(keys.mail_suppressed(), digest, orjson.dumps({"why": why, "at": now_ms()}))

    async def is_suppressed(self, email: str) -> bool:
        return bool(await self._redis.hexists(keys.mail_suppressed(), email_hash(self._secret, email)))

    # -- what the links of emails do (`api.mail`) --------------------------------------------------------------

    def _require(self) -> None:
        if not self.enabled:
            raise NotFound("this service sends no email")

    async def decision_preview(self, token: str) -> DecisionPreview:
        """What a moderator's link would do, for its confirmation page: nothing is changed."""
        self._require()
        link = links.read_decision(self._secret, token)
        if link is None or link.expires_ms <= now_ms():
            raise MailLinkInvalid("this link is not valid, was already used or expired")
        if await self._redis.exists(keys.mail_link_used(link.nonce)):
            raise MailLinkInvalid("this link is not valid, was already used or expired")
        return DecisionPreview(link, await self._moderation.get(link.comment_id))

    async def decide_by_link(self, token: str) -> tuple[links.DecisionLink, ModeratorComment]:
        """The link's decision, once: the link is used up atomically (SET NX) before the decision is made, so two
        posts of one link never decide twice; a link whose decision is refused (decided meanwhile) is used up."""
        self._require()
        link = links.read_decision(self._secret, token)
        now = now_ms()
        if link is None or link.expires_ms <= now:
            raise MailLinkInvalid("this link is not valid, was already used or expired")
        account = await self._accounts.get(link.moderator)
        if account.disabled:
            raise MailLinkInvalid("this link is not valid, was already used or expired")
        used = await self._redis.set(keys.mail_link_used(link.nonce), "1", nx=True, px=link.expires_ms - now)
        if not used:
            raise MailLinkInvalid("this link is not valid, was already used or expired")
        who = Principal(token_id=f"account:{fold(account.name)}", name=account.name, role=account.role.role)
        return link, await self._moderation.decide(who, link.comment_id, link.action)

    def check_unsubscribe(self, token: str) -> str:
        self._require()
        digest = links.read_unsubscribe(self._secret, token)
        if digest is None:
            raise MailLinkInvalid("this link is not valid, was already used or expired")
        return digest

    async def unsubscribe(self, token: str) -> None:
        """No more email to the address the link was sent to (whoever posts it: the link is the credential)."""
        await self.suppress(self.check_unsubscribe(token), "unsubscribed")

    def _comment_link(self, kind: Literal["r", "c"], token: str) -> str:
        self._require()
        link = links.read_comment_link(self._secret, kind, token)
        if link is None or link.expires_ms <= now_ms():
            raise MailLinkInvalid("this link is not valid, was already used or expired")
        return link.comment_id

    async def reply_comment_title(self, kind: Literal["r", "c"], token: str) -> str:
        """The title of the comment a reply subscription link is about (its author wrote it; nothing else)."""
        record, _, _, _ = await self._read(self._comment_link(kind, token))
        if record is None:
            raise MailLinkInvalid("this link is not valid, was already used or expired")
        return str(record.get("title", ""))

    async def request_replies_by_link(self, token: str) -> None:
        await self.request_replies(self._comment_link("r", token))

    async def request_replies(self, comment_id: str) -> None:
        """The author of an approved comment asks to hear of approved replies: a confirmation goes to the address
        the comment was sent with (the double opt-in's first step); nothing is subscribed yet. At most one
        confirmation per comment and hour."""
        self._require()
        record, _, state, _ = await self._read(comment_id)
        if record is None or state != "approved" or not record.get("email"):
            raise NotFound("no such approved comment")
        expires = now_ms() + CONFIRM_LINK_SECONDS * 1000
        confirm = self.url(f"/mail/replies/confirm/{links.comment_link(self._secret, 'c', comment_id, expires)}")
        await self._enqueue([self._job("reply_confirm", f"{comment_id}:{now_ms() // 3_600_000}", record["email"],
                                       _lang(record), {"title": record.get("title", ""), "confirm_url": confirm})])

    async def confirm_replies(self, token: str) -> None:
        """The double opt-in's second step: approved replies to the comment are emailed to its author."""
        comment_id = self._comment_link("c", token)
        key = keys.comment(comment_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                if await pipe.hget(key, "s") != b"approved":
                    raise NotFound("no such approved comment")
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.hset(key, "rs", "1")
                await pipe.execute()
            except WatchError:
                raise Conflict("the comment changed meanwhile; try again") from None

    # -- tests and operators ----------------------------------------------------------------------------------

    async def dispatch_once(self) -> int:
        return await self._outbox.consume_once()

    async def send_due_once(self) -> int:
        return await self._queue.work_once()

    async def job(self, job_id: str) -> dict[str, str]:
        """A job's record without its body (which holds the address): state, attempts, status, error."""
        row = await self._redis.hgetall(keys.mail_job(job_id))
        return {as_text(k): as_text(v) for k, v in row.items() if as_text(k) != "body"}
