"""Routes of readers' reports: a reader reports a comment (public, from the widget); moderators read the
reported queue, keep or retract a reported comment, and see how long reports wait. One module for the concern,
as both audiences' routes are few and share its models (`service.reports`)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from service.api.auth import require_role
from service.api.clientinfo import client_ip_hash
from service.api.common import int_query, json_response, path_comment_id, read_json
from service.api.docs import Param, operation
from service.appkeys import METRICS, REPORTS
from service.errors import RateLimited
from service.models import COMMENT_ID_PATTERN
from service.reports import ReportAccepted, ReportDecision, ReportedQueue, ReportForm, ReportOutcome, ReportStats
from service.tokens import Role

COMMENT: Final = Param("comment_id", "path", {"type": "string", "pattern": COMMENT_ID_PATTERN}, True,
                       description="The comment's id.")
AUTH_ERRORS: Final = (400, 401, 403, 429, 503)


@operation(summary="Report an approved comment (limited per client: COMMENTS_RATE_LIMIT_REPORT)", tag="comments",
           request=ReportForm, responses={202: ReportAccepted}, params=(COMMENT,),
           errors=(400, 404, 413, 415, 422, 429, 503))
async def report(request: web.Request) -> web.Response:
    comment_id = path_comment_id(request)
    form = await read_json(request, ReportForm)
    metrics = request.app[METRICS]
    try:
        counted = await request.app[REPORTS].report(comment_id, form, client_ip_hash(request))
    except RateLimited:
        metrics.reports.labels("limited").inc()
        raise
    metrics.reports.labels("counted" if counted else "repeated").inc()
    return json_response(ReportAccepted(), status=202, headers={"Cache-Control": "no-store"})


@operation(summary="Reported comments: most reported first, then longest waiting", tag="moderation",
           role="moderator", responses={200: ReportedQueue},
           params=(Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                         description="The most comments to return."),),
           errors=(*AUTH_ERRORS, 422))
async def reported(request: web.Request) -> web.Response:
    await require_role(request, Role.MODERATOR)
    return json_response(await request.app[REPORTS].queue(int_query(request, "limit", 50, 1, 200)))


@operation(summary="Keep a reported comment (dismiss its reports) or retract it", tag="moderation",
           role="moderator", request=ReportDecision, responses={200: ReportOutcome}, params=(COMMENT,),
           errors=(*AUTH_ERRORS, 404, 409, 413, 415, 422))
async def resolve(request: web.Request) -> web.Response:
    who = await require_role(request, Role.MODERATOR)
    comment_id = path_comment_id(request)
    body = await read_json(request, ReportDecision)
    outcome = await request.app[REPORTS].resolve(who, comment_id, body)
    metrics = request.app[METRICS]
    if outcome.waited_seconds is not None:
        metrics.report_resolutions.labels(body.action).inc()
        metrics.time_to_report_decision.observe(outcome.waited_seconds)
    if body.action == "retract":
        metrics.decisions.labels("retract").inc()
    return json_response(outcome)


@operation(summary="Open reports, overdue ones, and time from first report to decision (p50, p90)",
           tag="moderation", role="moderator", responses={200: ReportStats}, errors=AUTH_ERRORS)
async def stats(request: web.Request) -> web.Response:
    await require_role(request, Role.MODERATOR)
    result = await request.app[REPORTS].stats()
    metrics = request.app[METRICS]
    metrics.reports_open.set(result.open)
    metrics.reports_overdue.set(result.overdue)
    metrics.reports_oldest.set(result.oldest_waiting_seconds or 0.0)
    return json_response(result)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/comments/{comment_id}/reports", report)
    app.router.add_get("/v1/moderation/reports", reported)
    app.router.add_get("/v1/moderation/reports/stats", stats)
    app.router.add_post("/v1/moderation/reports/{comment_id}/decision", resolve)
