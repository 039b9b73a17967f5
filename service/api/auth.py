"""Who is asking, on the moderation API, the feed and the admin routes: a machine with a bearer token, or a
person with a session cookie (`service.accounts`).

A request made with the session cookie that changes something (any method but GET, HEAD, OPTIONS) must also
show that it comes from the service's own pages, twice over: its `Origin` is the service's own (or, without an
`Origin`, its `Sec-Fetch-Site` says same-origin), and it carries the session's CSRF token in `X-CSRF-Token`, a
header that a cross-site form cannot send and that a cross-origin script cannot send without a preflight this
service never grants. SameSite=Strict alone would not do: pages of a sibling subdomain are "same-site". A request
with `Authorization: Bearer` is not a browser's ambient credential and is checked as before.
"""

from __future__ import annotations

import hmac
import logging
import math
from typing import Final

from aiohttp import web
from yarl import URL

from service import keys
from service.accounts import Session
from service.api.clientinfo import client_ip_hash
from service.api.problems import _HOST_RE, _scheme
from service.appkeys import ACCOUNTS, SCRIPTS, SETTINGS, TOKENS
from service.errors import (
    BadRequest,
    CsrfRefused,
    Forbidden,
    RateLimited,
    SessionEnded,
    TotpEnrolmentRequired,
    Unauthenticated,
)
from service.settings import Settings
from service.tokens import Principal, Role

log = logging.getLogger("service.auth")

#: Failed attempts allowed per client address per window, before 429.
FAILURES_ALLOWED = 20
FAILURE_WINDOW_SECONDS = 300
PRINCIPAL = web.RequestKey("principal", Principal)
SESSION = web.RequestKey("session", Session)
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER: Final = "X-CSRF-Token"


def session_cookie(settings: Settings) -> str:
    """The cookie's name: with the `__Host-` prefix wherever it is Secure, so that no sibling subdomain can set
    or shadow it (the prefix demands Secure, Path=/ and no Domain, which is how it is set)."""
    return "cm_session" if settings.env == "development" else "__Host-cm_session"


async def require_role(request: web.Request, role: Role | str) -> Principal:
    needed = role if isinstance(role, Role) else Role(role)
    if request.query_string:  # most requests have none: not parsing it saves work on every call
        for name in ("token", "access_token", "api_key", "auth"):
            if name in request.query:
                raise BadRequest("tokens are refused in the query string: send them as 'Authorization: Bearer'")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token.strip():
        principal = await request.app[TOKENS].authenticate(token.strip())
    elif not header and session_cookie(request.app[SETTINGS]) in request.cookies:
        session = await require_session(request)
        if session.enrol_only:
            raise TotpEnrolmentRequired("admins sign in with a code: enrol an authenticator app first")
        principal = session.principal
        if not principal.may(needed):
            raise Forbidden("your role ({role}) may not do this", params={"role": principal.role})
    if principal is None:
        await _count_failure(request)
        raise Unauthenticated("send a valid token as 'Authorization: Bearer <token>'")
    if not principal.may(needed):
        raise Forbidden("this token's role ({role}) may not do this", params={"role": principal.role})
    request[PRINCIPAL] = principal
    return principal


async def require_session(request: web.Request) -> Session:
    """The live session of the request's cookie, with the CSRF defence for a request that changes something.
    The session's routes themselves (`api.accounts`) call this directly; an admin who must enrol a second factor
    gets a session that only they accept."""
    cookie = request.cookies.get(session_cookie(request.app[SETTINGS]))
    if not cookie:
        raise SessionEnded("sign in first")
    unsafe = request.method not in SAFE_METHODS
    if unsafe:
        check_same_origin(request, browser_only=False)
    session = await request.app[ACCOUNTS].session(cookie)
    if unsafe:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise CsrfRefused("send the session's CSRF token in the X-CSRF-Token header")
    request[SESSION] = session
    return session


def own_origins(request: web.Request) -> set[str]:
    """The service's own origin: COMMENTS_PUBLIC_URL's, and the one this request was sent to (its Host, with the
    scheme a trusted proxy reports): a victim's browser sends the real Host, whatever page made the request."""
    candidates = [request.app[SETTINGS].public_origin]
    if _HOST_RE.fullmatch(request.host):
        candidates.append(f"{_scheme(request)}://{request.host}")
    return {origin for origin in map(_origin, candidates) if origin is not None}


def _origin(value: str) -> str | None:
    try:
        url = URL(value)
        return str(url.origin()).lower() if url.absolute and url.scheme in ("http", "https") else None
    except ValueError:
        return None


def check_same_origin(request: web.Request, *, browser_only: bool) -> None:
    """Refuse a request a browser sent from another origin. `browser_only`: a request with neither `Origin` nor
    `Sec-Fetch-Site` (a script, curl) passes, as at sign-in, where no cookie is yet at stake but a cross-site
    form could sign a victim in as the attacker."""
    origin = request.headers.get("Origin")
    if origin is not None:
        if _origin(origin) not in own_origins(request):
            raise CsrfRefused("this request did not come from the service's own pages")
        return
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site == "same-origin" or (browser_only and fetch_site is None):
        return
    raise CsrfRefused("this request did not come from the service's own pages")


async def _count_failure(request: web.Request) -> None:
    ip_hash = client_ip_hash(request)
    count, ttl_ms = await request.app[SCRIPTS].run(
        "rate_limit", [keys.rate_limit("auth", ip_hash, FAILURE_WINDOW_SECONDS)], [FAILURE_WINDOW_SECONDS * 1000])
    log.warning("failed authentication", extra={"ip_hash": ip_hash, "path": request.path, "failures": count})
    if count > FAILURES_ALLOWED:
        raise RateLimited("too many failed attempts", retry_after=max(1, math.ceil(ttl_ms / 1000)))
