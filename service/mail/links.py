"""The signed links of emails: a moderator's approve/reject link, unsubscribe, and the two steps of a reply
subscription. A link's token is its own credential (no cookie is involved, so a cross-site form has nothing to
ride on): `<payload>.<mac>`, both unpadded base64url, the payload being `|`-separated fields whose first names
the kind of link, the MAC an HMAC-SHA256 (truncated to 192 bits) of the payload under the service's secret and a
purpose string of links. Every token is checked whole (`TOKEN_RE.fullmatch`), then its MAC, then each field
against its own pattern, before anything is read from Redis.

| kind | fields | works |
|------|--------|-------|
| d    | comment id, approve or reject, moderator (folded account name), expiry ms, nonce | once, until expiry |
| u    | email digest (`clients.email_hash`) | always (unsubscribing must keep working) |
| r    | comment id, expiry ms: ask for emails about replies (sends the confirmation) | until expiry |
| c    | comment id, expiry ms: confirm that request (the double opt-in's second step) | until expiry |
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final, Literal

from service.accounts import fold, valid_name
from service.models import COMMENT_ID_RE

TOKEN_PATTERN: Final = r"^[A-Za-z0-9_-]{4,400}\.[A-Za-z0-9_-]{32}$"
TOKEN_RE: Final = re.compile(r"\A([A-Za-z0-9_-]{4,400})\.([A-Za-z0-9_-]{32})\Z")
_DIGEST_RE: Final = re.compile(r"\A[0-9a-f]{24}\Z")
_NONCE_RE: Final = re.compile(r"\A[0-9a-f]{32}\Z")
_MS_RE: Final = re.compile(r"\A[0-9]{1,15}\Z")
_PURPOSE: Final = b"mail-link:"

Decision = Literal["approve", "reject"]


@dataclass(frozen=True, slots=True)
class DecisionLink:
    comment_id: str
    action: Decision
    moderator: str  #: the folded account name
    expires_ms: int
    nonce: str


@dataclass(frozen=True, slots=True)
class CommentLink:
    """A reply subscription's request (kind r) or confirmation (kind c)."""

    comment_id: str
    expires_ms: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.digest(secret, _PURPOSE + payload.encode(), hashlib.sha256)[:24])


def sign(secret: bytes, *fields: str) -> str:
    if any("|" in f for f in fields):
        raise ValueError("a link field may not hold '|'")
    payload = _b64("|".join(fields).encode())
    return f"{payload}.{_mac(secret, payload)}"


def _fields(secret: bytes, token: str, kind: str, count: int) -> list[str] | None:
    """The fields after the kind, if `token` is a whole, genuine token of that kind with `count` fields."""
    match = TOKEN_RE.fullmatch(token)
    if match is None or not hmac.compare_digest(_mac(secret, match[1]), match[2]):
        return None
    raw = _unb64(match[1])
    try:
        fields = raw.decode().split("|") if raw is not None else []
    except UnicodeDecodeError:
        return None
    if len(fields) != count + 1 or fields[0] != kind:
        return None
    return fields[1:]


def decision_link(secret: bytes, comment_id: str, action: Decision, moderator: str, expires_ms: int) -> str:
    return sign(secret, "d", comment_id, action, fold(moderator), str(expires_ms), secrets.token_hex(16))


def read_decision(secret: bytes, token: str) -> DecisionLink | None:
    fields = _fields(secret, token, "d", 5)
    if fields is None:
        return None
    comment_id, action, moderator, expires, nonce = fields
    if not (COMMENT_ID_RE.fullmatch(comment_id) and action in ("approve", "reject") and valid_name(moderator)
            and _MS_RE.fullmatch(expires) and _NONCE_RE.fullmatch(nonce)):
        return None
    return DecisionLink(comment_id, "approve" if action == "approve" else "reject", moderator, int(expires), nonce)


def unsubscribe_link(secret: bytes, email_digest: str) -> str:
    return sign(secret, "u", email_digest)


def read_unsubscribe(secret: bytes, token: str) -> str | None:
    """The email digest an unsubscribe token names."""
    fields = _fields(secret, token, "u", 1)
    return fields[0] if fields is not None and _DIGEST_RE.fullmatch(fields[0]) else None


def comment_link(secret: bytes, kind: Literal["r", "c"], comment_id: str, expires_ms: int) -> str:
    return sign(secret, kind, comment_id, str(expires_ms))


def read_comment_link(secret: bytes, kind: Literal["r", "c"], token: str) -> CommentLink | None:
    fields = _fields(secret, token, kind, 2)
    if fields is None or not (COMMENT_ID_RE.fullmatch(fields[0]) and _MS_RE.fullmatch(fields[1])):
        return None
    return CommentLink(fields[0], int(fields[1]))
