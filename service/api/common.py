"""Request parsing and response helpers shared by the handlers."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final, TypeVar

import orjson
from aiohttp import web
from aiohttp.helpers import ETAG_ANY
from pydantic import BaseModel, ValidationError

from service import text
from service.appkeys import SETTINGS
from service.errors import (
    FieldError,
    MalformedJSON,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    Unauthenticated,
    UnsupportedMediaType,
    ValidationFailed,
)
from service.models import ARTICLE_ID_RE, COMMENT_ID_RE
from service.submissions import read_receipt

MAX_BODY_BYTES: Final = 16 * 1024
JSON: Final = "application/json"

Model = TypeVar("Model", bound=BaseModel)

#: pydantic error types -> our stable field error codes.
_FIELD_CODES: Final = {
    "missing": "required", "string_too_short": "too_short", "string_too_long": "too_long",
    "too_short": "too_short", "too_long": "too_long", "extra_forbidden": "unknown_field",
    "string_type": "invalid_type", "int_type": "invalid_type", "int_parsing": "invalid_type",
    "bool_type": "invalid_type", "list_type": "invalid_type", "dict_type": "invalid_type",
    "model_type": "invalid_type", "string_pattern_mismatch": "invalid_format", "literal_error": "invalid",
    "greater_than_equal": "invalid", "less_than_equal": "invalid", "int_from_float": "invalid_type",
}


def field_errors(exc: ValidationError) -> list[FieldError]:
    out = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"]) or "body"
        code = _FIELD_CODES.get(error["type"], error["type"] if error["type"] in (
            "required", "too_long", "invalid_characters", "invalid_email") else "invalid")
        context = error.get("ctx") or {}
        params = tuple((k, v) for k, v in (("max", context.get("max", context.get("max_length"))),
                                          ("min", context.get("min_length"))) if isinstance(v, int))
        out.append(FieldError(field=location, code=code, params=params))
    return out


def parse(model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("some fields are not valid", fields=field_errors(exc)) from exc


async def read_json(request: web.Request, model: type[Model], *, max_bytes: int = MAX_BODY_BYTES) -> Model:
    """The body as `model`: JSON only, at most `max_bytes` (16 KiB unless a route needs more), valid UTF-8,
    duplicate keys refused."""
    if request.content_type != JSON:
        raise UnsupportedMediaType("send the body as application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise PayloadTooLarge("the body may be at most {max} bytes", params={"max": max_bytes})
    raw = await _read_limited(request, max_bytes)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON("the body is not valid JSON (or not UTF-8)") from exc
    try:
        duplicate = isinstance(data, dict) and _repeats_a_key(raw, data)
    except RecursionError as exc:  # orjson nests to 1024, the json module's recursion gives up sooner
        raise MalformedJSON("the body is nested too deeply") from exc
    if duplicate:
        raise MalformedJSON("the body repeats a key")
    return parse(model, data)


async def _read_limited(request: web.Request, max_bytes: int) -> bytes:
    """Read at most `max_bytes`, within the client timeout: a body trickled at a byte a second is cut off rather
    than holding a connection and a buffer (aiohttp itself has no body read deadline)."""
    content = request.content
    if content.is_eof():
        # A small body usually arrives with its headers, so it is all buffered already: taking it directly
        # saves arming a timeout and an async iteration (about a tenth of a submission's HTTP-layer CPU).
        raw = content.read_nowait()
        if len(raw) > max_bytes:
            raise PayloadTooLarge("the body may be at most {max} bytes", params={"max": max_bytes})
        return raw
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(request.app[SETTINGS].client_timeout_seconds):
            async for chunk in content.iter_any():
                size += len(chunk)
                if size > max_bytes:
                    raise PayloadTooLarge("the body may be at most {max} bytes", params={"max": max_bytes})
                chunks.append(chunk)
    except TimeoutError as exc:
        if request.transport is not None:
            request.transport.close()
        raise RequestTimeout("the body did not arrive in time") from exc
    return b"".join(chunks)


def _repeats_a_key(raw: bytes, data: dict[str, Any]) -> bool:
    """orjson keeps the last of repeated keys silently; a repeated key is ambiguous, so we refuse it.

    The exact check re-parses the body with the json module, slower by far than orjson. Browsers
    (`JSON.stringify`) and orjson write the same compact JSON with the same escapes, so a body from either is
    byte for byte what orjson writes for the parsed value, and that has no repeated key at any depth, since a
    dict holds each key once. Writing it back costs under a microsecond; only other bodies get the exact check.
    (Counting each key's `"key"` in the body was measured too: slower, for a proof that holds only for flat
    objects. Figures: docs/benchmarks.md.)
    """
    try:
        if orjson.dumps(data) == raw.strip():
            return False
    except orjson.JSONEncodeError:  # e.g. a lone surrogate, which orjson reads but does not write
        pass
    return _has_duplicate_keys(raw)


def _has_duplicate_keys(raw: bytes) -> bool:
    """The exact check, at every depth: the json module hands each object's pairs to a hook."""
    duplicate = False

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal duplicate
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                duplicate = True
            seen.add(key)
        return dict(pairs)

    json.loads(raw, object_pairs_hook=hook)
    return duplicate


def json_response(data: BaseModel | dict[str, Any] | list[Any] | bytes, *, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(data, BaseModel):
        body = data.__pydantic_serializer__.to_json(data)
    elif isinstance(data, bytes):
        body = data
    else:
        body = orjson.dumps(data)
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    # ASCII digits only (`text.ascii_number`); every documented maximum has fewer than 10 digits.
    value = text.ascii_number(raw, max_digits=9)
    if value is None or not low <= value <= high:
        raise ValidationFailed("{name} must be an integer from {low} to {high}",
                               params={"name": name, "low": low, "high": high},
                               fields=[FieldError(field=name, code="invalid")])
    return value


def path_article_id(request: web.Request) -> str:
    """The path's `article_id`; NotFound unless it has an article id's form."""
    article_id = request.match_info["article_id"]
    if not ARTICLE_ID_RE.fullmatch(article_id):
        raise NotFound("no such article")
    return article_id


def path_comment_id(request: web.Request) -> str:
    """The path's `comment_id`; NotFound unless it has a comment id's form."""
    comment_id = request.match_info["comment_id"]
    if not COMMENT_ID_RE.fullmatch(comment_id):
        raise NotFound("no such comment")
    return comment_id


def receipt_comment_id(request: web.Request) -> str:
    """The path's `comment_id`, when the request carries that comment's receipt (`Authorization: Receipt
    <receipt>`, as the submission answered it); Unauthenticated otherwise."""
    scheme, _, receipt = request.headers.get("Authorization", "").partition(" ")
    comment_id = request.match_info["comment_id"]
    if scheme.lower() != "receipt" or not COMMENT_ID_RE.fullmatch(comment_id):
        raise Unauthenticated("send the receipt as 'Authorization: Receipt <receipt>'")
    if read_receipt(request.app[SETTINGS].secret, receipt.strip()) != comment_id:
        raise Unauthenticated("this receipt is not for this comment")
    return comment_id


def not_modified(request: web.Request, etag: str) -> bool:
    """Whether the request's If-None-Match names `etag` (quoted, as sent in the ETag header) or is `*`: weak
    comparison, as RFC 9110 prescribes for If-None-Match; aiohttp parses the header."""
    tags = request.if_none_match
    if not tags:
        return False
    value = etag.strip('"')
    return any(tag.value in (value, ETAG_ANY) for tag in tags)
