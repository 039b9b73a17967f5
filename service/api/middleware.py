"""The one place errors become HTTP: domain errors and Redis failures render as RFC 9457 problem documents
(`application/problem+json`) with a stable `code`, in the client's language; anything unexpected becomes a
generic 500 that leaks nothing. Also: request ids, one JSON log line per request, metrics, CORS, and the security
headers of every response.

Not a middleware: `install` wraps each route's handler in `serve` (a catch-all route answers 404 and 405) and makes
the app's requests `ServiceRequest`s, whose prepare hook sets the security headers.
"""

from __future__ import annotations

import functools
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable, Collection
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
from service.metrics import Metrics

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


class ServiceRequest(web.Request):
    """The app's request (`install`): its `_prepare_hook`, which aiohttp awaits as every response is prepared,
    sets the security headers (`secure`) on every response the app sends, a stream prepared by its handler and
    an error raised past the routes' wrappers included; then runs the app's `on_response_prepare` signals, as
    aiohttp's does.

    Why not an `on_response_prepare` hook: the signal sends to a coroutine per response, about 1.5 µs a request
    (docs/benchmarks.md, "Figures behind the code's reasons"); aiohttp awaits this method either way.
    """

    __slots__ = ()

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        headers = response.headers
        # `secure`, inlined: the hook runs for every response (docs/benchmarks.md).
        if "X-Content-Type-Options" not in headers:
            headers["X-Content-Type-Options"] = "nosniff"
        declared = headers.get("Content-Type")
        if declared is not None and "text/html" in declared.lower():
            secure(self, response)
        match_info = self._match_info
        if match_info is not None:
            for app in match_info.apps:
                if app.on_response_prepare:
                    await app.on_response_prepare.send(self, response)


def install(app: web.Application) -> None:
    """Make the app's requests `ServiceRequest`s and wrap every route's handler in `serve` (after every route is
    registered), with a catch-all route last that answers what no route matches (404, 405) and CORS preflights.

    No middleware: a middleware makes aiohttp add two more layers per request (a cached chain of partials and
    its current-app middleware); the wrapper is one coroutine, and what it needs of its route and app (the
    label, public or not, the metrics, the allowed origins) is looked up once, here (docs/benchmarks.md)."""
    # `Application._make_request` takes the request class (pinned aiohttp; the tests of nosniff and CSP in
    # test_server_limits.py and test_widget_static.py fail without it).
    app._make_request = functools.partial(app._make_request, _cls=ServiceRequest)  # type: ignore[method-assign]
    router = app.router
    # `[\s\S]`, not `.`: a path may hold an encoded newline (%0A), which `.` does not match.
    catch_all = router.add_route("*", "/{unmatched_path:[\\s\\S]*}", _unmatched)
    metrics = app[METRICS]
    origins = app[SETTINGS].allowed_origins
    for route in router.routes():
        resource = route.resource
        if resource is None:  # pragma: no cover - every route of this app has its resource
            continue
        if route is catch_all:
            wrapped = _serving(route.handler, "unmatched", None, metrics, origins)
        else:
            canonical = resource.canonical
            wrapped = _serving(route.handler, canonical, not canonical.startswith(_PRIVATE_PREFIXES), metrics,
                               origins)
        route._handler = wrapped  # type: ignore[assignment]  # aiohttp's route keeps its handler here


async def _unmatched(request: web.Request) -> web.StreamResponse:
    """No route matched the path, or none has the method: 404 or 405 (with `Allow`), as aiohttp's router would
    say, worked out again here (only on these errors) from every other route."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource.canonical == _CATCH_ALL:
            continue
        match, methods = await resource.resolve(request)
        if match is not None:  # pragma: no cover - the router found it first
            allowed.add(request.method)
        allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


_CATCH_ALL: Final = "/{unmatched_path}"


def _serving(handler: Handler, route: str, public: bool | None, metrics: Metrics,
             origins: Collection[str]) -> Handler:
    """`handler` wrapped in `serve` for its route (`route`: the metrics' and log's label; `public`: readers'
    browsers may call it, so CORS and `Vary: Origin`; None: decided by the path, for the catch-all)."""
    observe = metrics.observe_request

    async def serve(request: web.Request) -> web.StreamResponse:
        """Request id, CORS, problems, access log and metrics: the one place errors become problem+json.

        One function, inlined, not a chain of layers or helpers: on the public GETs each call was a visible
        share of the service's cost over the bare app (docs/benchmarks.md, "Figures behind the code's reasons")."""
        started = perf_counter()
        headers = request.headers
        incoming = headers.get("X-Request-ID")
        request_id = incoming if incoming and len(incoming) <= 128 and incoming.isascii() and incoming.isprintable() \
            else f"{_ID_PREFIX}{next(_ID_COUNTER):x}"
        origin = headers.get("Origin")
        is_public = not request.path.startswith(_PRIVATE_PREFIXES) if public is None else public
        method = request.method
        label = route
        if origin is None:
            allowed = False
        else:
            allowed = is_public and bool(origin) and origin in origins
            if method == "OPTIONS" and origin and headers.get("Access-Control-Request-Method"):
                # A CORS preflight: answered here, the handler never runs.
                preflight = web.Response(status=204)
                if allowed:
                    preflight.headers["Access-Control-Allow-Origin"] = origin
                    preflight.headers.extend(_PREFLIGHT_HEADERS)
                preflight.headers["Vary"] = "Origin"
                preflight.headers["X-Request-ID"] = request_id
                label = "unmatched" if public is None else route
                observe(method, label, 204, perf_counter() - started)
                if log.isEnabledFor(logging.INFO):
                    _access(request_id, method, label, 204, started)
                return preflight
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # A redirect goes on as aiohttp's own response (raised again below), with our headers.
            response = exc if exc.status < 400 else _problem_of(request, exc, request_id)
        except Exception as exc:
            response = _problem_of(request, exc, request_id)
        response_headers = response.headers
        response_headers["X-Request-ID"] = request_id
        if is_public:
            if allowed:
                response_headers["Access-Control-Allow-Origin"] = origin  # type: ignore[assignment]
                response_headers["Access-Control-Expose-Headers"] = _EXPOSED
            vary = response_headers.get("Vary")
            response_headers["Vary"] = "Origin" if vary is None else vary + ", Origin"
        status = response.status
        observe(method, label, status, perf_counter() - started)
        if log.isEnabledFor(logging.INFO):  # cached by logging: no line is built when the level drops it
            _access(request_id, method, label, status, started)
        if isinstance(response, web.HTTPException):
            raise response
        return response

    functools.update_wrapper(serve, handler)  # the route's `@operation` metadata and docstring (openapi.py)
    return serve


def _access(request_id: str, method: str, route: str, status: int, started: float) -> None:
    """The request's access log line (the caller checks the level first)."""
    log.info("request", extra={"request_id": request_id, "method": method, "route": route, "status": status,
                               "ms": round((perf_counter() - started) * 1000, 2)})


def _problem_of(request: web.Request, exc: Exception, request_id: str) -> web.StreamResponse:
    """The handler of the nearest class in the exception's MRO, and the catch-all for anything unexpected:
    logged with its traceback, the client told nothing about it."""
    request[REQUEST_ID] = request_id  # for the handlers that log it; set on this path only, the others need none
    exception_handler = _handler_of(exc)
    response = exception_handler(request, exc) if exception_handler is not None else None
    if response is None:
        errors_log.exception("unhandled error", extra={"request_id": request_id})
        response = problem(request, InternalError("an unexpected error occurred; it has been logged"))
    return response


#: For our own HTML pages (the demo article, the problem pages). The demo page's newspaper CSS is an inline
#: <style>, hence 'unsafe-inline' for styles only; scripts come from this origin alone, and nothing may frame
#: a page. A handler that sets its own policy keeps it.
HTML_CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                   "media-src 'self'; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
                   "frame-ancestors 'none'")


#: For the moderation console's pages (`api.console`, the invitation page): nothing inline at all, no eval.
CONSOLE_CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                      "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def secure(request: web.Request, response: web.StreamResponse) -> None:
    """Every response the app sends (`ServiceRequest`) is declared as the type it says (nosniff); HTML gets a
    Content-Security-Policy, the console's the strict one. A handler that sets its own keeps it."""
    headers = response.headers
    if "X-Content-Type-Options" not in headers:
        headers["X-Content-Type-Options"] = "nosniff"
    # `response.content_type` parses the header: looked at only when it can be HTML at all.
    declared = headers.get("Content-Type")
    if declared is not None and "text/html" in declared.lower() and response.content_type == "text/html":
        path = request.path
        strict = path == "/moderation" or path.startswith("/moderation/")
        headers.setdefault("Content-Security-Policy", CONSOLE_CSP if strict else HTML_CSP)
