"""Routes for admins: access tokens."""

from __future__ import annotations

from aiohttp import web

from service.api.auth import require_role
from service.api.common import json_response, read_json
from service.api.docs import Param, operation
from service.appkeys import TOKENS
from service.models import HEX_ID_PATTERN, iso
from service.tokens import Role, TokenCreated, TokenInfo, TokenListView, TokenRequest, TokenView


def _view(info: TokenInfo) -> TokenView:
    return TokenView(id=info.id, name=info.name, role=info.role, created_at=iso(info.created_at * 1000),
                     expires_at=iso(int(info.expires_at * 1000)) if info.expires_at else None)


@operation(summary="Create a token (shown once)", tag="admin", role="admin", request=TokenRequest,
           responses={201: TokenCreated}, errors=(400, 401, 403, 413, 415, 422, 429, 503))
async def create_token(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    body = await read_json(request, TokenRequest)
    token, info = await request.app[TOKENS].create(body.role, body.name, body.ttl_seconds)
    return json_response(TokenCreated(token=token, **_view(info).model_dump()), status=201,
                         headers={"Cache-Control": "no-store"})


@operation(summary="List tokens (never the tokens themselves)", tag="admin", role="admin",
           responses={200: TokenListView}, errors=(400, 401, 403, 429, 503))
async def list_tokens(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    return json_response(TokenListView(tokens=[_view(i) for i in await request.app[TOKENS].list()]))


@operation(summary="Revoke a token", tag="admin", role="admin", responses={204: None},
           params=(Param("token_id", "path", {"type": "string", "pattern": HEX_ID_PATTERN}, True,
                         description="The token's `id` (from the list), not the token itself."),),
           errors=(400, 401, 403, 404, 429, 503))
async def revoke_token(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    await request.app[TOKENS].revoke(request.match_info["token_id"])
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/tokens", create_token)
    app.router.add_get("/v1/tokens", list_tokens)
    app.router.add_delete("/v1/tokens/{token_id}", revoke_token)
