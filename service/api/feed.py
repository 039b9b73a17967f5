"""The approvals feed for the site backend (role `feed` or `admin`)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from service.api.auth import require_role
from service.api.common import int_query, json_response
from service.api.docs import Param, operation
from service.appkeys import FEED
from service.feed import FeedPage
from service.tokens import Role

MAX_WAIT_SECONDS: Final = 30


@operation(summary="Approvals and retractions in decision order (long poll with wait)", tag="feed", role="feed",
           responses={200: FeedPage},
           params=(Param("after", "query", {"type": "string", "maxLength": 400},
                         description="A `cursor` (or `next_cursor`) this feed gave out: events after it. Without "
                                     "it the read starts from the beginning, the oldest event still retained "
                                     "(COMMENTS_FEED_RETENTION_SECONDS, 7 days by default). A cursor older than "
                                     "that gets 410 `cursor_expired`."),
                   Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                         description="The most events to return."),
                   Param("wait", "query", {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS,
                                           "default": 0},
                         description="Long poll: seconds to wait for an event when none is there yet; 0 "
                                     "answers at once.")),
           errors=(400, 401, 403, 410, 422, 429, 503))
async def read_feed(request: web.Request) -> web.Response:
    await require_role(request, Role.FEED)
    body = await request.app[FEED].read(request.query.get("after"), int_query(request, "limit", 100, 1, 1000),
                                        int_query(request, "wait", 0, 0, MAX_WAIT_SECONDS))
    return json_response(body, headers={"Cache-Control": "no-store"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/feed", read_feed)
