"""The one place errors become HTTP: domain errors and Redis failures render as RFC 9457 problem documents
(`application/problem+json`) with a stable `code`, in the client's language; anything unexpected becomes a
generic 500 that leaks nothing. Also: request ids, one JSON log line per request, metrics, and CORS.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from aiohttp import web
from redis import exceptions as redis_errors

from service import i18n
from service.api.problems import type_url
from service.appkeys import METRICS, SETTINGS
from service.errors import (
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    Unavailable,
    ValidationFailed,
)

log = logging.getLogger("service.access")
errors_log = logging.getLogger("service.errors")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PROBLEM: Final = "application/problem+json"
REQUEST_ID: Final = web.RequestKey("request_id", str)
#: Request ids made here: unique per process (a random prefix and a counter), without a system call each.
_ID_PREFIX: Final = secrets.token_hex(4)
_ID_COUNTER: Final = itertools.count(1)
#: Redis failures a client can do nothing about but retry: the service answers 503 with Retry-After.
REDIS_UNAVAILABLE: Final = (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError,
                            redis_errors.ReadOnlyError, redis_errors.ClusterDownError, redis_errors.TryAgainError,
                            redis_errors.MasterDownError, redis_errors.ClusterError)


def problem(request: web.Request, error: ServiceError) -> web.Response:
    lang = i18n.negotiate(request.headers.get("Accept-Language"))
    body: dict[str, Any] = {
        "type": type_url(request, error.code),
        "title": i18n.title(error.code, lang),
        "status": error.status,
        "code": error.code,
        "detail": i18n.detail(error.code, error.template, error.params, lang),
    }
    if error.fields:
        body["errors"] = [
            {"field": f.field, "code": f.code,
             "message": i18n.field_message(f.field, f.code, dict(f.params), lang)}
            for f in error.fields]
        if isinstance(error, ValidationFailed) and error.template in (None, ValidationFailed.FIELDS_DETAIL):
            body["detail"] = i18n.fields_detail([(e["field"], e["message"]) for e in body["errors"]], lang)
    body.update(error.extra)
    headers: dict[str, str] = {"Content-Language": lang}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return web.Response(body=orjson.dumps(body), status=error.status, content_type=PROBLEM, headers=headers)


def _from_http(exc: web.HTTPException) -> ServiceError:
    if exc.status == 404:
        return NotFound("no such resource")
    if exc.status == 405:
        return MethodNotAllowed("this method is not allowed here")
    if exc.status == 413:
        return PayloadTooLarge("the body is too large")
    generic = ServiceError(exc.reason)
    generic.status = exc.status  # type: ignore[misc]
    return generic


def _redis_error(exc: redis_errors.RedisError) -> ServiceError | None:
    if isinstance(exc, REDIS_UNAVAILABLE):
        return Unavailable("the database is unreachable; nothing was saved", retry_after=2)
    # Inside a Lua script the reply reads "Error running script ...: -NOREPLICAS ...", so look anywhere in it.
    if isinstance(exc, redis_errors.ResponseError) and any(
            word in str(exc) for word in ("OOM command", "MISCONF", "NOREPLICAS", "READONLY")):
        return Unavailable("the database refuses writes; nothing was saved", retry_after=5)
    return None


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: request id, access log, metrics, and the catch-all for anything unexpected."""
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if 0 < len(incoming) <= 128 and incoming.isascii() and incoming.isprintable() \
        else f"{_ID_PREFIX}{next(_ID_COUNTER):x}"
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException:
        raise
    except Exception:  # the catch-all: log with the traceback, tell the client nothing about it
        errors_log.exception("unhandled error", extra={"request_id": request_id})
        response = problem(request, InternalError("an unexpected error occurred; it has been logged"))
    elapsed = time.perf_counter() - started
    response.headers["X-Request-ID"] = request_id
    resource = request.match_info.route.resource  # None for a 404 or 405 (a resource's truth is its length)
    route = resource.canonical if resource is not None else "unmatched"
    request.app[METRICS].observe_request(request.method, route, response.status, elapsed)
    if log.isEnabledFor(logging.INFO):
        log.info("request", extra={"request_id": request_id, "method": request.method, "route": route,
                                   "status": response.status, "ms": round(elapsed * 1000, 2)})
    return response


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ServiceError as exc:
        return problem(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problem(request, _from_http(exc))
        if "Allow" in exc.headers:  # a 405 names the methods the resource has (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except RuntimeError as exc:
        if "unable to perform operation on" not in str(exc):  # a Redis connection reset under uvloop
            raise
        request.app[METRICS].redis_errors.labels("ConnectionReset").inc()
        return problem(request, Unavailable("the database connection was reset; nothing was saved", retry_after=1))
    except redis_errors.RedisError as exc:
        mapped = _redis_error(exc)
        if mapped is None:
            raise
        request.app[METRICS].redis_errors.labels(type(exc).__name__).inc()
        errors_log.warning("redis unavailable: %s", exc, extra={"request_id": request.get(REQUEST_ID)})
        return problem(request, mapped)


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Exact origins from COMMENTS_ALLOWED_ORIGINS, for the public routes; never with credentials."""
    origin = request.headers.get("Origin")
    allowed = origin is not None and origin in request.app[SETTINGS].allowed_origins
    public = not request.path.startswith(("/v1/moderation", "/v1/feed", "/v1/webhooks", "/v1/tokens"))
    if request.method == "OPTIONS" and origin and request.headers.get("Access-Control-Request-Method"):
        response: web.StreamResponse = web.Response(status=204)
        if allowed and public:
            response.headers.update({
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": "GET, POST",
                "Access-Control-Allow-Headers": "Content-Type, Accept-Language, Authorization, Idempotency-Key",
                "Access-Control-Max-Age": "600",
            })
        response.headers["Vary"] = "Origin"
        return response
    response = await handler(request)
    if allowed and public:
        response.headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
        response.headers["Access-Control-Expose-Headers"] = "ETag, Retry-After, X-Request-ID"
    if public:
        response.headers["Vary"] = "Origin" if "Vary" not in response.headers else \
            response.headers["Vary"] + ", Origin"
    return response


#: For our own HTML pages (the demo article, the problem pages). The demo page's newspaper CSS is an inline
#: <style>, hence 'unsafe-inline' for styles only; scripts come from this origin alone, and nothing may frame
#: a page. A handler that sets its own policy keeps it.
HTML_CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                   "media-src 'self'; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
                   "frame-ancestors 'none'")


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every response the app sends, errors raised past the middlewares included, is
    declared as the type it says (nosniff); HTML gets a Content-Security-Policy."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        response.headers.setdefault("Content-Security-Policy", HTML_CSP)
