"""Access tokens and roles for the moderation API and the approvals feed.

A token is 256 random bits, shown once at creation and stored only as its SHA-256 (a fast hash is right
here: the input is random, not a password). Lookups go by that hash and the result is compared again in
constant time. `COMMENTS_ADMIN_TOKEN` is an admin that needs no Redis entry.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Final

import orjson
from cachetools import TTLCache
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from service import keys
from service.connections import RedisClient
from service.errors import NotFound
from service.scripts import as_text

TOKEN_PREFIX: Final = "cmt_"
#: A revoked token may still work for this long in a worker that looked it up just before.
CACHE_SECONDS: Final = 2.0


class Role(enum.StrEnum):
    ADMIN = "admin"  #: everything, including tokens and webhooks
    MODERATOR = "moderator"  #: the queue and decisions
    FEED = "feed"  #: reads the approvals feed only: the site backend's credential


#: Which roles each role includes.
GRANTS: Final[dict[Role, frozenset[Role]]] = {
    Role.ADMIN: frozenset(Role),
    Role.MODERATOR: frozenset({Role.MODERATOR}),
    Role.FEED: frozenset({Role.FEED}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    name: str
    role: Role

    def may(self, role: Role) -> bool:
        return role in GRANTS[self.role]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    name: str
    role: Role
    created_at: int
    #: Unix time, to the millisecond, from which the token is refused.
    expires_at: float | None


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


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    def __init__(self, redis: RedisClient, admin_token: str | None = None) -> None:
        self._redis = redis
        self._admin_digest = digest(admin_token) if admin_token else None
        self._admin = Principal(token_id="bootstrap", name="admin", role=Role.ADMIN)
        #: What a token digest named, for CACHE_SECONDS (a revocation clears it at once in this process).
        self._cache: TTLCache[str, Principal | None] = TTLCache(maxsize=10_000, ttl=CACHE_SECONDS)

    async def create(self, role: Role, name: str, ttl_seconds: int | None = None) -> tuple[str, TokenInfo]:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        clock = time.time()
        now = int(clock)
        info = TokenInfo(id=secrets.token_hex(8), name=name, role=role, created_at=now,
                         expires_at=round(clock + ttl_seconds, 3) if ttl_seconds else None)
        token_digest = digest(token)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.token(token_digest), mapping={
            "id": info.id, "name": name, "role": role.value, "created_at": now,
            "expires_at": info.expires_at or 0, "digest": token_digest})
        if ttl_seconds:
            pipe.expire(keys.token(token_digest), ttl_seconds)
        pipe.hset(keys.token_index(), info.id, orjson.dumps({"digest": token_digest, "name": name,
                                                             "role": role.value, "created_at": now,
                                                             "expires_at": info.expires_at}))
        await pipe.execute()
        return token, info

    async def list(self) -> list[TokenInfo]:
        rows = await self._redis.hgetall(keys.token_index())
        now = time.time()
        out = []
        for token_id, raw in rows.items():
            data = orjson.loads(raw)
            if data["expires_at"] and data["expires_at"] < now:
                continue
            out.append(TokenInfo(id=as_text(token_id), name=data["name"], role=Role(data["role"]),
                                 created_at=data["created_at"], expires_at=data["expires_at"]))
        return sorted(out, key=lambda info: info.created_at)

    async def revoke(self, token_id: str) -> None:
        raw = await self._redis.hget(keys.token_index(), token_id)
        if raw is None:
            raise NotFound("no such token")
        data = orjson.loads(raw)
        pipe = self._redis.pipeline(transaction=False)
        pipe.delete(keys.token(data["digest"]))
        pipe.hdel(keys.token_index(), token_id)
        await pipe.execute()
        self._cache.clear()

    async def authenticate(self, token: str) -> Principal | None:
        token_digest = digest(token)
        if self._admin_digest is not None and hmac.compare_digest(token_digest, self._admin_digest):
            return self._admin
        with contextlib.suppress(KeyError):  # (None is a cached answer too: no such token)
            return self._cache[token_digest]
        row = await self._redis.hgetall(keys.token(token_digest))
        principal = None
        stored = as_text(row.get(b"digest", b""))
        expires = float(row.get(b"expires_at", 0) or 0)
        if row and hmac.compare_digest(stored, token_digest) and (not expires or expires > time.time()):
            principal = Principal(token_id=as_text(row[b"id"]), name=as_text(row[b"name"]),
                                  role=Role(as_text(row[b"role"])))
        self._cache[token_digest] = principal
        return principal
