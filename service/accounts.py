"""Accounts for people (moderators and admins), their invitations, passwords, second factor and sessions.

Machines keep their bearer tokens (`service.tokens`); people sign in with a name and a password and get a
session cookie. What is stored:

- An **account** (`keys.account(folded name)`): the name as written, its role, an argon2id hash of the password,
  a disabled flag, and the TOTP secret once enrolled. Names are unique without regard to case (`fold`).
- An **invitation** (`keys.invitation(sha256)`): a name and role, for 72 hours, until the invitee sets a password.
  The link's token is 256 random bits, kept only as its SHA-256 (a fast hash is right for random input), and is
  used up in the same atomic step that creates the account (`lua/account_accept.lua`).
- A **password reset** (`keys.password_reset(sha256)`): whose password a reset link sets, until it is used or
  runs out: 24 hours when an admin made it (`POST /v1/accounts/{name}/password-reset`, `users reset`), 1 hour when
  the person asked for it by name (`POST /v1/session/password-reset`, emailed to the account's notification
  address). Its token is 256 random bits kept only as its SHA-256, as an invitation's; the account names its one
  live reset (field `reset`), so a newer one voids the older. Using it (`lua/account_reset.lua`) sets the new
  password, uses the reset up and ends every session of the person in one step; a second factor stays enrolled.
- A **session** (`keys.session(sha256 of the cookie)`): the person, role, CSRF token, the absolute expiry and the
  idle deadline, checked at every use against the caller's clock (`lua/session_touch.lua`); each person's sessions
  are also in a sorted set (`keys.account_sessions`), so disabling an account, changing its role or an admin's
  "end sessions" ends them all at once.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second recommended choice: 64 MiB, 3
passes), about 50 ms of CPU each, so hashing and verifying run in a small thread pool of their own: the event loop
keeps serving, and no more than a few hashes (and their memory) run at once. A sign-in for a name that has no
account verifies against a dummy hash, so its answer takes as long as a wrong password's.

A request for a reset by name answers alike whether or not the name has an account, an address or is enabled
(the API's 202): every name costs the same Redis calls (two counters, a read, one script) and no password
hashing; a name that gets a link adds only the queueing of its email (one script; the mailer sends it later, never
the request). Such requests are limited per client address (past it: 429) and per name (past it:
still 202, and no more email, so nobody can flood a person's mailbox or learn anything from the answer).

Failed sign-ins are limited per account and per client address (`Settings.signin_limit_*`), with the fixed-window
counter of `lua/rate_limit.lua`. The account's counter counts every attempt before the password is checked (so
parallel guesses cannot slip past it) and is cleared by a success; the client's counts failures only, so a newsroom
behind one address can still sign in its whole shift.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import enum
import hashlib
import hmac
import math
import re
import secrets
import string
import struct
import time
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final, Literal, cast
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field

from service import keys
from service.connections import RedisClient
from service.errors import (
    AccountDisabled,
    Conflict,
    InvitationInvalid,
    NameTaken,
    NotFound,
    PasswordResetInvalid,
    RateLimited,
    SessionEnded,
    SigninFailed,
    SigninLimited,
    StorageCorrupt,
    TotpInvalid,
    TotpRequired,
    ValidationFailed,
    WeakPassword,
)
from service.records import stored_ms
from service.scripts import Scripts, as_text
from service.tokens import Principal, Role

#: A person's name: 2 to 40 letters (of any script, so "Hương" is a name), ASCII digits, `.`, `_` and `-`, checked
#: character by character on the NFC form (`valid_name`). Python's `\w` would also let in digits of other scripts
#: and numerals such as "²" or "Ⅷ", which look like ours. No `:`, `{` or space: a name is a safe last part of a key
#: and of a path.
NAME_PATTERN: Final = r"^[\p{L}0-9._-]{2,40}$"
_NAME_ASCII: Final = frozenset(string.ascii_letters + string.digits + "._-")
_LETTERS: Final = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo"})
PASSWORD_MIN: Final = 12
#: argon2 hashes whatever it is given; a bound keeps a megabyte "password" from costing more than a normal one.
PASSWORD_MAX: Final = 256
INVITATION_SECONDS: Final = 72 * 3600
INVITATION_PREFIX: Final = "cmi_"
RESET_PREFIX: Final = "cmr_"
#: A reset's token as a link carries it: the prefix and 256 random bits in base64url (43 characters), checked whole.
RESET_TOKEN_PATTERN: Final = r"^cmr_[A-Za-z0-9_-]{43}$"
_RESET_TOKEN_RE: Final = re.compile(RESET_TOKEN_PATTERN)  # with `fullmatch`: a trailing newline is refused too
#: How long a reset link works: an admin hands it over by other means (a chat, a phone call), which may take a
#: working day; a link the person asked for goes straight to their mailbox and is used at once.
RESET_SECONDS_ADMIN: Final = 24 * 3600
RESET_SECONDS_SELF: Final = 3600
#: Self-service requests: (count, window seconds) per client address, and per name (past it: no more email).
RESET_LIMIT_CLIENT: Final = (5, 900)
RESET_LIMIT_ACCOUNT: Final = (3, 3600)
#: How often a reset reads the person's sessions again when one started or ended in between (`lua/account_reset.lua`).
RESET_ATTEMPTS: Final = 5
TOTP_PERIOD: Final = 30
TOTP_DIGITS: Final = 6
TOTP_ISSUER: Final = "Comments"


class AccountRole(enum.StrEnum):
    MODERATOR = "moderator"  #: the queue and decisions
    ADMIN = "admin"  #: everything, people and machine tokens included

    @property
    def role(self) -> Role:
        return Role(self.value)


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    role: AccountRole
    disabled: bool
    created_at: int  #: Unix ms
    totp: bool  #: signs in with a code as well


@dataclass(frozen=True, slots=True)
class Invitation:
    token: str  #: shown once, in the link
    name: str
    role: AccountRole
    expires_at: int  #: Unix ms


@dataclass(frozen=True, slots=True)
class PasswordReset:
    token: str  #: shown once, in the link ("" when read back)
    name: str
    expires_at: int  #: Unix ms


@dataclass(frozen=True, slots=True)
class ResetDelivery:
    """A reset the person asked for, to be emailed (`mail.mailer.Mail.password_reset`)."""

    reset: PasswordReset
    email: str
    lang: Literal["vi", "en"]


@dataclass(frozen=True, slots=True)
class Session:
    digest: str  #: the SHA-256 of the cookie: the session's key
    folded: str
    name: str
    role: AccountRole
    csrf: str
    expires_at: int  #: Unix ms: the absolute end, however busy
    #: True while an admin who must sign in with a code has not enrolled one: the session may only do that.
    enrol_only: bool

    @property
    def principal(self) -> Principal:
        """Who acts, for the moderation domain: history and stats name the person."""
        return Principal(token_id=f"account:{self.folded}", name=self.name, role=self.role.role)


# -- names and passwords ---------------------------------------------------------------------------------------

# -- what clients send and see (api.accounts) -----------------------------------------------------------------

class InvitationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=2, max_length=40, description="The person's name for signing in, and as history "
                                                               "and stats will name their decisions: 2 to 40 "
                                                               "letters, ASCII digits, '.', '_' or '-'; unique "
                                                               "whatever the case.")
    role: AccountRole = Field(description="moderator (the queue and decisions) or admin (everything, people and "
                                          "machine tokens included).")


class InvitationView(BaseModel):
    name: str = Field(description="The name the invitation is for.")
    role: AccountRole = Field(description="The role the account will have.")
    expires_at: str = Field(description="When the invitation runs out (ISO 8601, UTC), 72 hours after it was made.")


class InvitationCreated(InvitationView):
    link: str = Field(description="The one-time link to send to the person (it holds the invitation's secret "
                                  "token; shown only now).")


class AcceptRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, max_length=PASSWORD_MAX,
                          description=f"The password the person chooses: at least {PASSWORD_MIN} characters, not "
                                      "one of the most common passwords and not containing the name.")


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="The account's name (case does not matter).")


class ResetRequested(BaseModel):
    detail: str = Field(description="The same words whether or not the name has an account: if it has one, is "
                                    "enabled and has an email address for notifications, a link valid 1 hour is "
                                    "on its way there.")


class ResetView(BaseModel):
    name: str = Field(description="Whose password the link sets.")
    expires_at: str = Field(description="When the link runs out (ISO 8601, UTC).")


class ResetCreated(ResetView):
    link: str = Field(description="The one-time link to hand to the person (it holds the reset's secret token; "
                                  "shown only now). Valid 24 hours; a newer link voids it.")


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(min_length=1, max_length=PASSWORD_MAX,
                          description=f"The new password: at least {PASSWORD_MIN} characters, not one of the most "
                                      "common passwords and not containing the name.")


class AccountView(BaseModel):
    name: str = Field(description="The account's name, as written when invited.")
    role: AccountRole = Field(description="moderator or admin.")
    disabled: bool = Field(description="True once an admin disabled it: it cannot sign in.")
    created_at: str = Field(description="When the invitation was accepted (ISO 8601, UTC).")
    totp: bool = Field(description="True when the person signs in with an authenticator app's code as well.")


class AccountList(BaseModel):
    accounts: list[AccountView] = Field(description="Every account, by name.")


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: AccountRole = Field(description="The new role; the person's sessions end, so they sign in again with it.")


class SessionsEnded(BaseModel):
    ended: int = Field(description="How many live sessions were ended.")


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, description="The account's name (case does not matter).")
    password: str = Field(min_length=1, max_length=PASSWORD_MAX, description="The account's password.")
    totp: str | None = Field(default=None, max_length=10,
                             description="The 6-digit code of the authenticator app, for an account that enrolled "
                                         "one (answered `totp_required` without it).")


class SessionView(BaseModel):
    name: str = Field(description="Who is signed in; history and stats name their decisions so.")
    role: AccountRole = Field(description="moderator or admin.")
    csrf_token: str = Field(description="Send it as the `X-CSRF-Token` header with every request made with the "
                                        "session cookie that changes something.")
    expires_at: str = Field(description="When the session ends however busy (ISO 8601, UTC); it ends sooner "
                                        "after the idle timeout without a request.")
    totp_enrolment_required: bool = Field(description="True when this admin must enrol an authenticator app "
                                                      "(POST /v1/session/totp) before doing anything else.")


class TotpEnrolment(BaseModel):
    secret: str = Field(description="The new secret (base32), for typing into an authenticator app.")
    otpauth_uri: str = Field(description="The same as an otpauth:// URI, for a QR code.")


class TotpConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=6, max_length=6, description="The app's current 6-digit code for the new secret.")


def fold(name: str) -> str:
    """The name without case (and in NFC), for uniqueness and keys: "Lan" and "LAN" are one person."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def valid_name(name: str) -> str | None:
    """The name in NFC if it is a valid account name, else None."""
    name = unicodedata.normalize("NFC", name)
    if 2 <= len(name) <= 40 and all(c in _NAME_ASCII or unicodedata.category(c) in _LETTERS for c in name):
        return name
    return None


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (`data/common-passwords.txt`), casefolded."""
    text = resources.files("service").joinpath("data", "common-passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip() and line[0] != "#")


def check_password(password: str, name: str) -> None:
    """Refuse a password that is short, long, common, or the name itself (NIST SP 800-63B section 5.1.1.2)."""
    if len(password) < PASSWORD_MIN:
        raise WeakPassword("the password needs at least {min} characters", params={"min": PASSWORD_MIN})
    if len(password) > PASSWORD_MAX:
        raise WeakPassword("the password may have at most {max} characters", params={"max": PASSWORD_MAX})
    folded = password.casefold()
    if folded in common_passwords():
        raise WeakPassword("this password is one of the most common ones; choose another")
    if fold(name) in folded:
        raise WeakPassword("the password must not contain the name")


# -- TOTP (RFC 6238) -------------------------------------------------------------------------------------------
# Written out rather than taken from pyotp: it is a dozen lines over the standard library's hmac, and the parts
# that matter here (which steps are accepted, constant-time comparison, refusing a step used before) are ours
# either way; tests check it against the RFC's own vectors.

def totp_code(secret: bytes, step: int, digits: int = TOTP_DIGITS, digest: str = "sha1") -> str:
    """The code for a time step (RFC 4226 section 5.3's dynamic truncation of HMAC(secret, step))."""
    mac = hmac.new(secret, struct.pack(">Q", step), digest).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def totp_step(now: float) -> int:
    return int(now // TOTP_PERIOD)


def totp_match(secret: bytes, code: str, now: float) -> int | None:
    """The time step whose code `code` is, within one step either side (clock drift), or None."""
    if len(code) != TOTP_DIGITS or not all(c in "0123456789" for c in code):
        return None
    step = totp_step(now)
    found = None
    for candidate in (step - 1, step, step + 1):  # every one compared, so the time says nothing of which
        if hmac.compare_digest(totp_code(secret, candidate), code):
            found = candidate
    return found


def totp_uri(secret_b32: str, name: str) -> str:
    label = quote(f"{TOTP_ISSUER}:{name}", safe="")
    return (f"otpauth://totp/{label}?secret={secret_b32}&issuer={quote(TOTP_ISSUER)}&algorithm=SHA1"
            f"&digits={TOTP_DIGITS}&period={TOTP_PERIOD}")


def _b32decode(text: str) -> bytes:
    return base64.b32decode(text + "=" * (-len(text) % 8))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _fields(row: dict[Any, Any]) -> dict[str, str]:
    return {as_text(k): as_text(v) for k, v in row.items()}


class Accounts:
    def __init__(self, redis: RedisClient, scripts: Scripts, *, idle_seconds: int, lifetime_seconds: int,
                 admin_totp_required: bool, limit_account: tuple[int, int], limit_client: tuple[int, int],
                 hashing_threads: int = 2) -> None:
        self._redis = redis
        self._scripts = scripts
        self._idle_ms = idle_seconds * 1000
        self._lifetime_ms = lifetime_seconds * 1000
        self._admin_totp_required = admin_totp_required
        self._limit_account = limit_account
        self._limit_client = limit_client
        self._hasher = PasswordHasher()
        self._pool = ThreadPoolExecutor(max_workers=hashing_threads, thread_name_prefix="argon2")
        self._dummy_hash: str | None = None
        #: Unix time in seconds; tests move it to reach idle timeouts and lifetimes without waiting.
        self.clock: Callable[[], float] = time.time

    async def start(self) -> None:
        """Hash the dummy password now, so that the first sign-in for a name without an account takes as long
        as any other."""
        await self._dummy()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _in_pool(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    async def _hash(self, password: str) -> str:
        hashed: str = await self._in_pool(self._hasher.hash, password)
        return hashed

    async def _verify(self, hashed: str, password: str) -> bool:
        try:
            return bool(await self._in_pool(self._hasher.verify, hashed, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    # -- invitations and accounts -----------------------------------------------------------------------------

    async def invite(self, name: str, role: AccountRole, invited_by: str) -> Invitation:
        written = valid_name(name)
        if written is None:
            raise ValidationFailed("a name has 2 to 40 letters, digits, '.', '_' or '-'")
        folded = fold(written)
        if await self._redis.exists(keys.account(folded)):
            raise NameTaken("the name {name} is taken", params={"name": written})
        token = INVITATION_PREFIX + secrets.token_urlsafe(32)
        expires = self._now_ms() + INVITATION_SECONDS * 1000
        key = keys.invitation(digest(token))
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"folded": folded, "name": written, "role": role.value, "by": invited_by,
                                "expires": expires})
        pipe.pexpire(key, INVITATION_SECONDS * 1000)
        await pipe.execute()
        return Invitation(token=token, name=written, role=role, expires_at=expires)

    async def invitation(self, token: str) -> Invitation:
        """The invitation a link's token names (its token left out), or `InvitationInvalid`."""
        if not token.startswith(INVITATION_PREFIX) or len(token) > 100:
            raise InvitationInvalid("this invitation does not exist, was used or expired")
        row = _fields(await self._redis.hgetall(keys.invitation(digest(token))))
        if not row or int(row.get("expires", "0")) <= self._now_ms():
            raise InvitationInvalid("this invitation does not exist, was used or expired")
        return Invitation(token="", name=row["name"], role=AccountRole(row["role"]), expires_at=int(row["expires"]))

    async def accept(self, token: str, password: str) -> Account:
        """Set the invitee's password and create the account; the invitation works once."""
        invited = await self.invitation(token)
        check_password(password, invited.name)
        hashed = await self._hash(password)
        folded = fold(invited.name)
        now = self._now_ms()
        outcome = as_text(await self._scripts.run(
            "account_accept", [keys.invitation(digest(token)), keys.account(folded), keys.account_index()],
            [folded, invited.name, invited.role.value, hashed, now]))
        if outcome == "taken":
            raise NameTaken("the name {name} is taken", params={"name": invited.name})
        if outcome != "ok":
            raise InvitationInvalid("this invitation does not exist, was used or expired")
        return Account(name=invited.name, role=invited.role, disabled=False, created_at=now, totp=False)

    async def _row(self, name: str) -> tuple[str, dict[str, str]]:
        written = valid_name(name)
        row = _fields(await self._redis.hgetall(keys.account(fold(written)))) if written else {}
        if not row:
            raise NotFound("no such account")
        return fold(row["name"]), row

    @staticmethod
    def _account(row: dict[str, str]) -> Account:
        return Account(name=row["name"], role=AccountRole(row["role"]), disabled=row.get("disabled") == "1",
                       created_at=int(row.get("created_at", "0")), totp=bool(row.get("totp")))

    async def get(self, name: str) -> Account:
        return self._account((await self._row(name))[1])

    async def list(self) -> list[Account]:
        names = sorted(as_text(n) for n in await self._redis.smembers(keys.account_index()))
        pipe = self._redis.pipeline(transaction=False)
        for folded in names:
            pipe.hgetall(keys.account(folded))
        rows = [_fields(row) for row in await pipe.execute()]
        return [self._account(row) for row in rows if row]

    async def disable(self, name: str) -> Account:
        """Disable the account and end its sessions. The flag is set first: `session_start.lua` refuses a
        disabled account, so no session can start after the sessions are read and ended."""
        folded, _ = await self._row(name)
        await self._redis.hset(keys.account(folded), "disabled", "1")
        await self.end_sessions(name)
        return await self.get(name)

    async def set_role(self, name: str, role: AccountRole) -> Account:
        """Change the role and end the person's sessions, so that no session goes on with the old role."""
        folded, _ = await self._row(name)
        await self._redis.hset(keys.account(folded), "role", role.value)
        await self.end_sessions(name)
        return await self.get(name)

    async def end_sessions(self, name: str) -> int:
        """End every session of the person; returns how many were live."""
        folded, _ = await self._row(name)
        index = keys.account_sessions(folded)
        members = cast(list[bytes], await self._redis.zrange(index, 0, -1))
        digests = [as_text(d) for d in members]
        pipe = self._redis.pipeline(transaction=True)
        for session_digest in digests:
            pipe.delete(keys.session(session_digest))
        if digests:
            pipe.zrem(index, *digests)
        ended = await pipe.execute()
        return sum(int(n) for n in ended[:len(digests)])

    # -- password resets -----------------------------------------------------------------------------------------

    async def issue_reset(self, name: str, by: str) -> PasswordReset:
        """An admin's reset link for an enabled account (valid `RESET_SECONDS_ADMIN`); any older link of the
        account stops working."""
        written = valid_name(name)
        if written is None:
            raise NotFound("no such account")
        reply = await self._issue(fold(written), by, RESET_SECONDS_ADMIN, need_mail=False)
        outcome = as_text(reply[0])
        if outcome == "gone":
            raise NotFound("no such account")
        if outcome == "disabled":
            raise AccountDisabled("the account {name} is disabled", params={"name": written})
        return PasswordReset(token=as_text(reply[1]), name=as_text(reply[2]), expires_at=int(reply[3]))

    async def request_reset(self, name: str, client: str, *, deliver: bool) -> ResetDelivery | None:
        """A person asks for a reset by name. Returns the reset to email when the name has an enabled account with
        an address and `deliver` (the service sends email); None otherwise, and past the name's limit. The caller
        answers alike either way. `RateLimited` past the client's limit."""
        written = valid_name(name)
        folded = fold(written) if written else "-"  # "-" is no account's name: the same calls, nothing found
        count, window = RESET_LIMIT_CLIENT
        hits, retry_after = await self._limited(keys.rate_limit("reset-client", client, window), window)
        if hits > count:
            raise RateLimited("too many password reset requests; try again later", retry_after=retry_after)
        count, window = RESET_LIMIT_ACCOUNT
        hits, _ = await self._limited(keys.rate_limit("reset-account", folded, window), window)
        if hits > count or not deliver:
            return None
        reply = await self._issue(folded, "self-service", RESET_SECONDS_SELF, need_mail=True)
        if as_text(reply[0]) != "ok":
            return None
        reset = PasswordReset(token=as_text(reply[1]), name=as_text(reply[2]), expires_at=int(reply[3]))
        return ResetDelivery(reset=reset, email=as_text(reply[4]), lang="en" if as_text(reply[5]) == "en" else "vi")

    async def _issue(self, folded: str, by: str, seconds: int, *, need_mail: bool) -> builtins.list[Any]:
        """Run `lua/account_reset_issue.lua`; returns its outcome, then (when "ok") the token, the name, the expiry,
        the address and the language."""
        token = RESET_PREFIX + secrets.token_urlsafe(32)
        expires = self._now_ms() + seconds * 1000
        previous = await self._redis.hget(keys.account(folded), "reset")
        reset_keys = [keys.account(folded), keys.password_reset(digest(token))]
        if previous:
            reset_keys.append(keys.password_reset(as_text(previous)))
        reply = await self._scripts.run("account_reset_issue", reset_keys,
                                        [folded, digest(token), expires, seconds * 1000, by, int(need_mail)])
        if as_text(reply[0]) != "ok":
            return [reply[0]]
        return [reply[0], token, reply[1], expires, reply[2], reply[3]]

    async def reset(self, token: str) -> PasswordReset:
        """The reset a link's token names (its token left out), or `PasswordResetInvalid`: gone, used, expired,
        replaced by a newer one, or its account gone or disabled."""
        if not _RESET_TOKEN_RE.fullmatch(token):
            raise PasswordResetInvalid("this password reset link does not exist, was used or expired")
        token_digest = digest(token)
        row = _fields(await self._redis.hgetall(keys.password_reset(token_digest)))
        expires = stored_ms(row.get("expires"))
        account = _fields(await self._redis.hgetall(keys.account(row["folded"]))) if row.get("folded") else {}
        if (expires is None or expires <= self._now_ms() or not account
                or account.get("disabled") == "1" or account.get("reset") != token_digest):
            raise PasswordResetInvalid("this password reset link does not exist, was used or expired")
        return PasswordReset(token="", name=account["name"], expires_at=expires)

    async def use_reset(self, token: str, password: str) -> Account:
        """Set the new password; the link works once. Every session of the person ends, the count of failed
        sign-ins of the account is cleared, and a second factor stays enrolled."""
        found = await self.reset(token)
        check_password(password, found.name)
        hashed = await self._hash(password)
        folded = fold(found.name)
        token_digest = digest(token)
        index = keys.account_sessions(folded)
        for _ in range(RESET_ATTEMPTS):
            sessions = [as_text(d) for d in cast(list[bytes], await self._redis.zrange(index, 0, -1))]
            reply = await self._scripts.run(
                "account_reset",
                [keys.password_reset(token_digest), keys.account(folded), index,
                 *(keys.session(d) for d in sessions)],
                [token_digest, folded, hashed, self._now_ms(), *sessions])
            if as_text(reply[0]) != "retry":
                break
        outcome = as_text(reply[0])
        if outcome == "retry":
            raise Conflict("the account changed meanwhile; try again")
        if outcome != "ok":
            raise PasswordResetInvalid("this password reset link does not exist, was used or expired")
        # Another slot ({g}) than the account's: not in the script; a count left by a crash here only ages out.
        await self._redis.delete(keys.rate_limit("signin-account", folded, self._limit_account[1]))
        return self._account((await self._row(found.name))[1])

    # -- signing in and sessions -------------------------------------------------------------------------------

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    async def _limited(self, key: str, window: int) -> tuple[int, int]:
        count, ttl_ms = await self._scripts.run("rate_limit", [key], [window * 1000])
        return int(count), max(1, math.ceil(int(ttl_ms) / 1000))

    async def sign_in(self, name: str, password: str, code: str | None, client: str) -> tuple[str, Session]:
        """Check the name, password and (if enrolled) code; start a session. Returns the cookie's value (shown
        only now: the session is stored by its SHA-256) and the session."""
        written = valid_name(name) or ""
        folded = fold(written) if written else "-"
        client_count, client_window = self._limit_client
        client_key = keys.rate_limit("signin-client", client, client_window)
        failures, ttl_ms = await self._failures(client_key)
        if failures >= client_count:
            raise SigninLimited("too many failed sign-ins; try again later", retry_after=ttl_ms)
        account_count, account_window = self._limit_account
        account_key = keys.rate_limit("signin-account", folded, account_window)
        attempts, retry_after = await self._limited(account_key, account_window)
        if attempts > account_count:
            raise SigninLimited("too many failed sign-ins; try again later", retry_after=retry_after)

        row = _fields(await self._redis.hgetall(keys.account(folded))) if written else {}
        usable = bool(row) and row.get("disabled") != "1"
        verified = await self._verify(row["password"] if usable else await self._dummy(), password)
        if not (usable and verified):
            await self._limited(client_key, client_window)
            raise SigninFailed("wrong name or password")

        step = 0
        if row.get("totp"):
            if not code:  # still counted: asking again without a code must not reset the account's count
                raise TotpRequired("enter the code from your authenticator app")
            matched = totp_match(_b32decode(row["totp"]), code, self.clock())
            if matched is None:
                await self._limited(client_key, client_window)
                raise TotpInvalid("the code is wrong or was already used")
            step = matched
        enrol_only = (self._admin_totp_required and row["role"] == AccountRole.ADMIN and not row.get("totp"))
        if self._hasher.check_needs_rehash(row["password"]):
            await self._redis.hset(keys.account(folded), "password", await self._hash(password))

        cookie = secrets.token_urlsafe(32)
        session_digest = digest(cookie)
        csrf = secrets.token_urlsafe(32)
        now = self._now_ms()
        reply = await self._scripts.run(
            "session_start", [keys.account(folded), keys.account_sessions(folded), keys.session(session_digest)],
            [now, self._idle_ms, self._lifetime_ms, session_digest, csrf, step, int(enrol_only), folded])
        outcome = as_text(reply[0])
        if outcome == "replay":
            await self._limited(client_key, client_window)
            raise TotpInvalid("the code is wrong or was already used")
        if outcome != "ok":
            raise SigninFailed("wrong name or password")
        await self._unless_reset_meanwhile(folded, row.get("pw_reset", ""), session_digest)
        await self._redis.delete(account_key)
        return cookie, Session(digest=session_digest, folded=folded, name=as_text(reply[1]),
                               role=AccountRole(as_text(reply[2])), csrf=csrf,
                               expires_at=now + self._lifetime_ms, enrol_only=enrol_only)

    async def _unless_reset_meanwhile(self, folded: str, stamp: str, session_digest: str) -> None:
        """End the session just started, and refuse the sign-in, if the password was reset since the account was
        read: the old password was checked, and a reset ends every session, this one included (it started after
        the reset's script ended the others). `pw_reset` names the latest reset used (`lua/account_reset.lua`)."""
        latest = as_text(await self._redis.hget(keys.account(folded), "pw_reset") or b"")
        if latest != stamp:
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(keys.session(session_digest))
            pipe.zrem(keys.account_sessions(folded), session_digest)
            await pipe.execute()
            raise SigninFailed("wrong name or password")

    async def _failures(self, key: str) -> tuple[int, int]:
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(key)
        pipe.pttl(key)
        raw, ttl_ms = await pipe.execute()
        try:
            count = int(raw or 0)
        except ValueError:
            raise StorageCorrupt("the stored data is damaged ({what}); nothing was changed",
                                 params={"what": "not_integer:rate_limit"}) from None
        return count, max(1, math.ceil(max(0, int(ttl_ms)) / 1000))

    async def session(self, cookie: str) -> Session:
        """The live session a cookie names, its idle timeout started again; `SessionEnded` if there is none."""
        if not 20 <= len(cookie) <= 100:
            raise SessionEnded("your session has ended; sign in again")
        session_digest = digest(cookie)
        reply = await self._scripts.run("session_touch", [keys.session(session_digest)],
                                        [self._now_ms(), self._idle_ms])
        if not reply:
            raise SessionEnded("your session has ended; sign in again")
        folded, name, role, csrf, expires, enrol = (as_text(part) for part in reply)
        return Session(digest=session_digest, folded=folded, name=name, role=AccountRole(role), csrf=csrf,
                       expires_at=int(float(expires)), enrol_only=enrol == "1")

    async def sign_out(self, session: Session) -> None:
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(keys.session(session.digest))
        pipe.zrem(keys.account_sessions(session.folded), session.digest)
        await pipe.execute()

    # -- a second factor -------------------------------------------------------------------------------------

    async def totp_begin(self, session: Session) -> tuple[str, str]:
        """A new secret for the person to add to an authenticator app; it counts once confirmed with a code.
        Returns the secret (base32) and its otpauth:// URI (for a QR code)."""
        secret = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")
        await self._redis.hset(keys.account(session.folded), "totp_pending", secret)
        return secret, totp_uri(secret, session.name)

    async def totp_confirm(self, session: Session, code: str) -> None:
        """Enrol the pending secret if `code` is its current code; then the account signs in with codes."""
        pending = as_text(await self._redis.hget(keys.account(session.folded), "totp_pending") or b"")
        step = totp_match(_b32decode(pending), code, self.clock()) if pending else None
        if step is None:
            raise TotpInvalid("the code is wrong or was already used")
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(keys.account(session.folded), mapping={"totp": pending, "totp_step": step})
        pipe.hdel(keys.account(session.folded), "totp_pending")
        # The session that enrolled may now do everything. Its idle timeout was just started again (`session`), so
        # the TTL set here is the one it has; were it to end in between, the bare hash left expires as well.
        pipe.hset(keys.session(session.digest), "enrol", "0")
        pipe.pexpire(keys.session(session.digest), self._idle_ms)
        await pipe.execute()

    # -- email notifications (`service.mail`) ----------------------------------------------------------------

    async def set_notifications(self, name: str, notifications: Notifications) -> Notifications:
        """A person's email address and how often they hear of the queue: each new comment, a digest every N
        minutes, or nothing. The address is for these emails only; no view of the account shows it but this."""
        folded, _ = await self._row(name)
        await self._redis.hset(keys.account(folded), mapping={
            "mail": notifications.email or "", "notify": notifications.mode,
            "notify_minutes": notifications.minutes, "mail_lang": notifications.lang})
        return notifications

    async def notifications(self, name: str) -> Notifications:
        _, row = await self._row(name)
        return _notifications(row)

    async def notification_recipients(self) -> builtins.list[tuple[Account, Notifications]]:
        """Every enabled account with an address and a mode other than `none`."""
        names = sorted(as_text(n) for n in await self._redis.smembers(keys.account_index()))
        pipe = self._redis.pipeline(transaction=False)
        for folded in names:
            pipe.hgetall(keys.account(folded))
        found = []
        for row in (_fields(raw) for raw in await pipe.execute()):
            if not row or row.get("disabled") == "1":
                continue
            account = self._account(row)
            wanted = _notifications(row)
            if wanted.email and wanted.mode != "none":
                found.append((account, wanted))
        return found


NotifyMode = Literal["each", "digest", "none"]


@dataclass(frozen=True, slots=True)
class Notifications:
    """What a moderator hears of the queue by email (`service.mail`)."""

    email: str | None
    mode: NotifyMode = "none"
    #: The digest's interval (mode `digest`).
    minutes: int = 30
    lang: Literal["vi", "en"] = "vi"


def _notifications(row: dict[str, str]) -> Notifications:
    mode = row.get("notify", "none")
    minutes = row.get("notify_minutes", "30")
    return Notifications(email=row.get("mail") or None,
                         mode=cast(NotifyMode, mode) if mode in ("each", "digest", "none") else "none",
                         minutes=int(minutes) if minutes.isdigit() and minutes.isascii() else 30,
                         lang="en" if row.get("mail_lang") == "en" else "vi")
