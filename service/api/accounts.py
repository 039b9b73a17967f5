"""Routes for people: invitations and accounts (admins), accepting an invitation, password resets (an admin's
link, or one emailed on request, and its page), signing in and out, the session, and enrolling a second factor.
The rules live in `service.accounts`; who may ask, in `api.auth`."""

from __future__ import annotations

import html
from typing import Final

from aiohttp import web

from service import i18n
from service.accounts import (
    NAME_PATTERN,
    PASSWORD_MIN,
    RESET_TOKEN_PATTERN,
    AcceptRequest,
    Account,
    AccountList,
    AccountView,
    InvitationCreated,
    InvitationRequest,
    InvitationView,
    NewPassword,
    ResetCreated,
    ResetRequest,
    ResetRequested,
    ResetView,
    RoleChange,
    Session,
    SessionsEnded,
    SessionView,
    SignIn,
    TotpConfirm,
    TotpEnrolment,
)
from service.api.auth import check_same_origin, require_role, require_session, session_cookie
from service.api.clientinfo import client_ip_hash
from service.api.common import json_response, read_json
from service.api.docs import Param, operation
from service.appkeys import ACCOUNTS, MAIL, SETTINGS
from service.errors import InvitationInvalid, NotFound, PasswordResetInvalid, ServiceError
from service.models import iso
from service.tokens import Role

NAME: Final = Param("name", "path", {"type": "string", "pattern": NAME_PATTERN}, True,
                    description="The account's name (case does not matter).")
TOKEN: Final = Param("token", "path", {"type": "string", "pattern": r"^cmi_[A-Za-z0-9_-]{43}$"}, True,
                     description="The invitation's token, the last part of the link it was sent as.")
RESET_TOKEN: Final = Param("token", "path", {"type": "string", "pattern": RESET_TOKEN_PATTERN}, True,
                           description="The password reset's token, the last part of its link.")
ADMIN_ERRORS: Final = (400, 401, 403, 429, 503)
NO_STORE: Final = {"Cache-Control": "no-store"}


def _account(account: Account) -> AccountView:
    return AccountView(name=account.name, role=account.role, disabled=account.disabled,
                       created_at=iso(account.created_at), totp=account.totp)


def _session(session: Session) -> SessionView:
    return SessionView(name=session.name, role=session.role, csrf_token=session.csrf,
                       expires_at=iso(session.expires_at), totp_enrolment_required=session.enrol_only)


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if len(name) > 40:
        raise NotFound("no such account")
    return name


# -- admins: people ----------------------------------------------------------------------------------------------

@operation(summary="Invite a person (a one-time link, valid 72 hours)", tag="accounts", role="admin",
           request=InvitationRequest, responses={201: InvitationCreated},
           errors=(*ADMIN_ERRORS, 409, 413, 415, 422))
async def invite(request: web.Request) -> web.Response:
    who = await require_role(request, Role.ADMIN)
    body = await read_json(request, InvitationRequest)
    made = await request.app[ACCOUNTS].invite(body.name, body.role, who.name)
    link = f"{request.app[SETTINGS].public_origin}/moderation/invite/{made.token}"
    return json_response(InvitationCreated(name=made.name, role=made.role, expires_at=iso(made.expires_at),
                                           link=link), status=201, headers=NO_STORE)


@operation(summary="Every account", tag="accounts", role="admin", responses={200: AccountList},
           errors=ADMIN_ERRORS)
async def list_accounts(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    accounts = await request.app[ACCOUNTS].list()
    return json_response(AccountList(accounts=[_account(a) for a in accounts]))


@operation(summary="Disable an account (its sessions end at once)", tag="accounts", role="admin",
           responses={200: AccountView}, params=(NAME,), errors=(*ADMIN_ERRORS, 404))
async def disable(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    return json_response(_account(await request.app[ACCOUNTS].disable(_name(request))))


@operation(summary="Change an account's role (its sessions end)", tag="accounts", role="admin", request=RoleChange,
           responses={200: AccountView}, params=(NAME,), errors=(*ADMIN_ERRORS, 404, 413, 415, 422))
async def change_role(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    body = await read_json(request, RoleChange)
    return json_response(_account(await request.app[ACCOUNTS].set_role(_name(request), body.role)))


@operation(summary="End every session of a person", tag="accounts", role="admin", responses={200: SessionsEnded},
           params=(NAME,), errors=(*ADMIN_ERRORS, 404))
async def end_sessions(request: web.Request) -> web.Response:
    await require_role(request, Role.ADMIN)
    return json_response(SessionsEnded(ended=await request.app[ACCOUNTS].end_sessions(_name(request))))


@operation(summary="A one-time password reset link for an enabled account (valid 24 hours; a newer one voids it)",
           tag="accounts", role="admin", responses={201: ResetCreated}, params=(NAME,),
           errors=(*ADMIN_ERRORS, 404, 409))
async def issue_reset(request: web.Request) -> web.Response:
    who = await require_role(request, Role.ADMIN)
    made = await request.app[ACCOUNTS].issue_reset(_name(request), who.name)
    link = f"{request.app[SETTINGS].public_origin}/moderation/reset/{made.token}"
    return json_response(ResetCreated(name=made.name, expires_at=iso(made.expires_at), link=link), status=201,
                         headers=NO_STORE)


# -- the invitee -------------------------------------------------------------------------------------------------

@operation(summary="What an invitation is for", tag="accounts", responses={200: InvitationView}, params=(TOKEN,),
           errors=(404, 503))
async def show_invitation(request: web.Request) -> web.Response:
    made = await request.app[ACCOUNTS].invitation(request.match_info["token"])
    return json_response(InvitationView(name=made.name, role=made.role, expires_at=iso(made.expires_at)),
                         headers=NO_STORE)


@operation(summary="Accept an invitation: set the password (the invitation works once)", tag="accounts",
           request=AcceptRequest, responses={201: AccountView}, params=(TOKEN,),
           errors=(403, 404, 409, 413, 415, 422, 503))
async def accept(request: web.Request) -> web.Response:
    check_same_origin(request, browser_only=True)
    body = await read_json(request, AcceptRequest)
    account = await request.app[ACCOUNTS].accept(request.match_info["token"], body.password)
    return json_response(_account(account), status=201)


_PAGE: Final = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin"><title>Đặt mật khẩu · Set a password</title></head>
<body><main>
<h1>Đặt mật khẩu cho {name}</h1>
<p>Vai trò: {role}. Mật khẩu cần ít nhất {min} ký tự và không phải mật khẩu phổ biến.
<span lang="en">(Set a password of at least {min} characters that is not a common one.)</span></p>
{error}
<form method="post">
<p><label for="password">Mật khẩu</label><br>
<input id="password" name="password" type="password" autocomplete="new-password" minlength="{min}" required></p>
<p><button type="submit">Đặt mật khẩu</button></p>
</form>
</main></body></html>
"""
_DONE: Final = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Đã đặt mật khẩu · Password set</title></head>
<body><main><h1>Đã đặt mật khẩu</h1><p>Tài khoản {name} đã sẵn sàng.
<a href="/moderation/">Đăng nhập</a> <span lang="en">(Your account is ready: sign in.)</span></p></main></body></html>
"""
# same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` with the form's POST, which the
# same-origin check refuses; the token in the path still never leaves the service.
_PAGE_HEADERS: Final = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin"}


@operation(summary="The invitation link: a page with a form that sets the password (GET shows it, POST sends it as "
                   "a form; plain HTML without script)", tag="accounts", responses={200: "text", 201: "text"},
           media={status: "text/html" for status in (200, 201, 403, 404, 422)}, params=(TOKEN,),
           errors=(403, 404, 422, 503))
async def invitation_page(request: web.Request) -> web.Response:
    accounts = request.app[ACCOUNTS]
    token = request.match_info["token"]
    error = ""
    try:
        made = await accounts.invitation(token)
    except InvitationInvalid as exc:
        return _html(_message(request, exc), status=404)
    if request.method == "POST":
        check_same_origin(request, browser_only=True)
        form = await request.post()
        password = form.get("password")
        try:
            account = await accounts.accept(token, password if isinstance(password, str) else "")
        except ServiceError as exc:
            error = f'<p role="alert">{html.escape(_message(request, exc))}</p>'
        else:
            return _html(_DONE.format(name=html.escape(account.name)), status=201)
    return _html(_PAGE.format(name=html.escape(made.name), role=html.escape(made.role.value), min=PASSWORD_MIN,
                              error=error), status=422 if error else 200)


def _message(request: web.Request, error: ServiceError) -> str:
    lang = i18n.negotiate(request.headers.get("Accept-Language"))
    return i18n.detail(error.code, error.template, error.params, lang)


def _html(body: str, status: int) -> web.Response:
    if not body.startswith("<!doctype"):
        body = f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{html.escape(body)}</title>' \
               f"</head><body><main><p>{html.escape(body)}</p></main></body></html>"
    return web.Response(text=body, status=status, content_type="text/html", headers=_PAGE_HEADERS)


# -- password resets: the person -----------------------------------------------------------------------------------

_RESET_REQUESTED: Final = ("If this name has an account with an email address, a link valid 1 hour is on its way "
                           "there.")


@operation(summary="Forgot the password: email a reset link (valid 1 hour) to the account's notification address. "
                   "The same 202 whether or not the name has an account, is enabled or has an address; limited "
                   "per client address (429) and per name (past it, still 202 and no email)",
           tag="session", request=ResetRequest, responses={202: ResetRequested},
           errors=(403, 413, 415, 422, 429, 503))
async def request_reset(request: web.Request) -> web.Response:
    check_same_origin(request, browser_only=True)
    body = await read_json(request, ResetRequest)
    mail = request.app[MAIL]
    delivery = await request.app[ACCOUNTS].request_reset(body.name, client_ip_hash(request), deliver=mail.enabled)
    if delivery is not None:
        await mail.password_reset(delivery)  # queued: the mailer sends it, the request never waits on SMTP
    return json_response(ResetRequested(detail=_RESET_REQUESTED), status=202, headers=NO_STORE)


@operation(summary="Whose password a reset link sets, while it works", tag="session", responses={200: ResetView},
           params=(RESET_TOKEN,), errors=(404, 503))
async def show_reset(request: web.Request) -> web.Response:
    found = await request.app[ACCOUNTS].reset(request.match_info["token"])
    return json_response(ResetView(name=found.name, expires_at=iso(found.expires_at)), headers=NO_STORE)


@operation(summary="Use a reset link: set the new password (the link works once; every session of the person "
                   "ends; a second factor stays enrolled)", tag="session", request=NewPassword,
           responses={200: AccountView}, params=(RESET_TOKEN,), errors=(403, 404, 409, 413, 415, 422, 503))
async def use_reset(request: web.Request) -> web.Response:
    check_same_origin(request, browser_only=True)
    body = await read_json(request, NewPassword)
    account = await request.app[ACCOUNTS].use_reset(request.match_info["token"], body.password)
    return json_response(_account(account), headers=NO_STORE)


_RESET_PAGE: Final = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin"><title>Đặt lại mật khẩu · Reset your password</title></head>
<body><main>
<h1>Đặt lại mật khẩu cho {name} <span lang="en">· Reset the password of {name}</span></h1>
<p id="hint">Mật khẩu mới cần ít nhất {min} ký tự, không phải mật khẩu phổ biến và không chứa tên đăng nhập.
Khi đặt xong, mọi phiên đăng nhập của tài khoản sẽ kết thúc; xác thực hai bước vẫn giữ nguyên.
<span lang="en">(At least {min} characters, not a common password, without the name. Every session of the account
ends once it is set; a second factor stays as it is.)</span></p>
{error}
<form method="post">
<input type="text" name="username" autocomplete="username" value="{name}" readonly hidden>
<p><label for="password">Mật khẩu mới <span lang="en">(new password)</span></label><br>
<input id="password" name="password" type="password" autocomplete="new-password" minlength="{min}" maxlength="256"
required aria-describedby="{described}" autofocus></p>
<p><label for="again">Nhập lại mật khẩu mới <span lang="en">(the new password again)</span></label><br>
<input id="again" name="again" type="password" autocomplete="new-password" maxlength="256" required></p>
<p><button type="submit">Đặt mật khẩu <span lang="en">· Set the password</span></button></p>
</form>
</main></body></html>
"""
_RESET_DONE: Final = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Đã đặt mật khẩu mới · New password set</title></head>
<body><main><h1>Đã đặt mật khẩu mới <span lang="en">· New password set</span></h1>
<p>Mật khẩu mới của {name} đã có hiệu lực; mọi phiên đăng nhập cũ đã kết thúc.
<a href="/moderation/">Đăng nhập</a>
<span lang="en">(The new password of {name} is set and every earlier session has ended:
<a href="/moderation/">sign in</a>.)</span></p></main></body></html>
"""
_MISMATCH_HTML: Final = '{} <span lang="en">({})</span>'.format(*i18n.CONSOLE_TEXT["invite.mismatch"])


@operation(summary="The password reset link: a page with a form that sets the new password (GET shows it, POST "
                   "sends it as a form; plain HTML without script)", tag="session",
           responses={200: "text", 201: "text"}, media={status: "text/html" for status in (200, 201, 403, 404, 422)},
           params=(RESET_TOKEN,), errors=(403, 404, 422, 503))
async def reset_page(request: web.Request) -> web.Response:
    accounts = request.app[ACCOUNTS]
    token = request.match_info["token"]
    error = ""
    try:
        found = await accounts.reset(token)
    except PasswordResetInvalid as exc:
        return _html(_message(request, exc), status=404)
    if request.method == "POST":
        check_same_origin(request, browser_only=True)
        form = await request.post()
        password, again = form.get("password"), form.get("again")
        password = password if isinstance(password, str) else ""
        if password != again:  # the form's own check, before anything is asked of the domain
            error = f'<p role="alert" id="error">{_MISMATCH_HTML}</p>'
        else:
            try:
                account = await accounts.use_reset(token, password)
            except ServiceError as exc:
                error = f'<p role="alert" id="error">{html.escape(_message(request, exc))}</p>'
            else:
                return _html(_RESET_DONE.format(name=html.escape(account.name)), status=201)
    return _html(_RESET_PAGE.format(name=html.escape(found.name), min=PASSWORD_MIN, error=error,
                                    described="error hint" if error else "hint"),
                 status=422 if error else 200)


# -- signing in and the session ------------------------------------------------------------------------------------

def _set_cookie(request: web.Request, response: web.StreamResponse, value: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(session_cookie(settings), value, max_age=settings.session_lifetime_seconds, path="/",
                        secure=settings.env != "development", httponly=True, samesite="Strict")


@operation(summary="Sign in (sets the session cookie)", tag="session", request=SignIn,
           responses={200: SessionView}, errors=(401, 403, 413, 415, 422, 429, 503))
async def sign_in(request: web.Request) -> web.Response:
    check_same_origin(request, browser_only=True)
    body = await read_json(request, SignIn)
    cookie, session = await request.app[ACCOUNTS].sign_in(body.name, body.password, body.totp,
                                                          client_ip_hash(request))
    response = json_response(_session(session), headers=NO_STORE)
    _set_cookie(request, response, cookie)
    return response


@operation(summary="Who is signed in, and the CSRF token", tag="session", responses={200: SessionView},
           errors=(401, 503))
async def current(request: web.Request) -> web.Response:
    return json_response(_session(await require_session(request)), headers=NO_STORE)


@operation(summary="Sign out", tag="session", responses={204: None}, errors=(401, 403, 503))
async def sign_out(request: web.Request) -> web.Response:
    session = await require_session(request)
    await request.app[ACCOUNTS].sign_out(session)
    response = web.Response(status=204)
    settings = request.app[SETTINGS]
    response.del_cookie(session_cookie(settings), path="/", secure=settings.env != "development", httponly=True,
                        samesite="Strict")
    return response


@operation(summary="Start enrolling an authenticator app (a new secret)", tag="session",
           responses={200: TotpEnrolment}, errors=(401, 403, 503))
async def totp_begin(request: web.Request) -> web.Response:
    session = await require_session(request)
    secret, uri = await request.app[ACCOUNTS].totp_begin(session)
    return json_response(TotpEnrolment(secret=secret, otpauth_uri=uri), headers=NO_STORE)


@operation(summary="Finish enrolling: the app's current code", tag="session", request=TotpConfirm,
           responses={204: None}, errors=(401, 403, 413, 415, 422, 503))
async def totp_confirm(request: web.Request) -> web.Response:
    session = await require_session(request)
    body = await read_json(request, TotpConfirm)
    await request.app[ACCOUNTS].totp_confirm(session, body.code)
    return web.Response(status=204)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/accounts/invitations", invite)
    app.router.add_get("/v1/accounts", list_accounts)
    app.router.add_post("/v1/accounts/{name}/disable", disable)
    app.router.add_patch("/v1/accounts/{name}", change_role)
    app.router.add_post("/v1/accounts/{name}/sessions/revoke", end_sessions)
    app.router.add_post("/v1/accounts/{name}/password-reset", issue_reset)
    app.router.add_get("/v1/accounts/invitations/{token}", show_invitation)
    app.router.add_post("/v1/accounts/invitations/{token}/accept", accept)
    app.router.add_get("/moderation/invite/{token}", invitation_page)
    app.router.add_post("/moderation/invite/{token}", invitation_page)
    app.router.add_post("/v1/session", sign_in)
    app.router.add_get("/v1/session", current)
    app.router.add_delete("/v1/session", sign_out)
    app.router.add_post("/v1/session/totp", totp_begin)
    app.router.add_post("/v1/session/totp/confirm", totp_confirm)
    app.router.add_post("/v1/session/password-reset", request_reset)
    app.router.add_get("/v1/session/password-reset/{token}", show_reset)
    app.router.add_post("/v1/session/password-reset/{token}", use_reset)
    app.router.add_get("/moderation/reset/{token}", reset_page)
    app.router.add_post("/moderation/reset/{token}", reset_page)

