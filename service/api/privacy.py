"""Routes of a reader's data and the newsroom's legal records: export and erasure (admins), the privacy log,
retention on demand, the takedown register (admins), and the reader's self-service (“Dữ liệu của tôi”): a request
that sends a one-time link by email, and the link's pages (download the export, or confirm an erasure)."""

from __future__ import annotations

import html
from typing import Final

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from service import i18n
from service.api.auth import require_role
from service.api.clientinfo import client_ip_hash
from service.api.common import int_query, json_response, read_json
from service.api.docs import Param, operation
from service.appkeys import MAIL, METRICS, PRIVACY, RETENTION, SCRIPTS, SETTINGS, TAKEDOWNS
from service.clients import email_hash
from service.errors import FieldError, NotFound, ValidationFailed
from service.models import Email
from service.privacy import (
    DataExport,
    DataRequestAccepted,
    DataRequestForm,
    ErasureMode,
    ErasureRequest,
    ErasureResult,
    ExportRequest,
    PrivacyLog,
)
from service.reports import within_limit
from service.retention import RetentionReport, RetentionRequest
from service.takedowns import TAKEDOWN_ID_PATTERN, TAKEDOWN_ID_RE, Takedown, TakedownRegister, TakedownRequest
from service.tokens import Role

AUTH_ERRORS: Final = (400, 401, 403, 429, 503)
BODY_ERRORS: Final = (413, 415, 422)
NO_STORE: Final = {"Cache-Control": "no-store"}
_EMAIL: Final = TypeAdapter(Email)
#: The self-service link's token: `secrets.token_urlsafe(32)`.
TOKEN_PATTERN: Final = r"^[A-Za-z0-9_-]{43}$"
TOKEN: Final = Param("token", "path", {"type": "string", "pattern": TOKEN_PATTERN}, True,
                     description="The token of the link the reader got by email.")


# -- admins: export, erasure, log, retention ---------------------------------------------------------------

@operation(summary="Everything kept about an email address, as JSON", tag="privacy", role="admin",
           responses={200: DataExport},
           params=(Param("email", "query", {"type": "string", "minLength": 1, "maxLength": 320}, True,
                         description="The address (case does not matter). POST the same to keep it out of "
                                     "URLs and access logs."),),
           errors=(*AUTH_ERRORS, 422))
async def export_by_query(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    raw = request.query.get("email", "")
    try:
        email = _EMAIL.validate_python(raw)
    except ValidationError:
        raise ValidationFailed("email is not a valid address", fields=[FieldError("email", "invalid_email")]) from None
    return json_response(await request.app[PRIVACY].export(email), headers=NO_STORE)


@operation(summary="Everything kept about an email address, as JSON (the address in the body)", tag="privacy",
           role="admin", request=ExportRequest, responses={200: DataExport}, errors=(*AUTH_ERRORS, *BODY_ERRORS))
async def export(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    body = await read_json(request, ExportRequest)
    return json_response(await request.app[PRIVACY].export(body.email), headers=NO_STORE)


@operation(summary="Erase by email or comment ids: delete or anonymise", tag="privacy", role="admin",
           request=ErasureRequest, responses={200: ErasureResult}, errors=(*AUTH_ERRORS, 409, *BODY_ERRORS))
async def erase(request: web.Request) -> web.Response:
    who = await require_role(request, Role.ADMIN)
    body = await read_json(request, ErasureRequest)
    result = await request.app[PRIVACY].erase(body, who.name)
    request.app[METRICS].erasures.labels(body.mode.value).inc(len(result.erased))
    return json_response(result, headers=NO_STORE)


@operation(summary="The privacy log: erasures and retention runs, newest first", tag="privacy", role="admin",
           responses={200: PrivacyLog},
           params=(Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                         description="The most entries to return."),),
           errors=(*AUTH_ERRORS, 422))
async def privacy_log(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    return json_response(await request.app[PRIVACY].log(int_query(request, "limit", 100, 1, 1000)))


@operation(summary="Run retention now, or list what it would remove (dry run)", tag="privacy", role="admin",
           request=RetentionRequest, responses={200: RetentionReport}, errors=(*AUTH_ERRORS, *BODY_ERRORS))
async def retention(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    body = await read_json(request, RetentionRequest)
    report = await request.app[RETENTION].run(dry_run=body.dry_run)
    metrics = request.app[METRICS]
    metrics.pending_overdue.set(report.pending_overdue)
    if not body.dry_run:
        metrics.retention_removed.labels("comment").inc(len(report.deleted))
        metrics.retention_removed.labels("ip_hash").inc(len(report.ip_dropped))
    return json_response(report)


# -- admins: takedowns -------------------------------------------------------------------------------------------

@operation(summary="Record a lawful takedown request: its comments are retracted at once", tag="privacy",
           role="admin", request=TakedownRequest, responses={201: Takedown}, errors=(*AUTH_ERRORS, *BODY_ERRORS))
async def record_takedown(request: web.Request) -> web.Response:
    who = await require_role(request, Role.ADMIN)
    body = await read_json(request, TakedownRequest, max_bytes=64 * 1024)
    takedown = await request.app[TAKEDOWNS].record(who, body)
    request.app[METRICS].decisions.labels("retract").inc(sum(o.outcome == "retracted" for o in takedown.outcomes))
    return json_response(takedown, status=201)


@operation(summary="The takedown register, newest first", tag="privacy", role="admin",
           responses={200: TakedownRegister},
           params=(Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                         description="The most entries to return."),
                   Param("before", "query", {"type": "string", "pattern": TAKEDOWN_ID_PATTERN},
                         description="The `next_cursor` of the previous page; the newest first when absent.")),
           errors=(*AUTH_ERRORS, 422))
async def takedown_register(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    before = request.query.get("before")
    if before is not None and not TAKEDOWN_ID_RE.fullmatch(before):
        raise ValidationFailed("the cursor is not one this service gave out")
    return json_response(await request.app[TAKEDOWNS].register(int_query(request, "limit", 50, 1, 200), before))


# -- readers: self-service by email --------------------------------------------------------------------------------

@operation(summary="Ask for my data or its erasure: a link goes to the address (limited per client and address; "
                   "404 when the service sends no email)",
           tag="privacy", request=DataRequestForm, responses={202: DataRequestAccepted},
           errors=(400, 404, 413, 415, 422, 429, 503))
async def data_request(request: web.Request) -> web.Response:
    if not request.app[MAIL].enabled:  # no link could reach the reader: the newsroom answers such requests
        raise NotFound("this service sends no email")
    form = await read_json(request, DataRequestForm)
    settings = request.app[SETTINGS]
    scripts = request.app[SCRIPTS]
    detail = "too many data requests, try again later"
    await within_limit(scripts, "data-request", client_ip_hash(request), settings.rate_limit_data_request, detail)
    await within_limit(scripts, "data-request-email", email_hash(settings.secret, form.email),
                       settings.rate_limit_data_request, detail)
    await request.app[PRIVACY].request_link(form, settings.public_origin)
    return json_response(DataRequestAccepted(), status=202, headers=NO_STORE)


def _token(request: web.Request) -> str:
    token = request.match_info["token"]
    if len(token) != 43 or not token.isascii() or not all(c.isalnum() or c in "_-" for c in token):
        raise NotFound("this link does not exist, was used or expired")
    return token


def _page(request: web.Request, heading: str, *parts: str) -> web.Response:
    """A small page in the reader's language (Accept-Language); `parts` are HTML already escaped."""
    lang = i18n.negotiate(request.headers.get("Accept-Language"))
    body = "".join(parts)
    return web.Response(
        text=f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
             f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{html.escape(heading)}'
             f'</title><meta name="referrer" content="no-referrer"></head><body><main><h1>{html.escape(heading)}</h1>'
             f'{body}</main></body></html>', content_type="text/html", headers=NO_STORE)


def _say(request: web.Request, key: str, **params: str) -> str:
    lang = i18n.negotiate(request.headers.get("Accept-Language"))
    pair = i18n.PRIVACY_TEXT[key]
    return (pair[0] if lang == "vi" else pair[1]).format(**{k: html.escape(v) for k, v in params.items()})


@operation(summary="The page of a data request's link: download the data, or confirm the erasure", tag="privacy",
           responses={200: "html"}, media={200: "text/html"}, params=(TOKEN,), errors=(404, 503))
async def request_page(request: web.Request) -> web.Response:
    token = _token(request)
    found = await request.app[PRIVACY].data_request(token)
    email = _say(request, "for", email=found.email)
    if found.kind == "export":
        return _page(request, _say(request, "export_title"), f"<p>{email}</p>",
                     f'<p><a href="/privacy/{token}/export" download="du-lieu.json">{_say(request, "download")}</a>'
                     f"</p>")
    return _page(request, _say(request, "erase_title"), f"<p>{email}</p><p>{_say(request, 'erase_explain')}</p>",
                 f'<form method="post" action="/privacy/{token}/erase">'
                 f'<p><button type="submit" name="mode" value="delete">{_say(request, "delete")}</button></p>'
                 f'<p><button type="submit" name="mode" value="anonymise">{_say(request, "anonymise")}</button></p>'
                 f"</form>")


@operation(summary="Download my data (a data request's link)", tag="privacy", responses={200: DataExport},
           params=(TOKEN,), errors=(404, 503))
async def request_export(request: web.Request) -> web.Response:
    privacy = request.app[PRIVACY]
    found = await privacy.data_request(_token(request))
    if found.kind != "export":
        raise NotFound("this link does not exist, was used or expired")
    return json_response(await privacy.export(found.email),
                         headers={**NO_STORE, "Content-Disposition": 'attachment; filename="du-lieu.json"'})


@operation(summary="Confirm the erasure of my data (a data request's link; it works once)", tag="privacy",
           responses={200: "html"}, media={200: "text/html"}, params=(TOKEN,), errors=(404, 413, 422, 503))
async def request_erase(request: web.Request) -> web.Response:
    token = _token(request)
    form = await request.post()
    mode = form.get("mode")
    if mode not in ("delete", "anonymise"):
        raise ValidationFailed("mode must be delete or anonymise", fields=[FieldError("mode", "invalid")])
    privacy = request.app[PRIVACY]
    found = await privacy.data_request(token)
    if found.kind != "erase":
        raise NotFound("this link does not exist, was used or expired")
    await privacy.use_request(token)
    result = await privacy.erase(ErasureRequest(email=found.email, mode=ErasureMode(mode),
                                                requested_by="self-service"), "self-service")
    request.app[METRICS].erasures.labels(mode).inc(len(result.erased))
    return _page(request, _say(request, "erase_title"),
                 f"<p>{_say(request, 'erased', count=str(len(result.erased) + len(result.already)))}</p>")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/v1/privacy/export", export_by_query)
    app.router.add_post("/v1/privacy/export", export)
    app.router.add_post("/v1/privacy/erasures", erase)
    app.router.add_get("/v1/privacy/log", privacy_log)
    app.router.add_post("/v1/privacy/retention", retention)
    app.router.add_post("/v1/privacy/requests", data_request)
    app.router.add_post("/v1/takedowns", record_takedown)
    app.router.add_get("/v1/takedowns", takedown_register)
    app.router.add_get("/privacy/{token}", request_page)
    app.router.add_get("/privacy/{token}/export", request_export)
    app.router.add_post("/privacy/{token}/erase", request_erase)
