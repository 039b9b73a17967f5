"""Routes of email links (`service.mail`): a moderator's approve/reject link, unsubscribing, the two steps of a
reply subscription, an author's request for it with their receipt, and a moderator's notification settings.

Every link page works the same way: GET shows what the link would do and a button, and changes nothing (mail
scanners and link previews open links); the button POSTs to the same address, and only the POST acts. The
signed token in the path is the credential (no cookie rides along, so there is nothing for a cross-site form to
forge). The pages are plain HTML without script or inline style, `no-store` and `no-referrer` (the token must
not travel on in a Referer), and say nothing about the address an email went to.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from service import i18n
from service.accounts import NAME_PATTERN, fold
from service.api.auth import require_role
from service.api.common import json_response, read_json, receipt_comment_id
from service.api.docs import Param, operation
from service.api.middleware import CONSOLE_CSP
from service.appkeys import ACCOUNTS, MAIL
from service.errors import Forbidden, ServiceError
from service.mail.links import TOKEN_PATTERN
from service.mail.mailer import NotificationSettings
from service.mail.messages import PAGE_TEXT, render_page
from service.models import COMMENT_ID_PATTERN
from service.tokens import Role

TOKEN: Final = Param("token", "path", {"type": "string", "pattern": TOKEN_PATTERN}, True,
                     description="The link's signed token, as the email gave it.")
PAGE_HEADERS: Final = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                       "Content-Security-Policy": CONSOLE_CSP, "X-Robots-Tag": "noindex"}
PAGE_ERRORS: Final = (404, 410, 503)
#: The pages answer people in HTML, their refusals too (a link that no longer works, email turned off).
PAGE_MEDIA: Final = {status: "text/html" for status in (200, 400, 404, 409, 410, 503)}


def _lang(request: web.Request) -> i18n.Lang:
    return i18n.negotiate(request.headers.get("Accept-Language"))


def _text(request: web.Request, key: str, **values: str) -> str:
    vi, en = PAGE_TEXT[key]
    return (vi if _lang(request) == "vi" else en).format(**values)


def _page(request: web.Request, heading: str, *paragraphs: str, button: str | None = None,
          quote: dict[str, str] | None = None, one_click: bool = False, status: int = 200) -> web.Response:
    body = render_page(lang=_lang(request), heading=heading, paragraphs=paragraphs, button=button,
                       action=request.path, quote=quote, one_click=one_click)
    return web.Response(text=body, status=status, content_type="text/html", headers=PAGE_HEADERS)


def _refused(request: web.Request, error: ServiceError) -> web.Response:
    message = i18n.detail(error.code, error.template, error.params, _lang(request))
    return _page(request, i18n.title(error.code, _lang(request)), message, status=error.status)


# -- a moderator's one-click decision ------------------------------------------------------------------------------

@operation(summary="A moderator's approve/reject link from a notification email: GET shows the comment and a "
                   "button (and decides nothing), POST makes the decision, once (HTML pages)", tag="mail",
           responses={200: "text"}, media=PAGE_MEDIA, params=(TOKEN,), errors=(*PAGE_ERRORS, 409))
async def decision_page(request: web.Request) -> web.Response:
    mail = request.app[MAIL]
    token = request.match_info["token"]
    try:
        if request.method == "POST":
            link, comment = await mail.decide_by_link(token)
            done = "decide.approved" if link.action == "approve" else "decide.rejected"
            return _page(request, _text(request, done), _text(request, "decide.done"),
                         quote={"title": comment.title, "name": comment.name, "body": comment.body})
        preview = await mail.decision_preview(token)
    except ServiceError as exc:
        return _refused(request, exc)
    action = "decide.approve" if preview.link.action == "approve" else "decide.reject"
    comment = preview.comment
    return _page(request, _text(request, action), _text(request, "decide.explain"), button=_text(request, action),
                 quote={"title": comment.title, "name": comment.name, "body": comment.body})


# -- unsubscribing ---------------------------------------------------------------------------------------------

@operation(summary="Unsubscribe (the List-Unsubscribe link of every email): GET shows a button, POST (the button, "
                   "or a mail client's RFC 8058 one-click POST) stops every email to the address (HTML pages)",
           tag="mail", responses={200: "text"}, media=PAGE_MEDIA, params=(TOKEN,), errors=PAGE_ERRORS)
async def unsubscribe_page(request: web.Request) -> web.Response:
    mail = request.app[MAIL]
    token = request.match_info["token"]
    try:
        if request.method == "POST":
            await mail.unsubscribe(token)
            return _page(request, _text(request, "unsubscribe.done"), _text(request, "unsubscribe.done_text"))
        mail.check_unsubscribe(token)
    except ServiceError as exc:
        return _refused(request, exc)
    return _page(request, _text(request, "unsubscribe.title"), _text(request, "unsubscribe.explain"),
                 button=_text(request, "unsubscribe.button"), one_click=True)


# -- reply subscriptions -----------------------------------------------------------------------------------------

@operation(summary="Ask for an email for each approved reply to one's comment (the link of the approval email): "
                   "GET shows a button, POST sends the confirmation email (HTML pages)", tag="mail",
           responses={200: "text"}, media=PAGE_MEDIA, params=(TOKEN,), errors=PAGE_ERRORS)
async def replies_page(request: web.Request) -> web.Response:
    mail = request.app[MAIL]
    token = request.match_info["token"]
    try:
        title = await mail.reply_comment_title("r", token)
        if request.method == "POST":
            await mail.request_replies_by_link(token)
            return _page(request, _text(request, "replies.sent"), _text(request, "replies.sent_text"))
    except ServiceError as exc:
        return _refused(request, exc)
    return _page(request, _text(request, "replies.title"), _text(request, "replies.explain", title=title),
                 button=_text(request, "replies.button"))


@operation(summary="Confirm a reply subscription (the link of the confirmation email): GET shows a button, POST "
                   "confirms (HTML pages)", tag="mail", responses={200: "text"}, media=PAGE_MEDIA,
           params=(TOKEN,), errors=(*PAGE_ERRORS, 409))
async def replies_confirm_page(request: web.Request) -> web.Response:
    mail = request.app[MAIL]
    token = request.match_info["token"]
    try:
        title = await mail.reply_comment_title("c", token)
        if request.method == "POST":
            await mail.confirm_replies(token)
            return _page(request, _text(request, "confirm.done"), _text(request, "confirm.done_text", title=title))
    except ServiceError as exc:
        return _refused(request, exc)
    return _page(request, _text(request, "confirm.title"), _text(request, "confirm.explain", title=title),
                 button=_text(request, "confirm.button"))


@operation(summary="Ask for an email for each approved reply to my approved comment "
                   "(Authorization: Receipt <receipt>): a confirmation email goes to the comment's address first",
           tag="mail", responses={202: None},
           params=(Param("comment_id", "path", {"type": "string", "pattern": COMMENT_ID_PATTERN}, True,
                         description="The comment's `id`; the receipt must be for it, and it must be approved."),),
           errors=(401, 404, 503))
async def request_replies(request: web.Request) -> web.Response:
    await request.app[MAIL].request_replies(receipt_comment_id(request))
    return web.Response(status=202, headers={"Cache-Control": "no-store"})


# -- a moderator's notifications ---------------------------------------------------------------------------------

NAME: Final = Param("name", "path", {"type": "string", "pattern": NAME_PATTERN}, True,
                    description="The account's name (case does not matter): one's own, or anyone's for an admin.")


async def _may_set(request: web.Request) -> str:
    who = await require_role(request, Role.MODERATOR)
    name = request.match_info["name"]
    if not who.may(Role.ADMIN) and who.token_id != f"account:{fold(name)}":
        raise Forbidden("you may set only your own notifications")
    return name


@operation(summary="A person's email notifications: address, each new comment / a digest every N minutes / "
                   "none", tag="mail", role="moderator", responses={200: NotificationSettings}, params=(NAME,),
           errors=(401, 403, 404, 503))
async def get_notifications(request: web.Request) -> web.Response:
    name = await _may_set(request)
    found = await request.app[ACCOUNTS].notifications(name)
    return json_response(NotificationSettings.of(found), headers={"Cache-Control": "no-store"})


@operation(summary="Set a person's email notifications (one's own; an admin anyone's)", tag="mail",
           role="moderator", request=NotificationSettings, responses={200: NotificationSettings}, params=(NAME,),
           errors=(401, 403, 404, 413, 415, 422, 503))
async def set_notifications(request: web.Request) -> web.Response:
    name = await _may_set(request)
    body = await read_json(request, NotificationSettings)
    stored = await request.app[ACCOUNTS].set_notifications(name, body.notifications())
    return json_response(NotificationSettings.of(stored), headers={"Cache-Control": "no-store"})


def setup_routes(app: web.Application) -> None:
    for path, handler in (("/mail/decide/{token}", decision_page), ("/mail/unsubscribe/{token}", unsubscribe_page),
                          ("/mail/replies/{token}", replies_page),
                          ("/mail/replies/confirm/{token}", replies_confirm_page)):
        app.router.add_get(path, handler)
        app.router.add_post(path, handler)
    app.router.add_post("/v1/comments/{comment_id}/reply-subscription", request_replies)
    app.router.add_get("/v1/moderation/notifications/{name}", get_notifications)
    app.router.add_put("/v1/moderation/notifications/{name}", set_notifications)
