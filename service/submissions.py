"""Comment submission: from a validated form to a durable place in the moderation queue.

The order of checks is chosen so that a retry is safe and a bot learns nothing:
honeypot -> the captcha's signature, age and answer, and the minimum fill time (no Redis: a captcha id is a
signed token) -> the gate: idempotency replay, the captcha's single use, rate limits, what Redis knows of the
sender (`lua/lib/gate.lua`) -> the store: the record and its queue entries (`lua/lib/store.lua`).
On one server the gate and the store are one script, so a comment costs one round trip; on a Cluster the gate's
keys share one slot and the store's another, so two. Only after the store returns does a 202 go out.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from typing import Any, Final

import orjson

from service import clock, keys, risk
from service.captcha import Captchas, Token
from service.clients import email_digests, keyed_hash
from service.errors import (
    CaptchaInvalid,
    CommentsClosed,
    FieldError,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidParent,
    RateLimited,
    Unavailable,
)
from service.models import COMMENT_ID_RE, CommentSubmission, SubmissionAccepted, iso
from service.scripts import Arg, ScriptName, Scripts, as_text, corrupt
from service.settings import Settings

_CROCKFORD: Final = "0123456789abcdefghjkmnpqrstvwxyz"
OUTBOX_MAXLEN: Final = 100_000
SEEN_TEXT_SECONDS: Final = 86_400
#: Hex digits of the request's fingerprint a record keeps (`f`): 128 bits tell an idempotent retry from another
#: request as surely as the whole SHA-256 (the gate's short-lived idempotency key keeps all 64).
RECORD_FINGERPRINT_HEX: Final = 32


def request_fingerprint(article_id: str, form: CommentSubmission) -> str:
    """What identifies a request under an Idempotency-Key: the article and the form but its captcha (a retry
    after a failed attempt needs a new one). The SHA-256 of the JSON of `[article_id, form.model_dump(exclude=
    {"captcha_id", "captcha_answer"})]`, with the dict written out here (model_dump cost about 3 µs:
    docs/benchmarks.md); tests/test_submission_fast_paths.py checks both give the same bytes."""
    return hashlib.sha256(orjson.dumps([article_id, {
        "name": form.name, "email": form.email, "title": form.title, "body": form.body,
        "parent_id": form.parent_id, "notify": form.notify, "lang": form.lang, "website": form.website}])).hexdigest()


def same_request(stored: str, fingerprint: str) -> bool:
    """Whether a record's fingerprint `f` is this request's: the short form (`RECORD_FINGERPRINT_HEX`), or the
    whole one that records of before kept."""
    return stored == fingerprint or (bool(fingerprint) and stored == fingerprint[:RECORD_FINGERPRINT_HEX])


#: Every pair of base32 digits, by its 10 bits.
_PAIRS: Final = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)


def _base32(data: bytes, length: int) -> str:
    """The low `length` * 5 bits of `data` (big-endian), in `length` base32 digits, the most significant first.

    Two digits a step from a table of 1,024 pairs: a `divmod` a digit cost about 6 µs for a submission's 24
    digits, this about 3 (base64.b32encode, pure Python in 3.11, about 5: docs/benchmarks.md).
    tests/test_submission_fast_paths.py compares it with the loop of `divmod`s."""
    number = int.from_bytes(data, "big")
    half, odd = divmod(length, 2)
    out = [_PAIRS[(number >> (10 * i + 5 * odd)) & 1023] for i in range(half - 1, -1, -1)]
    if odd:
        out.append(_CROCKFORD[number & 31])
    return "".join(out)


def new_comment_id(article_id: str, now_ms: int | None = None) -> str:
    """Partition (2 hex), then time (10 base32, so ids of one partition sort by age), then 70 random bits."""
    now_ms = clock.now_ms() if now_ms is None else now_ms
    return (f"{_article_place(article_id)[0]}"
            f"{_base32(now_ms.to_bytes(8, 'big'), 10)}{_base32(secrets.token_bytes(9), 14)}")


def idempotent_comment_id(secret: bytes, article_id: str, idempotency_key: str) -> str:
    """A retry with the same key maps to the same id, so the submit script recognises it."""
    digest = hmac.digest(secret, f"idem:{article_id}:{idempotency_key}".encode(), "sha256")
    return f"{_article_place(article_id)[0]}{_base32(digest[:16], 24)}"


@functools.lru_cache(maxsize=4096)
def _article_place(article_id: str) -> tuple[str, tuple[str, ...]]:
    """An article's partition (2 hex, the start of its comments' ids) and the store's keys other than the
    comment's own (`keys.submit_keys` from K[2] on): the same for every comment of the article, so made once
    (a crc32 and six key names: about 8 µs a submission, docs/benchmarks.md)."""
    partition = keys.partition_of_article(article_id)
    prefix = f"{partition:02x}"
    # Every key but K[1] depends only on the partition and the article: a placeholder id of that partition.
    return prefix, tuple(keys.submit_keys(prefix + "0" * 24, article_id, indexed=True)[1:])


def make_receipt(secret: bytes, comment_id: str) -> str:
    mac = hmac.digest(secret, f"receipt:{comment_id}".encode(), "sha256")[:18]
    return f"{comment_id}.{base64.urlsafe_b64encode(mac).decode()}"


def read_receipt(secret: bytes, receipt: str) -> str | None:
    """The comment id a receipt was issued for, or None if it is not one of ours."""
    comment_id, _, _ = receipt.partition(".")
    if not COMMENT_ID_RE.fullmatch(comment_id):
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


def _captcha_invalid(detail: str) -> CaptchaInvalid:
    # Named as a field error too, so a form shows the message beside the code box, in the reader's language.
    return CaptchaInvalid(detail, fields=[FieldError("captcha_answer", "captcha_invalid")])


class Submissions:
    def __init__(self, settings: Settings, scripts: Scripts, captchas: Captchas) -> None:
        self._settings = settings
        self._secret = settings.secret
        self._scripts = scripts
        self._captchas = captchas
        self._blocklist = risk.fold_blocklist(settings.blocklist)

    def _fake(self, article_id: str, reason: str) -> Outcome:
        return Outcome(self._answer(new_comment_id(article_id)), reason)

    def _accepted(self, comment_id: str) -> Outcome:
        return Outcome(self._answer(comment_id))

    def _answer(self, comment_id: str) -> SubmissionAccepted:
        return SubmissionAccepted(id=comment_id, receipt=make_receipt(self._secret, comment_id))

    async def submit(self, article_id: str, form: CommentSubmission, client: Client,
                     idempotency_key: str | None = None) -> Outcome:
        if form.website:
            return self._fake(article_id, "honeypot")
        now_ms = clock.now_ms()
        fingerprint = ""
        if idempotency_key is not None:
            comment_id = idempotent_comment_id(self._secret, article_id, idempotency_key)
            # The captcha is not part of the request's identity: a retry after a failed attempt needs a new one.
            fingerprint = request_fingerprint(article_id, form)
        else:
            comment_id = new_comment_id(article_id, now_ms)

        captchas = self._captchas
        token = captchas.read(form.captcha_id, now_ms)
        right = token is not None and captchas.is_right(token, form.captcha_answer)
        too_fast = token is not None and right and captchas.filled_too_fast(token, now_ms)
        if token is None or not right or too_fast:
            if await self._use_up(token, comment_id, fingerprint, now_ms):
                return self._accepted(comment_id)  # a retry of a comment that an earlier attempt stored
            if token is None:
                raise _captcha_invalid("the captcha does not exist, was already used or expired")
            if not right:
                raise _captcha_invalid("the answer is wrong")
            return self._fake(article_id, "too_fast")
        await self._gate_and_store(token, comment_id, article_id, form, client, idempotency_key, fingerprint,
                                   now_ms)
        return self._accepted(comment_id)

    async def _use_up(self, token: Token | None, comment_id: str, fingerprint: str, now_ms: int) -> bool:
        """Spend the captcha's one try (a wrong answer or a bot's speed uses it up too); True when the request
        is a retry (same Idempotency-Key, same request) of a comment already stored."""
        if token is None and not fingerprint:
            return False
        calls = []
        if token is not None:
            marker, ttl_ms = self._captchas.marker(token, now_ms)
            calls.append(self._scripts.command_soon("SET", marker, "1", "NX", "PX", ttl_ms))
        if fingerprint:
            calls.append(self._scripts.command_soon("HGET", keys.comment(comment_id), "f"))
        results = await asyncio.gather(*calls)
        return bool(fingerprint) and results[-1] is not None and same_request(as_text(results[-1]), fingerprint)

    async def _gate_and_store(self, token: Token, comment_id: str, article_id: str, form: CommentSubmission,
                              client: Client, idempotency_key: str | None, fingerprint: str, now_ms: int) -> None:
        settings = self._settings
        email_digest, avatar = email_digests(self._secret, form.email)
        limits: list[str] = []
        limit_args: list[Arg] = []
        if settings.rate_limit_enabled:
            for scope, subject, (limit, window) in (("ip", client.ip_hash, settings.rate_limit_ip),
                                                    ("email", email_digest, settings.rate_limit_email),
                                                    ("article", article_id, settings.rate_limit_article)):
                limits.append(keys.rate_limit(scope, subject, window))
                limit_args += [limit, window * 1000]
        body_digest = hashlib.sha256(" ".join(form.body.lower().split()).encode()).hexdigest()[:32]
        idempotency = keys.idempotency(
            keyed_hash(self._secret, "idem", idempotency_key, 32) if idempotency_key is not None else "-")
        marker, marker_ms = self._captchas.marker(token, now_ms)
        gate_keys = keys.gate_keys(idempotency, marker, keys.seen_text(body_digest), client.ip_hash, email_digest,
                                   limits)
        gate_args: list[Arg] = [fingerprint, settings.idempotency_ttl_seconds, marker_ms, SEEN_TEXT_SECONDS * 1000,
                                *limit_args]

        # Scored before the gate because the gate and the store are one script on one server (the record goes in
        # with it): scoring after the gate would cost every submission a second round trip and split one atomic
        # step in two. What makes that safe: scoring is linear (tests/test_risk.py times a 5,000-character body
        # built to be slow; docs/benchmarks.md), no more than the validation every request
        # already gets, and it is reached only with a right answer to an unused captcha (each spent once).
        risks = risk.signals(name=form.name, title=form.title, body=form.body, blocklist=self._blocklist)
        # One copy of the text: the public view is made from this record at approval (decide.lua). "risk" comes
        # last: the gate adds the sender's signals to that list (lib/store.lua).
        record = orjson.dumps({"name": form.name, "email": form.email, "title": form.title, "body": form.body,
                               "parent_id": form.parent_id, "ip_hash": client.ip_hash, "email_hash": email_digest,
                               "avatar": avatar, "created_at": iso(now_ms), "lang": form.lang or "vi",
                               "notify": form.notify, "risk": risks})
        # The store gives the comment its number in the search index (`service.search`); its terms are written
        # after it by the indexer (`service.indexer`), in batches.
        store_keys = [keys.comment(comment_id), *_article_place(article_id)[1]]  # keys.submit_keys(..., indexed=True)
        store_args: list[Arg] = [comment_id, article_id, now_ms, record, form.parent_id or "",
                                 fingerprint[:RECORD_FINGERPRINT_HEX], OUTBOX_MAXLEN]

        if self._scripts.one_server:
            result, acks = await self._run("submit", [*gate_keys, *store_keys],
                                           [len(gate_keys), len(gate_args), *gate_args, *store_args])
        else:
            result, acks = await self._gate_then_store(comment_id, gate_keys, gate_args, store_keys, store_args)
        self._judge(result, acks, fingerprint)

    async def _gate_then_store(self, comment_id: str, gate_keys: list[str], gate_args: list[Arg],
                               store_keys: list[str], store_args: list[Arg]) -> tuple[Any, int]:
        """On a Redis Cluster: the gate in its slot, then the store in the article's."""
        gate = await self._scripts.run_soon("submit_gate", gate_keys, gate_args)
        if as_text(gate[0]) == "replay":
            # A retry: stored already? Otherwise go on as a first attempt (the key is ours, the fingerprint equal).
            prior = await self._scripts.command_soon("HGET", keys.comment(comment_id), "f")
            if prior is not None:
                return ["exists", prior], 0
            gate = await self._scripts.run_soon("submit_gate", gate_keys, ["", *gate_args[1:]])
        if as_text(gate[0]) != "pass":
            return gate, 0
        return await self._run("submit_store", store_keys, [*store_args, ",".join(as_text(r) for r in gate[1:])])

    async def _run(self, name: ScriptName, script_keys: list[str], args: list[Arg]) -> tuple[Any, int]:
        """Run a storing script; with COMMENTS_REDIS_REPLICA_ACKS, also WAIT for replicas on its connection."""
        replicas = self._settings.redis_replica_acks
        if not replicas:
            return await self._scripts.run_soon(name, script_keys, args), 0
        # The script and WAIT on one connection: WAIT counts the replicas that have this client's writes.
        batch = self._scripts.batch()
        batch.script_by_source(name, script_keys, args)
        batch.command("WAIT", replicas, self._settings.redis_replica_ack_timeout_ms)
        result, acks = await batch.execute()
        return result, int(acks)

    def _judge(self, result: Any, acks: int, fingerprint: str) -> None:
        status = as_text(result[0])
        if status == "ok":
            if self._settings.redis_replica_acks and acks < self._settings.redis_replica_acks:
                # Saved on the primary only: a failover now could lose it, so it is not acknowledged. A retry with
                # the same Idempotency-Key gets the 202 once it is there (the widget sends one).
                raise Unavailable("the comment is not yet on a replica; retry with the same Idempotency-Key",
                                  retry_after=1)
            return
        if status == "exists":
            if not same_request(as_text(result[1]), fingerprint):
                raise IdempotencyInProgress("a different request holds this id")  # practically unreachable
            return
        if status == "captcha_used":
            raise _captcha_invalid("the captcha does not exist, was already used or expired")
        if status == "rate_limited":
            raise RateLimited("too many comments, try again later",
                              retry_after=max(1, math.ceil(int(result[1]) / 1000)))
        if status == "idem_reused":
            raise IdempotencyKeyReused("this Idempotency-Key was used for a different request")
        if status == "closed":
            raise CommentsClosed("comments are closed for this article")
        if status == "bad_parent":
            raise InvalidParent("the comment replied to is not an approved comment of this article")
        if status == "corrupt":  # a damaged key: the scripts checked before writing, so nothing was stored
            raise corrupt(result[1])
        raise RuntimeError(f"the submit script answered {status!r}")
