"""Routes for admins: webhook receivers and what became of their deliveries (work: `service.webhooks`)."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from service.api.auth import require_role
from service.api.common import int_query, json_response, read_json
from service.api.docs import Param, operation
from service.appkeys import WEBHOOKS
from service.models import HEX_ID_PATTERN
from service.tokens import Role
from service.webhooks import DeliveryListView, Webhook, WebhookListView, WebhookRegistration

DELIVERIES_DEFAULT: Final = 50
DELIVERIES_MAX: Final = 200
_WEBHOOK_ID = Param("webhook_id", "path", {"type": "string", "pattern": HEX_ID_PATTERN}, True,
                    description="The webhook's `id`, as registering it answered.")
_LIMIT = Param("limit", "query",
               {"type": "integer", "minimum": 1, "maximum": DELIVERIES_MAX, "default": DELIVERIES_DEFAULT},
               description="The most deliveries to return, newest change first.")


@operation(summary="Register a webhook receiver (its secret is never shown again)", tag="admin", role="admin",
           request=WebhookRegistration, responses={201: Webhook},
           errors=(400, 401, 403, 409, 413, 415, 422, 429, 503))
async def register_webhook(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    body = await read_json(request, WebhookRegistration)
    hook = await request.app[WEBHOOKS].register(body)
    return json_response(hook, status=201, headers={"Location": f"/v1/webhooks/{hook.id}"})


@operation(summary="List webhook receivers", tag="admin", role="admin", responses={200: WebhookListView},
           errors=(400, 401, 403, 429, 503))
async def list_webhooks(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    return json_response(WebhookListView(webhooks=await request.app[WEBHOOKS].list()))


@operation(summary="Delete a webhook receiver and drop its pending deliveries", tag="admin", role="admin",
           responses={204: None}, params=(_WEBHOOK_ID,), errors=(400, 401, 403, 404, 429, 503))
async def delete_webhook(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    await request.app[WEBHOOKS].delete(request.match_info["webhook_id"])
    return web.Response(status=204)


@operation(summary="Recent deliveries of a webhook, newest change first", tag="admin", role="admin",
           responses={200: DeliveryListView},
           params=(_WEBHOOK_ID, _LIMIT),
           errors=(400, 401, 403, 404, 422, 429, 503))
async def list_deliveries(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    limit = int_query(request, "limit", DELIVERIES_DEFAULT, 1, DELIVERIES_MAX)
    deliveries = await request.app[WEBHOOKS].deliveries(request.match_info["webhook_id"], limit)
    return json_response(DeliveryListView(deliveries=deliveries))


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/webhooks", register_webhook)
    app.router.add_get("/v1/webhooks", list_webhooks)
    app.router.add_delete("/v1/webhooks/{webhook_id}", delete_webhook)
    app.router.add_get("/v1/webhooks/{webhook_id}/deliveries", list_deliveries)
