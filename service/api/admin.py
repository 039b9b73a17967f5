"""Routes for admins: access tokens."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from service.api.auth import require_role
from service.api.common import json_response, read_json
from service.api.docs import Param, operation
from service.appkeys import TOKENS
from service.models import HEX_ID_PATTERN, iso
from service.tokens import Role, TokenInfo


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role = Field(description="feed (reads the approvals feed: the site backend), moderator (the queue and "
                                   "decisions) or admin (everything, tokens and webhooks included).")
    name: str = Field(min_length=1, max_length=80, description="Who or what holds the token; moderation "
                                                               "history and stats name moderators by it.")
    ttl_seconds: StrictInt | None = Field(default=None, ge=60, le=10 * 365 * 86400,
                                          description="Seconds until the token expires; it never does when "
                                                      "absent.")


class TokenView(BaseModel):
    id: str = Field(description="The token's id, for revoking it (not the token itself).")
    name: str = Field(description="The name given when it was created.")
    role: Role = Field(description="What the token may do: feed, moderator or admin.")
    created_at: str = Field(description="When it was created (ISO 8601, UTC).")
    expires_at: str | None = Field(description="When it expires (ISO 8601, UTC); null if never.")


class TokenCreated(TokenView):
    #: Shown once; only its hash is kept.
    token: str = Field(description="The secret to send as `Authorization: Bearer <token>`. Shown only now: the "
                                   "service keeps its hash alone.")


class TokenListView(BaseModel):
    tokens: list[TokenView] = Field(description="Every token that has not been revoked or expired.")


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
