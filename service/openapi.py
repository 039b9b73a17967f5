"""The OpenAPI 3.1 document, generated from the routes' `@operation` metadata and the pydantic models."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from service import __version__
from service.api.docs import Operation
from service.errors import registry
from service.models import Problem

ERROR_TEXT = {400: "Bad request", 401: "No valid token", 403: "Wrong role", 404: "Not found",
              408: "The body arrived too slowly", 409: "Conflict", 410: "Gone", 413: "Body too large",
              415: "Not JSON", 422: "Invalid input", 429: "Rate limited; retry after Retry-After",
              500: "Unexpected error (a defect)", 503: "Redis unavailable; retry after Retry-After"}
ROLE_TEXT = "Bearer token with role `{role}` (admins may do everything)."
DESCRIPTION = """Pre-moderated comments: captcha, submission, moderation, publication.

Errors are RFC 9457 problem documents (`application/problem+json`) with a stable `code`. Their `title` and
`detail` are in the request's language: Vietnamese by default, English when `Accept-Language` prefers it.
Their `type` is the URL of a page on this service (`/problems/<code>`) that explains the code in both
languages; `/problems` lists every code."""


def _models(operations: list[Operation]) -> dict[str, Any]:
    models: set[type[BaseModel]] = {Problem}
    for op in operations:
        if op.request is not None:
            models.add(op.request)
        models.update(m for m in op.responses.values() if isinstance(m, type))
    ordered = sorted(models, key=lambda m: m.__name__)
    modes: tuple[Literal["validation", "serialization"], ...] = ("validation", "serialization")
    pairs = [(m, mode) for mode in modes for m in ordered]
    _, definitions = models_json_schema(pairs, ref_template="#/components/schemas/{model}")
    return dict(definitions.get("$defs", {}))


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _responses(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, model in op.responses.items():
        entry: dict[str, Any] = {"description": "OK" if status < 300 else "Not modified" if status == 304
                                 else HTTPStatus(status).phrase}
        if isinstance(model, type) and op.media.get(status) == "text/event-stream":
            entry["content"] = {"text/event-stream": {"schema": _event_schema(model)}}
        elif isinstance(model, type):  # JSON, or what `media` names
            entry["content"] = {op.media.get(status, "application/json"): {"schema": _ref(model)}}
        elif model is not None:
            media = op.media.get(status, "application/octet-stream")
            schema: dict[str, Any] = {"type": "object"} if model == "json" else \
                {"type": "string", **({"contentMediaType": media} if model == "bytes" else {})}
            entry["content"] = {media: {"schema": schema}}
        out[str(status)] = entry
    # No 405 here: an operation is a method its path has, so a request for it cannot get one; 405 answers only
    # methods that are not documented (`/problems/method_not_allowed`).
    # A JSON body that is not JSON is refused (400 malformed_json) by every operation that reads one.
    for status in sorted({*op.errors, 500, *((400,) if op.request is not None else ())}):
        content: dict[str, Any] = {"application/problem+json": {"schema": _ref(Problem)}}
        if status in op.media:  # a page for people (an email's link) says it in HTML
            content[op.media[status]] = {"schema": {"type": "string"}}
        out[str(status)] = {"description": _error_text(status), "content": content}
    return out


def _event_schema(model: type[BaseModel]) -> dict[str, Any]:
    """One server-sent event, as OpenAPI 3.2 describes a stream's items: its fields, `data` holding `model` as
    JSON (the stream's `retry:` line and `: heartbeat` comments carry no data)."""
    return {"type": "object", "description": f"One event of the stream; its `data` is a {model.__name__}.",
            "properties": {
                "event": {"type": "string", "description": "The event's name."},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": _ref(model),
                         "description": f"The {model.__name__}, as JSON."},
                "id": {"type": "string", "description": "The event's id, if any."},
                "retry": {"type": "integer", "description": "Milliseconds a client waits before reconnecting."}}}


def _error_text(status: int) -> str:
    """What a status means here, with the problem codes it can carry (each explained at /problems/<code>)."""
    codes = sorted(code for code, error in registry().items() if error.status == status and code != "error")
    text = ERROR_TEXT.get(status) or HTTPStatus(status).phrase
    if not codes:
        return text
    return f"{text}. Problem codes with this status: {', '.join(f'`{c}`' for c in codes)} (see /problems/<code>)."


def _operation(method: str, path: str, op: Operation) -> dict[str, Any]:
    name = path.strip("/").replace("/", "_").replace("{", "").replace("}", "").replace(".", "_")
    doc: dict[str, Any] = {"operationId": op.operation_id or f"{method}_{name}", "summary": op.summary,
                           "tags": [op.tag], "responses": _responses(op)}
    params = []
    for p in op.params:
        schema = {"type": "array", "items": p.schema, "minItems": 1, "maxItems": 100} if p.many else p.schema
        params.append({"name": p.name, "in": p.where, "required": p.required or p.where == "path",
                       "schema": schema, **({"description": p.description} if p.description else {}),
                       **({"explode": True, "style": "form"} if p.many else {})})
    if op.role is not None:
        doc["security"] = [{"bearer": []}]
        doc["description"] = ROLE_TEXT.format(role=op.role)
    if op.description:
        doc["description"] = f"{doc.get('description', '')}\n\n{op.description}".strip()
    if params:
        doc["parameters"] = params
    if op.request is not None:
        doc["requestBody"] = {"required": True,
                              "content": {"application/json": {"schema": _ref(op.request)}}}
    return doc


def document(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    operations: list[Operation] = []
    for route in app.router.routes():
        if route.method in ("HEAD", "OPTIONS") or route.resource is None:
            continue
        op: Operation | None = getattr(route.handler, "__openapi__", None)
        path = route.resource.canonical
        if op is None:
            op = Operation(summary=(route.handler.__doc__ or path).strip().splitlines()[0], tag="other",
                           responses={200: "bytes"}, errors=(404,))
        operations.append(op)
        paths.setdefault(path, {})[route.method.lower()] = _operation(route.method.lower(), path, op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Comments service", "version": __version__,
                 "description": DESCRIPTION},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": _models(operations),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
