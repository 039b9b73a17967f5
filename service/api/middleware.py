"""The one place errors become HTTP: domain errors and Redis failures render as RFC 9457 problem documents
(`application/problem+json`) with a stable `code`, in the client's language; anything unexpected becomes a
generic 500 that leaks nothing. Also: request ids, one JSON log line per request, metrics, and CORS.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any, Final, TypeVar

import orjson
from aiohttp import web

from service import i18n
from service.api.problems import type_url
from service.appkeys import METRICS, SETTINGS
from service.connections import REFUSES_WRITES, UNREACHABLE, ConnectionReset
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


def problem(request: web.Request, error: ServiceError, *, status: int | None = None) -> web.Response:
    """`error` as a problem document; `status` overrides the class's (an HTTP error without a class of its own)."""
    status = error.status if status is None else status
    lang = i18n.negotiate(request.headers.get("Accept-Language"))
    body: dict[str, Any] = {
        "type": type_url(request, error.code),
        "title": i18n.title(error.code, lang),
        "status": status,
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
    return web.Response(body=orjson.dumps(body), status=status, content_type=PROBLEM, headers=headers)


# -- exceptions to problems, by type ------------------------------------------------------------------------
# Starlette's lookup: the handler registered for the nearest class in the exception's MRO. A handler answers
# None to let the exception go on (a 3xx redirect). Redis's failures arrive typed (service.connections).

_E = TypeVar("_E", bound=Exception)
_ExceptionHandler = Callable[[web.Request, _E], web.StreamResponse | None]
_HANDLERS: dict[type[Exception], _ExceptionHandler[Any]] = {}


def _handles(*types: type[_E]) -> Callable[[_ExceptionHandler[_E]], _ExceptionHandler[_E]]:
    def register(handler: _ExceptionHandler[_E]) -> _ExceptionHandler[_E]:
        for exception_type in types:
            _HANDLERS[exception_type] = handler
        return handler
    return register


def _handler_of(exc: Exception) -> _ExceptionHandler[Any] | None:
    for cls in type(exc).__mro__:
        if (handler := _HANDLERS.get(cls)) is not None:
            return handler
    return None


@_handles(ServiceError)
def _service_error(request: web.Request, exc: ServiceError) -> web.Response:
    return problem(request, exc)


#: aiohttp's own errors that have a code of their own; any other becomes a plain `error` with its status.
_HTTP_ERRORS: Final[dict[int, ServiceError]] = {
    404: NotFound("no such resource"),
    405: MethodNotAllowed("this method is not allowed here"),
    413: PayloadTooLarge("the body is too large"),
}


@_handles(web.HTTPException)
def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response | None:
    if exc.status < 400:
        return None  # not an error: `serve` lets it go on
    known = _HTTP_ERRORS.get(exc.status)
    response = problem(request, known) if known is not None else \
        problem(request, ServiceError(exc.reason), status=exc.status)
    if "Allow" in exc.headers:  # a 405 names the methods the resource has (RFC 9110)
        response.headers["Allow"] = exc.headers["Allow"]
    return response


@_handles(ConnectionReset)
def _connection_reset(request: web.Request, _exc: ConnectionReset) -> web.Response:
    request.app[METRICS].redis_errors.labels("ConnectionReset").inc()
    return problem(request, Unavailable("the database connection was reset; nothing was saved", retry_after=1))


def _storage_failure(request: web.Request, exc: Exception, error: Unavailable) -> web.Response:
    # Metrics name redis-py's class (service.connections only refines some of them).
    kind = next(cls.__name__ for cls in type(exc).__mro__ if cls.__module__.startswith("redis."))
    request.app[METRICS].redis_errors.labels(kind).inc()
    errors_log.warning("redis unavailable: %s", exc, extra={"request_id": request.get(REQUEST_ID)})
    return problem(request, error)


@_handles(*UNREACHABLE)
def _redis_unreachable(request: web.Request, exc: Exception) -> web.Response:
    return _storage_failure(request, exc, Unavailable("the database is unreachable; nothing was saved",
                                                      retry_after=2))


@_handles(*REFUSES_WRITES)
def _redis_refuses_writes(request: web.Request, exc: Exception) -> web.Response:
    return _storage_failure(request, exc, Unavailable("the database refuses writes; nothing was saved",
                                                      retry_after=5))


#: Path prefixes of the routes that are not for readers' browsers: no CORS, and no `Vary: Origin`.
_PRIVATE_PREFIXES: Final = ("/v1/moderation", "/v1/feed", "/v1/webhooks", "/v1/tokens", "/v1/accounts", "/v1/session",
                            "/moderation")
_PREFLIGHT_HEADERS: Final = {
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Allow-Headers": "Content-Type, Accept-Language, Authorization, Idempotency-Key",
    "Access-Control-Max-Age": "600",
}
_EXPOSED: Final = "ETag, Retry-After, X-Request-ID"


@web.middleware
async def serve(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one middleware: request id, CORS, problems, access log and metrics.

    One middleware rather than a chain of three (`observe`, `cors`, `problems` before): each layer is one more
    coroutine per request, and on the public GETs the chain cost more than the handler (docs/benchmarks.md,
    "Figures behind the code's reasons"). What each did, in the order they nested, is below.
    """
    headers = request.headers
    incoming = headers.get("X-Request-ID")
    request_id = incoming if incoming and len(incoming) <= 128 and incoming.isascii() and incoming.isprintable() \
        else f"{_ID_PREFIX}{next(_ID_COUNTER):x}"
    request[REQUEST_ID] = request_id
    started = perf_counter()
    origin = headers.get("Origin")
    public = not request.path.startswith(_PRIVATE_PREFIXES)
    allowed = public and bool(origin) and origin in request.app[SETTINGS].allowed_origins
    method = request.method
    if method == "OPTIONS" and origin and headers.get("Access-Control-Request-Method"):
        # A CORS preflight: answered here, the handler never runs.
        response: web.StreamResponse = web.Response(status=204)
        if allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers.extend(_PREFLIGHT_HEADERS)
        response.headers["Vary"] = "Origin"
        allowed = public = False  # said already
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:  # a redirect goes on as aiohttp's own response, with our headers
                _finish(request, exc, request_id, method, started, public, allowed, origin)
                raise
            response = _problem_of(request, exc, request_id)
        except Exception as exc:
            response = _problem_of(request, exc, request_id)
    _finish(request, response, request_id, method, started, public, allowed, origin)
    return response


def _problem_of(request: web.Request, exc: Exception, request_id: str) -> web.StreamResponse:
    """What `problems` did (the handler of the nearest class in the exception's MRO), and the catch-all for
    anything unexpected: logged with its traceback, the client told nothing about it."""
    exception_handler = _handler_of(exc)
    response = exception_handler(request, exc) if exception_handler is not None else None
    if response is None:
        errors_log.exception("unhandled error", extra={"request_id": request_id})
        response = problem(request, InternalError("an unexpected error occurred; it has been logged"))
    return response


def _finish(request: web.Request, response: web.StreamResponse, request_id: str, method: str, started: float,
            public: bool, allowed: bool, origin: str | None) -> None:
    elapsed = perf_counter() - started
    response_headers = response.headers
    response_headers["X-Request-ID"] = request_id
    if public:
        if allowed and origin:
            response_headers["Access-Control-Allow-Origin"] = origin
            response_headers["Access-Control-Expose-Headers"] = _EXPOSED
        vary = response_headers.get("Vary")
        response_headers["Vary"] = "Origin" if vary is None else vary + ", Origin"
    resource = request.match_info.route.resource  # None for a 404 or 405 (a resource's truth is its length)
    route = resource.canonical if resource is not None else "unmatched"
    status = response.status
    request.app[METRICS].observe_request(method, route, status, elapsed)
    if log.isEnabledFor(logging.INFO):
        log.info("request", extra={"request_id": request_id, "method": method, "route": route,
                                   "status": status, "ms": round(elapsed * 1000, 2)})


#: For our own HTML pages (the demo article, the problem pages). The demo page's newspaper CSS is an inline
#: <style>, hence 'unsafe-inline' for styles only; scripts come from this origin alone, and nothing may frame
#: a page. A handler that sets its own policy keeps it.
HTML_CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                   "media-src 'self'; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
                   "frame-ancestors 'none'")


#: For the moderation console's pages (`api.console`, the invitation page): nothing inline at all, no eval.
CONSOLE_CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                      "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: every response the app sends, errors raised past the middlewares included, is
    declared as the type it says (nosniff); HTML gets a Content-Security-Policy, the console's the strict one."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    # `response.content_type` parses the header: looked at only when it can be HTML at all.
    declared = headers.get("Content-Type")
    if declared is not None and "text/html" in declared.lower() and response.content_type == "text/html":
        strict = request.path == "/moderation" or request.path.startswith("/moderation/")
        headers.setdefault("Content-Security-Policy", CONSOLE_CSP if strict else HTML_CSP)
