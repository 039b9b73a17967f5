"""Comment submission: from a validated form to a durable place in the moderation queue.

The order of checks is chosen so that a retry is safe and a bot learns nothing:
honeypot -> idempotency replay -> (one round trip) captcha, rate limits, sender facts -> minimum fill time
-> (one atomic script) the record and its queue entries. Only after that script returns does a 202 go out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass
from typing import Final

import orjson

from service import keys, risk
from service.captcha import Captchas
from service.clients import email_hash, keyed_hash
from service.errors import (
    CaptchaInvalid,
    CommentsClosed,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidParent,
    RateLimited,
    Unavailable,
)
from service.models import COMMENT_ID_RE, CommentSubmission, SubmissionAccepted, iso
from service.scripts import Arg, Scripts, as_text
from service.settings import Settings

_CROCKFORD: Final = "0123456789abcdefghjkmnpqrstvwxyz"
OUTBOX_MAXLEN: Final = 100_000
SEEN_TEXT_SECONDS: Final = 86_400


def _base32(data: bytes, length: int) -> str:
    number = int.from_bytes(data, "big")
    out = []
    for _ in range(length):
        number, rest = divmod(number, 32)
        out.append(_CROCKFORD[rest])
    return "".join(reversed(out))


def new_comment_id(article_id: str, now_ms: int | None = None) -> str:
    """Partition (2 hex), then time (10 base32, so ids of one partition sort by age), then 70 random bits."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return (f"{keys.partition_of_article(article_id):02x}"
            f"{_base32(now_ms.to_bytes(8, 'big'), 10)}{_base32(secrets.token_bytes(9), 14)}")


def idempotent_comment_id(secret: bytes, article_id: str, idempotency_key: str) -> str:
    """A retry with the same key maps to the same id, so the submit script recognises it."""
    digest = hmac.new(secret, f"idem:{article_id}:{idempotency_key}".encode(), hashlib.sha256).digest()
    return f"{keys.partition_of_article(article_id):02x}{_base32(digest[:16], 24)}"


def make_receipt(secret: bytes, comment_id: str) -> str:
    mac = hmac.new(secret, f"receipt:{comment_id}".encode(), hashlib.sha256).digest()[:18]
    return f"{comment_id}.{base64.urlsafe_b64encode(mac).decode()}"


def read_receipt(secret: bytes, receipt: str) -> str | None:
    """The comment id a receipt was issued for, or None if it is not one of ours."""
    comment_id, _, _ = receipt.partition(".")
    if not COMMENT_ID_RE.match(comment_id):
        return None
    return comment_id if hmac.compare_digest(make_receipt(secret, comment_id), receipt) else None


@dataclass(frozen=True, slots=True)
class Client:
    #: Keyed hash of the client's address (IPv6 by /64); the address itself is never stored.
    ip_hash: str


@dataclass(slots=True)
class Outcome:
    accepted: SubmissionAccepted
    #: Why nothing was queued although the client was told 202: "honeypot", "too_fast"; None when queued.
    dropped: str | None = None
    risk: tuple[str, ...] = ()


class Submissions:
    def __init__(self, settings: Settings, scripts: Scripts, captchas: Captchas) -> None:
        self._settings = settings
        self._secret = settings.secret
        self._scripts = scripts
        self._captchas = captchas
        self._blocklist = risk.fold_blocklist(settings.blocklist)

    def _fake(self, article_id: str, reason: str) -> Outcome:
        comment_id = new_comment_id(article_id)
        return Outcome(SubmissionAccepted(id=comment_id, receipt=make_receipt(self._secret, comment_id)), reason)

    def _accepted(self, comment_id: str, risks: tuple[str, ...] = ()) -> Outcome:
        return Outcome(SubmissionAccepted(id=comment_id, receipt=make_receipt(self._secret, comment_id)),
                       risk=risks)

    async def submit(self, article_id: str, form: CommentSubmission, client: Client,
                     idempotency_key: str | None = None) -> Outcome:
        if form.website:
            return self._fake(article_id, "honeypot")
        redis = self._scripts.redis
        fingerprint = ""
        replay = False
        if idempotency_key is not None:
            comment_id = idempotent_comment_id(self._secret, article_id, idempotency_key)
            # The captcha is not part of the request's identity: a retry after a failed attempt needs a new one.
            fingerprint = hashlib.sha256(orjson.dumps(
                [article_id, form.model_dump(exclude={"captcha_id", "captcha_answer"})])).hexdigest()
            replay = await self._claim_idempotency_key(comment_id, idempotency_key, fingerprint)
            if replay and await redis.exists(keys.comment(comment_id)):
                return self._accepted(comment_id)
        else:
            comment_id = new_comment_id(article_id)

        email_digest = email_hash(self._secret, form.email)
        stored, sender = await self._check_sender(article_id, form, client, email_digest)
        try:
            self._captchas.check(form.captcha_id, form.captcha_answer, stored)
        except CaptchaInvalid:
            if replay and await redis.exists(keys.comment(comment_id)):
                return self._accepted(comment_id)  # the first attempt won the captcha and stored the comment
            raise
        if self._captchas.filled_too_fast(stored):
            return self._fake(article_id, "too_fast")

        risks = tuple(risk.signals(name=form.name, title=form.title, body=form.body,
                                   blocklist=self._blocklist, sender=sender))
        await self._store(comment_id, article_id, form, client, email_digest, risks, fingerprint)
        return self._accepted(comment_id, risks)

    async def _claim_idempotency_key(self, comment_id: str, idempotency_key: str, fingerprint: str) -> bool:
        """True when this key was seen before with the same request (a replay); raises if with another."""
        redis = self._scripts.redis
        key = keys.idempotency(keyed_hash(self._secret, "idem", idempotency_key, 32))
        if await redis.set(key, fingerprint, nx=True, ex=self._settings.idempotency_ttl_seconds):
            return False
        prior = await redis.get(key)
        if isinstance(prior, bytes):
            prior = prior.decode()
        if prior is not None and prior != fingerprint:
            raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
        return True

    async def _check_sender(self, article_id: str, form: CommentSubmission, client: Client,
                            email_digest: str) -> tuple[bytes | None, risk.Sender]:
        """One round trip: consume the captcha, count the rate limits, read what we know of the sender."""
        settings = self._settings
        batch = self._scripts.batch()
        batch.command("GETDEL", keys.captcha(form.captcha_id))
        limits: list[tuple[str, tuple[int, int]]] = []
        if settings.rate_limit_enabled:
            limits = [(keys.rate_limit("ip", client.ip_hash, settings.rate_limit_ip[1]), settings.rate_limit_ip),
                      (keys.rate_limit("email", email_digest, settings.rate_limit_email[1]), settings.rate_limit_email),
                      (keys.rate_limit("article", article_id, settings.rate_limit_article[1]),
                       settings.rate_limit_article)]
            for key, (_, window) in limits:
                batch.script("rate_limit", [key], [window * 1000])
        body_digest = hashlib.sha256(" ".join(form.body.lower().split()).encode()).hexdigest()[:32]
        batch.script("rate_limit", [keys.seen_text(body_digest)], [SEEN_TEXT_SECONDS * 1000])
        batch.command("GET", keys.reputation("ip", client.ip_hash))
        batch.command("GET", keys.reputation("email", email_digest))
        results = await batch.execute()
        stored = results[0]
        for (_, (limit, _)), (count, ttl_ms) in zip(limits, results[1:1 + len(limits)], strict=True):
            if count > limit:
                raise RateLimited("too many comments, try again later", retry_after=max(1, math.ceil(ttl_ms / 1000)))
        seen, ip_rep, email_rep = results[1 + len(limits):]
        return stored, risk.Sender(times_text_seen=int(seen[0]), ip_spam_count=int(ip_rep or 0),
                                   email_spam_count=int(email_rep or 0))

    async def _store(self, comment_id: str, article_id: str, form: CommentSubmission, client: Client,
                     email_digest: str, risks: tuple[str, ...], fingerprint: str) -> None:
        now_ms = int(time.time() * 1000)
        avatar = keyed_hash(self._secret, "avatar", form.email.casefold(), 16)
        # One copy of the text: the public view is made from this record at approval (decide.lua).
        record = orjson.dumps({"name": form.name, "email": form.email, "title": form.title, "body": form.body,
                               "parent_id": form.parent_id, "ip_hash": client.ip_hash, "email_hash": email_digest,
                               "avatar": avatar, "risk": list(risks), "created_at": iso(now_ms)})
        submit_keys = keys.submit_keys(comment_id, article_id)
        submit_args: list[Arg] = [comment_id, article_id, now_ms, record, form.parent_id or "", fingerprint,
                                  OUTBOX_MAXLEN]
        replicas = self._settings.redis_replica_acks
        if replicas:
            # The script and WAIT on one connection: WAIT counts the replicas that have this client's writes.
            batch = self._scripts.batch()
            batch.script_by_source("submit", submit_keys, submit_args)
            batch.command("WAIT", replicas, self._settings.redis_replica_ack_timeout_ms)
            result, acks = await batch.execute()
        else:
            result, acks = await self._scripts.run("submit", submit_keys, submit_args), 0
        status = as_text(result[0])
        if replicas and acks < replicas and status == "ok":
            # Saved on the primary only: a failover now could lose it, so it is not acknowledged. A retry with
            # the same Idempotency-Key gets the 202 once it is there (the widget sends one).
            raise Unavailable("the comment is not yet on a replica; retry with the same Idempotency-Key",
                              retry_after=1)
        if status == "closed":
            raise CommentsClosed("comments are closed for this article")
        if status == "bad_parent":
            raise InvalidParent("the comment replied to is not an approved comment of this article")
        if status == "exists" and as_text(result[1]) != fingerprint:
            raise IdempotencyInProgress("a different request holds this id")  # practically unreachable
