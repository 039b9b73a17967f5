"""The approvals feed for the site backend (role `feed` or `admin`)."""

from __future__ import annotations

from typing import Final

from aiohttp import web
from pydantic import BaseModel

from service.api.auth import require_role
from service.api.common import int_query, json_response
from service.api.docs import Param, operation
from service.appkeys import FEED
from service.models import PublicComment
from service.tokens import Role

MAX_WAIT_SECONDS: Final = 30


class FeedEvent(BaseModel):
    cursor: str
    type: str
    article_id: str
    comment: PublicComment | None


class FeedPage(BaseModel):
    events: list[FeedEvent]
    next_cursor: str


@operation(summary="Approvals and retractions in decision order (long poll with wait)", tag="feed", role="feed",
           responses={200: FeedPage},
           params=(Param("after", "query", {"type": "string", "maxLength": 400}),
                   Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000}),
                   Param("wait", "query", {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS})),
           errors=(400, 401, 403, 410, 422, 429, 503))
async def read_feed(request: web.Request) -> web.Response:
    await require_role(request, Role.FEED)
    body = await request.app[FEED].read(request.query.get("after"), int_query(request, "limit", 100, 1, 1000),
                                        int_query(request, "wait", 0, 0, MAX_WAIT_SECONDS))
    return json_response(body, headers={"Cache-Control": "no-store"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/feed", read_feed)
