"""Routes for moderators: the queue, claims, decisions, retraction, history, stats, open/close articles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from aiohttp import web

from service.api.auth import require_role
from service.api.common import MAX_BODY_BYTES, int_query, json_response, read_json
from service.api.docs import Param, operation
from service.appkeys import METRICS, MODERATION
from service.errors import NotFound, ValidationFailed
from service.models import ARTICLE_ID_PATTERN, ARTICLE_ID_RE, COMMENT_ID_PATTERN, COMMENT_ID_RE
from service.moderation import (
    BULK_MAX,
    QUEUE_CURSOR_PATTERN,
    ArticleState,
    BulkRequest,
    BulkResult,
    ClaimRequest,
    ClaimResult,
    CommentWithHistory,
    DecisionRequest,
    ModeratorComment,
    QueuePage,
    RetractRequest,
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


def _comment_id(request: web.Request) -> str:
    comment_id = request.match_info["comment_id"]
    if not COMMENT_ID_RE.fullmatch(comment_id):
        raise NotFound("no such comment")
    return comment_id


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
    article_id = request.query.get("article_id")
    if article_id is not None and not ARTICLE_ID_RE.fullmatch(article_id):
        raise ValidationFailed("article_id has the wrong format")
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
    comment_id = _comment_id(request)
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
    comment_id = _comment_id(request)
    body = await read_json(request, RetractRequest)
    record = await request.app[MODERATION].retract(who, comment_id, body.reason)
    request.app[METRICS].decisions.labels("retract").inc()
    return json_response(record)


@operation(summary="A comment with its full history", tag="moderation", role="moderator",
           responses={200: CommentWithHistory}, params=(COMMENT,), errors=(*AUTH_ERRORS, 404))
async def get_comment(request: web.Request) -> web.Response:
    await require_role(request, Role.MODERATOR)
    return json_response(await request.app[MODERATION].get(_comment_id(request)))


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
    article_id = request.match_info["article_id"]
    if not ARTICLE_ID_RE.fullmatch(article_id):
        raise NotFound("no such article")
    return json_response(await request.app[MODERATION].set_open(article_id, is_open))


@operation(summary="Close commenting on an article", tag="moderation", role="moderator",
           responses={200: ArticleState}, params=(ARTICLE,), errors=(*AUTH_ERRORS, 404))
async def close_article(request: web.Request) -> web.Response:
    return await _set_open(request, False)


@operation(summary="Reopen commenting on an article", tag="moderation", role="moderator",
           responses={200: ArticleState}, params=(ARTICLE,), errors=(*AUTH_ERRORS, 404))
async def open_article(request: web.Request) -> web.Response:
    return await _set_open(request, True)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/moderation/queue", queue)
    app.router.add_post("/v1/moderation/claims", claim)
    app.router.add_post("/v1/moderation/decisions", bulk)
    app.router.add_get("/v1/moderation/stats", stats)
    app.router.add_get("/v1/moderation/comments/{comment_id}", get_comment)
    app.router.add_post("/v1/moderation/comments/{comment_id}/decision", decide)
    app.router.add_post("/v1/moderation/comments/{comment_id}/retract", retract)
    app.router.add_post("/v1/moderation/articles/{article_id}/close", close_article)
    app.router.add_post("/v1/moderation/articles/{article_id}/open", open_article)
