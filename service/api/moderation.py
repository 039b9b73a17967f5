"""Routes for moderators: the queue, claims (renewal, release), decisions, undo, retraction, lists by state,
search, an author's record, history, stats, open/close articles."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Final

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from service import search, text
from service.api.auth import require_role
from service.api.common import (
    MAX_BODY_BYTES,
    int_query,
    json_response,
    path_article_id,
    path_comment_id,
    read_json,
)
from service.api.docs import Param, operation
from service.appkeys import LIVE, METRICS, MODERATION
from service.errors import FieldError, ValidationFailed
from service.live import HEARTBEAT_SECONDS, MAX_LISTENERS
from service.models import ARTICLE_ID_PATTERN, ARTICLE_ID_RE, COMMENT_ID_PATTERN, COMMENT_ID_RE, Email
from service.moderation import (
    BULK_MAX,
    DATE_PATTERN,
    DATE_RE,
    IP_HASH_PATTERN,
    IP_HASH_RE,
    QUEUE_CURSOR_PATTERN,
    QUEUE_CURSOR_RE,
    SEARCH_CURSOR_PATTERN,
    UNDO_WINDOW_SECONDS,
    ArticleState,
    AuthorRecord,
    BulkRequest,
    BulkResult,
    ClaimRequest,
    ClaimResult,
    CommentWithHistory,
    DecisionRequest,
    LeaseRequest,
    LeaseResult,
    ModeratorComment,
    QueueOverview,
    QueuePage,
    ReleaseRequest,
    RetractRequest,
    SearchPage,
    SearchQuery,
    State,
    StatePage,
    Stats,
)
from service.tokens import Role

COMMENT: Final = Param("comment_id", "path", {"type": "string", "pattern": COMMENT_ID_PATTERN}, True,
                       description="The comment's id.")
ARTICLE: Final = Param("article_id", "path", {"type": "string", "pattern": ARTICLE_ID_PATTERN}, True,
                       description="The article's id, as the newspaper names it.")
AUTH_ERRORS: Final = (400, 401, 403, 429, 503)
#: A bulk decision may name `BULK_MAX` ids, so its body may be larger than others': room for that many ids of
#: the longest form (26 characters, quotes and a comma, and a pretty-printer's newline and indent: 40 bytes
#: each) on top of the usual limit for the rest (action, a reason of up to 500 characters). 56,384 bytes.
BULK_BODY_MAX_BYTES: Final = MAX_BODY_BYTES + BULK_MAX * 40


@operation(summary="Pending comments, oldest first", tag="moderation", role="moderator",
           responses={200: QueuePage},
           params=(Param("article_id", "query", {"type": "string", "pattern": ARTICLE_ID_PATTERN},
                         description="Only comments of this article; the whole queue when absent."),
                   Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                         description="The most comments to return."),
                   Param("cursor", "query", {"type": "string", "pattern": QUEUE_CURSOR_PATTERN},
                         description="The `next_cursor` of the previous page; the oldest pending comment first "
                                     "when absent.")),
           errors=(*AUTH_ERRORS, 422))
async def queue(request: web.Request) -> web.Response:
    await require_role(request, Role.MODERATOR)
    article_id = _article_query(request)
    page = await request.app[MODERATION].queue(article_id, int_query(request, "limit", 50, 1, 200),
                                               request.query.get("cursor"))
    return json_response(page)


@operation(summary="Lease pending comments to me", tag="moderation", role="moderator", request=ClaimRequest,
           responses={200: ClaimResult}, errors=(*AUTH_ERRORS, 413, 415, 422))
async def claim(request: web.Request) -> web.Response:
    who = await require_role(request, Role.MODERATOR)
    body = await read_json(request, ClaimRequest)
    return json_response(await request.app[MODERATION].claim(who, body))


@operation(summary="Approve, reject or mark as spam", tag="moderation", role="moderator", request=DecisionRequest,
           responses={200: ModeratorComment}, params=(COMMENT,), errors=(*AUTH_ERRORS, 404, 409, 413, 415, 422))
async def decide(request: web.Request) -> web.Response:
    who = await require_role(request, Role.MODERATOR)
    comment_id = path_comment_id(request)
    body = await read_json(request, DecisionRequest)
    record = await request.app[MODERATION].decide(who, comment_id, body.action, body.reason, body.version)
    metrics = request.app[METRICS]
    metrics.decisions.labels(body.action).inc()
    metrics.time_to_decision.observe(_seconds_waiting(record))
    return json_response(record)


def _seconds_waiting(record: ModeratorComment) -> float:
    decided = datetime.fromisoformat(record.decided_at) if record.decided_at else datetime.now(UTC)
    return max(0.0, (decided - datetime.fromisoformat(record.created_at)).total_seconds())


@operation(summary="Decide many comments: by ids or by a filter", tag="moderation", role="moderator",
           request=BulkRequest, responses={200: BulkResult}, errors=(*AUTH_ERRORS, 413, 415, 422))
async def bulk(request: web.Request) -> web.Response:
    who = await require_role(request, Role.MODERATOR)
    body = await read_json(request, BulkRequest, max_bytes=BULK_BODY_MAX_BYTES)
    if body.ids is not None and not all(COMMENT_ID_RE.fullmatch(i) for i in body.ids):
        raise ValidationFailed("an id has the wrong format")
    result = await request.app[MODERATION].bulk(who, body)
    request.app[METRICS].decisions.labels(body.action).inc(sum(o.status == 200 for o in result.outcomes))
    return json_response(result)


@operation(summary="Unpublish an approved comment", tag="moderation", role="moderator", request=RetractRequest,
           responses={200: ModeratorComment}, params=(COMMENT,), errors=(*AUTH_ERRORS, 404, 409, 413, 415, 422))
async def retract(request: web.Request) -> web.Response:
    who = await require_role(request, Role.MODERATOR)
    comment_id = path_comment_id(request)
    body = await read_json(request, RetractRequest)
    record = await request.app[MODERATION].retract(who, comment_id, body.reason)
    request.app[METRICS].decisions.labels("retract").inc()
    return json_response(record)


@operation(summary="A comment with its full history", tag="moderation", role="moderator",
           responses={200: CommentWithHistory}, params=(COMMENT,), errors=(*AUTH_ERRORS, 404))
async def get_comment(request: web.Request) -> web.Response:
    await require_role(request, Role.MODERATOR)
    return json_response(await request.app[MODERATION].get(path_comment_id(request)))


@operation(summary="Queue depth, oldest pending, decisions per hour and per moderator", tag="moderation",
           role="moderator", responses={200: Stats}, errors=AUTH_ERRORS)
async def stats(request: web.Request) -> web.Response:
    await require_role(request, Role.MODERATOR)
    result = await request.app[MODERATION].stats()
    metrics = request.app[METRICS]
    metrics.queue_depth.set(result.queue_depth)
    metrics.oldest_pending.set(result.oldest_pending_age_seconds or 0)
    return json_response(result)


async def _set_open(request: web.Request, is_open: bool) -> web.Response:
    await require_role(request, Role.MODERATOR)
    return json_response(await request.app[MODERATION].set_open(path_article_id(request), is_open))


@operation(summary="Close commenting on an article", tag="moderation", role="moderator",
           responses={200: ArticleState}, params=(ARTICLE,), errors=(*AUTH_ERRORS, 404))
async def close_article(request: web.Request) -> web.Response:
    return await _set_open(request, False)


@operation(summary="Reopen commenting on an article", tag="moderation", role="moderator",
           responses={200: ArticleState}, params=(ARTICLE,), errors=(*AUTH_ERRORS, 404))
async def open_article(request: web.Request) -> web.Response:
    return await _set_open(request, True)


def _invalid(detail: str, name: str, **params: str | int) -> ValidationFailed:
    """A query parameter refused: `detail` is the template, `name` the parameter (also `{name}` in it)."""
    return ValidationFailed(detail, params={"name": name, **params}, fields=[FieldError(field=name, code="invalid")])


def _article_query(request: web.Request) -> str | None:
    article_id = request.query.get("article_id")
    if article_id is not None and not ARTICLE_ID_RE.fullmatch(article_id):
        raise ValidationFailed("article_id has the wrong format")
    return article_id


def _cursor_query(request: web.Request) -> str | None:
    cursor = request.query.get("cursor")
    if cursor is not None and not QUEUE_CURSOR_RE.fullmatch(cursor):
        raise ValidationFailed("the cursor is not one this service gave out")
    return cursor


def _state_query(request: web.Request, *, required: bool) -> State | None:
    raw = request.query.get("state")
    if raw is None and not required:
        return None
    try:
        return State(raw or "")
    except ValueError:
        raise _invalid("state must be pending, approved, rejected, spam or retracted", "state") from None


def _ids(ids: list[str]) -> None:
    if not all(COMMENT_ID_RE.fullmatch(i) for i in ids):
        raise ValidationFailed("an id has the wrong format")


STATE: Final = Param("state", "query", {"type": "string", "enum": [s.value for s in State]},
                     description="Only comments in this state.")
CURSOR: Final = Param("cursor", "query", {"type": "string", "pattern": QUEUE_CURSOR_PATTERN},
                      description="The `next_cursor` of the previous page; the first page when absent.")


def _limit(default: int, high: int) -> Param:
    return Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": high, "default": default},
                 description="The most comments to return.")


@operation(summary="Comments in one state, with cursors", tag="moderation", role="moderator",
           responses={200: StatePage},
           params=(Param("state", "query", {"type": "string", "enum": [s.value for s in State]}, True,
                         description="pending (oldest submitted first), or approved, rejected, spam, retracted "
                                     "(newest decided first)."),
                   Param("article_id", "query", {"type": "string", "pattern": ARTICLE_ID_PATTERN},
                         description="Only comments of this article; every article when absent."),
                   _limit(50, 200), CURSOR),
           errors=(*AUTH_ERRORS, 422))
async def by_state(request: web.Request) -> web.Response:
    await require_role(request, Role.MODERATOR)
    state = _state_query(request, required=True)
    assert state is not None
    page = await request.app[MODERATION].by_state(state, _article_query(request),
                                                  int_query(request, "limit", 50, 1, 200), _cursor_query(request))
    return json_response(page)


def _instant(request: web.Request, name: str, *, end_of_day: bool) -> int | None:
    """A query date (`2024-05-01`) or instant (`2024-05-01T08:00:00Z`; no zone means UTC) in ms; a date alone
    as `until` takes in the whole day."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if not DATE_RE.fullmatch(raw):
        raise _invalid("{name} must be a date or an instant in ISO 8601", name)
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise _invalid("{name} must be a date or an instant in ISO 8601", name) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if end_of_day and "T" not in raw:
        when += timedelta(days=1, milliseconds=-1)
    return int(when.timestamp() * 1000)


_EMAIL: Final = TypeAdapter(Email)


def _search_query(request: web.Request) -> SearchQuery:
    query = request.query
    for name, high in (("q", 200), ("name", 80), ("email", 320)):
        raw = query.get(name)
        if raw is not None and (not 0 < len(raw) <= high or text.has_forbidden_characters(raw, allow_newlines=False)):
            raise _invalid("{name} must be 1 to {high} characters of text", name, high=high)
    words = search.query_words(query.get("q", ""))
    if "q" in query and not words:
        raise _invalid("q must hold at least one word", "q")
    email: str | None = query.get("email")
    if email is not None:
        try:
            email = _EMAIL.validate_python(email)
        except ValidationError:
            raise _invalid("email is not a valid address", "email") from None
    ip_hash = query.get("ip_hash")
    if ip_hash is not None and not IP_HASH_RE.fullmatch(ip_hash):
        raise _invalid("ip_hash has the wrong format", "ip_hash")
    folded_name = text.fold(text.normalise(query["name"])) if "name" in query else None
    return SearchQuery(words=tuple(words), name=folded_name or None, email=email, ip_hash=ip_hash,
                       article_id=_article_query(request), state=_state_query(request, required=False),
                       since_ms=_instant(request, "since", end_of_day=False),
                       until_ms=_instant(request, "until", end_of_day=True))


@operation(summary="Search every comment: words, name, email, address, article, state, dates", tag="moderation",
           role="moderator", responses={200: SearchPage},
           params=(Param("q", "query", {"type": "string", "minLength": 1, "maxLength": 200},
                         description="Words that must all be in the name, title or body, as whole words; case "
                                     "and Vietnamese diacritics do not matter (`duong` finds `đường`)."),
                   Param("name", "query", {"type": "string", "minLength": 1, "maxLength": 80},
                         description="Part of the author's name (case and diacritics do not matter)."),
                   Param("email", "query", {"type": "string", "minLength": 1, "maxLength": 320},
                         description="The author's email, exactly (case does not matter); looked up by its keyed "
                                     "digest."),
                   Param("ip_hash", "query", {"type": "string", "pattern": IP_HASH_PATTERN},
                         description="The `ip_hash` of a comment: comments from the same address."),
                   Param("article_id", "query", {"type": "string", "pattern": ARTICLE_ID_PATTERN},
                         description="Only comments of this article."),
                   STATE,
                   Param("since", "query", {"type": "string", "pattern": DATE_PATTERN},
                         description="Only comments submitted at or after this date or instant (ISO 8601, UTC "
                                     "when no zone is given)."),
                   Param("until", "query", {"type": "string", "pattern": DATE_PATTERN},
                         description="Only comments submitted at or before this instant, or on or before this "
                                     "date."),
                   _limit(20, 100),
                   Param("cursor", "query", {"type": "string", "pattern": SEARCH_CURSOR_PATTERN},
                         description="The `next_cursor` of the previous page (with the same criteria); the first "
                                     "page when absent.")),
           errors=(*AUTH_ERRORS, 422))
async def search_comments(request: web.Request) -> web.Response:
    await require_role(request, Role.MODERATOR)
    query = _search_query(request)
    page = await request.app[MODERATION].search(query, int_query(request, "limit", 20, 1, 100),
                                                request.query.get("cursor"))
    return json_response(page)


@operation(summary="The author's record: earlier comments from the same email or address", tag="moderation",
           role="moderator", responses={200: AuthorRecord},
           params=(COMMENT, _limit(20, 100)), errors=(*AUTH_ERRORS, 404, 422))
async def author(request: web.Request) -> web.Response:
    await require_role(request, Role.MODERATOR)
    comment_id = path_comment_id(request)
    record = await request.app[MODERATION].author(comment_id, int_query(request, "limit", 20, 1, 100))
    return json_response(record)


@operation(summary="Renew my leases on comments I claimed", tag="moderation", role="moderator",
           request=LeaseRequest, responses={200: LeaseResult}, errors=(*AUTH_ERRORS, 413, 415, 422))
async def renew(request: web.Request) -> web.Response:
    who = await require_role(request, Role.MODERATOR)
    body = await read_json(request, LeaseRequest)
    _ids(body.ids)
    return json_response(await request.app[MODERATION].renew(who, body))


@operation(summary="Give back comments I claimed", tag="moderation", role="moderator",
           request=ReleaseRequest, responses={200: LeaseResult}, errors=(*AUTH_ERRORS, 413, 415, 422))
async def release(request: web.Request) -> web.Response:
    who = await require_role(request, Role.MODERATOR)
    body = await read_json(request, ReleaseRequest)
    _ids(body.ids)
    return json_response(await request.app[MODERATION].release(who, body))


@operation(summary=f"Undo my last decision on a comment (within {UNDO_WINDOW_SECONDS} s)", tag="moderation",
           role="moderator", responses={200: ModeratorComment}, params=(COMMENT,),
           errors=(*AUTH_ERRORS, 404, 409))
async def undo(request: web.Request) -> web.Response:
    who = await require_role(request, Role.MODERATOR)
    record = await request.app[MODERATION].undo(who, path_comment_id(request))
    request.app[METRICS].decisions.labels("undo").inc()
    return json_response(record)


#: How long a browser waits before it reconnects a dropped event stream (the `retry:` field), in ms.
EVENTS_RETRY_MS: Final = 5000


@operation(summary="Live counts: an event whenever the queue changes (server-sent events)", tag="moderation",
           role="moderator", responses={200: QueueOverview}, media={200: "text/event-stream"},
           errors=AUTH_ERRORS, description=(
               "A `text/event-stream` (server-sent events; the session cookie or a bearer token). The first "
               "event comes at once; another follows whenever the queue changes: a submission, a decision, an "
               "undo, a claim or a release (within about a second; changes close together may share one "
               "event). Each event is named `counts` and its `data` is one `QueueOverview` as JSON: queue depth, "
               "how many are claimed, the oldest pending comment's age, the totals per decided state. A comment "
               f"line (`: heartbeat`) keeps an idle stream open every {HEARTBEAT_SECONDS:.0f} s. Each server "
               f"process serves at most {MAX_LISTENERS} streams: one more is refused with 503 `listeners_full` "
               "(retry after Retry-After, or read `GET /v1/moderation/stats` meanwhile)."))
async def events(request: web.Request) -> web.StreamResponse:
    await require_role(request, Role.MODERATOR)
    stream = request.app[LIVE].events()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    try:
        first = await anext(stream)  # refused (503) before anything is sent when the worker is full
        assert first is not None  # the stream's first item is the counts
        await response.prepare(request)
        await response.write(f"retry: {EVENTS_RETRY_MS}\n\n".encode() + _event(first))
        async for overview in stream:
            await response.write(b": heartbeat\n\n" if overview is None else _event(overview))
    except (ConnectionResetError, OSError):
        pass  # the client went away: the stream's end gives its place back
    finally:
        await stream.aclose()
    with contextlib.suppress(ConnectionResetError, OSError):
        await response.write_eof()
    return response


def _event(overview: QueueOverview) -> bytes:
    return b"event: counts\ndata: " + overview.model_dump_json().encode() + b"\n\n"


async def _end_event_streams(app: web.Application) -> None:
    """At shutdown: open event streams end, so the server need not wait out its shutdown timeout."""
    app[LIVE].close()


def setup_routes(app: web.Application) -> None:
    app.on_shutdown.append(_end_event_streams)
    app.router.add_get("/v1/moderation/events", events)
    app.router.add_get("/v1/moderation/queue", queue)
    app.router.add_post("/v1/moderation/claims", claim)
    app.router.add_post("/v1/moderation/claims/renew", renew)
    app.router.add_post("/v1/moderation/claims/release", release)
    app.router.add_get("/v1/moderation/comments", by_state)
    app.router.add_get("/v1/moderation/search", search_comments)
    app.router.add_post("/v1/moderation/decisions", bulk)
    app.router.add_get("/v1/moderation/stats", stats)
    app.router.add_get("/v1/moderation/comments/{comment_id}", get_comment)
    app.router.add_post("/v1/moderation/comments/{comment_id}/decision", decide)
    app.router.add_post("/v1/moderation/comments/{comment_id}/retract", retract)
    app.router.add_post("/v1/moderation/comments/{comment_id}/undo", undo)
    app.router.add_get("/v1/moderation/comments/{comment_id}/author", author)
    app.router.add_post("/v1/moderation/articles/{article_id}/close", close_article)
    app.router.add_post("/v1/moderation/articles/{article_id}/open", open_article)
