"""Bearer tokens for the moderation API, the feed and the admin routes."""

from __future__ import annotations

import logging
import math

from aiohttp import web

from service import keys
from service.api.clientinfo import client_ip_hash
from service.appkeys import SCRIPTS, TOKENS
from service.errors import BadRequest, Forbidden, RateLimited, Unauthenticated
from service.tokens import Principal, Role

log = logging.getLogger("service.auth")

#: Failed attempts allowed per client address per window, before 429.
FAILURES_ALLOWED = 20
FAILURE_WINDOW_SECONDS = 300
PRINCIPAL = web.RequestKey("principal", Principal)


async def require_role(request: web.Request, role: Role | str) -> Principal:
    needed = role if isinstance(role, Role) else Role(role)
    if request.query_string:  # most requests have none: not parsing it saves a few µs on every call
        for name in ("token", "access_token", "api_key", "auth"):
            if name in request.query:
                raise BadRequest("tokens are refused in the query string: send them as 'Authorization: Bearer'")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token.strip():
        principal = await request.app[TOKENS].authenticate(token.strip())
    if principal is None:
        await _count_failure(request)
        raise Unauthenticated("send a valid token as 'Authorization: Bearer <token>'")
    if not principal.may(needed):
        raise Forbidden("this token's role ({role}) may not do this", params={"role": principal.role})
    request[PRINCIPAL] = principal
    return principal


async def _count_failure(request: web.Request) -> None:
    ip_hash = client_ip_hash(request)
    count, ttl_ms = await request.app[SCRIPTS].run(
        "rate_limit", [keys.rate_limit("auth", ip_hash, FAILURE_WINDOW_SECONDS)], [FAILURE_WINDOW_SECONDS * 1000])
    log.warning("failed authentication", extra={"ip_hash": ip_hash, "path": request.path, "failures": count})
    if count > FAILURES_ALLOWED:
        raise RateLimited("too many failed attempts", retry_after=max(1, math.ceil(ttl_ms / 1000)))
