"""What an email says and how it is put together: Jinja2 templates (package files under
`service/templates/mail/`, HTML autoescaped: a reader's `<b>` arrives as text), a plain-text and an HTML part in
the reader's language, and the headers every email carries.

Headers: From, To, optional Reply-To, Subject (fixed words and numbers only, never a reader's text), Date,
Message-ID (`<job id@sender's domain>`: the job id derives from the event and the recipient, so a repeat of an
at-least-once send carries the same id), List-Unsubscribe (an https and a mailto URI) with
List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058), and Auto-Submitted: auto-generated (RFC 3834).
A transactional email the reader asked for just now (`TRANSACTIONAL`: the link of a data request) has no
List-Unsubscribe: there is no list to leave.
The message is rendered once, when its job is made: every attempt sends the same bytes. Header values
never hold reader text (the To address is the author's, validated by `models.Email` at submission).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import cache
from typing import Any, Final, Literal
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from service.i18n import Lang

Kind = Literal["approved", "rejected", "reply", "reply_confirm", "moderator", "data_request", "report_overdue",
               "password_reset"]
KINDS: Final[tuple[Kind, ...]] = ("approved", "rejected", "reply", "reply_confirm", "moderator", "data_request",
                                  "report_overdue", "password_reset")
#: Emails a reader (or a moderator: a password reset) asked for with a form just now: no List-Unsubscribe, and an
#: unsubscribed address still gets them (`mailer.Mail._attempt`).
TRANSACTIONAL: Final[frozenset[Kind]] = frozenset({"data_request", "password_reset"})

SUBJECTS: Final[dict[Kind, tuple[str, str]]] = {
    "approved": ("Bình luận của bạn đã được duyệt", "Your comment has been approved"),
    "rejected": ("Bình luận của bạn không được duyệt", "Your comment was not approved"),
    "reply": ("Có trả lời mới cho bình luận của bạn", "A new reply to your comment"),
    "reply_confirm": ("Xác nhận: nhận email khi có trả lời", "Confirm: email me about replies"),
    "moderator": ("{count} bình luận đang chờ duyệt", "{count} comments waiting for moderation"),
    "data_request": ("Liên kết tới dữ liệu của bạn", "The link to your data"),
    "report_overdue": ("{count} bình luận bị báo vi phạm đã chờ quá {hours} giờ",
                       "Reported comments waiting over {hours} hours: {count}"),
    "password_reset": ("Đặt lại mật khẩu kiểm duyệt", "Reset your moderation password"),
}
#: The words of the link pages (`api.mail`); placeholders are `{name}`.
PAGE_TEXT: Final[dict[str, tuple[str, str]]] = {
    "decide.approve": ("Duyệt bình luận này?", "Approve this comment?"),
    "decide.reject": ("Từ chối bình luận này?", "Reject this comment?"),
    "decide.explain": ("Bấm nút để xác nhận. Liên kết chỉ dùng được một lần.",
                       "Press the button to confirm. The link works once."),
    "decide.approved": ("Đã duyệt bình luận", "The comment is approved"),
    "decide.rejected": ("Đã từ chối bình luận", "The comment is rejected"),
    "decide.done": ("Quyết định đã được ghi lại.", "The decision is recorded."),
    "unsubscribe.title": ("Hủy đăng ký nhận email?", "Unsubscribe?"),
    "unsubscribe.explain": ("Địa chỉ email nhận được liên kết này sẽ không nhận thêm thư nào từ chúng tôi.",
                            "The email address this link was sent to will get no more emails from us."),
    "unsubscribe.button": ("Hủy đăng ký", "Unsubscribe"),
    "unsubscribe.done": ("Đã hủy đăng ký", "Unsubscribed"),
    "unsubscribe.done_text": ("Chúng tôi sẽ không gửi thêm thư nào tới địa chỉ này.",
                              "We will send no more emails to this address."),
    "replies.title": ("Nhận email khi có trả lời?", "Email me about replies?"),
    "replies.explain": ("Mỗi khi có trả lời cho bình luận “{title}” được duyệt, chúng tôi sẽ gửi email cho bạn. "
                        "Trước hết, chúng tôi gửi một thư để bạn xác nhận.",
                        "Each time a reply to your comment “{title}” is approved, we will email you. First, we "
                        "send an email for you to confirm."),
    "replies.button": ("Gửi thư xác nhận", "Send the confirmation email"),
    "replies.sent": ("Đã gửi thư xác nhận", "Confirmation email sent"),
    "replies.sent_text": ("Hãy mở liên kết trong thư để xác nhận.", "Open the link in that email to confirm."),
    "confirm.title": ("Xác nhận nhận email khi có trả lời?", "Confirm: email me about replies?"),
    "confirm.explain": ("Bạn sẽ nhận email mỗi khi có trả lời cho bình luận “{title}” được duyệt.",
                        "You will get an email each time a reply to your comment “{title}” is approved."),
    "confirm.button": ("Xác nhận", "Confirm"),
    "confirm.done": ("Đã xác nhận", "Confirmed"),
    "confirm.done_text": ("Bạn sẽ nhận email khi có trả lời cho bình luận “{title}” được duyệt.",
                          "You will get an email when a reply to your comment “{title}” is approved."),
}
#: Long comments are cut in moderators' emails (the console shows them whole).
EXCERPT_MAX: Final = 300


@cache
def environment() -> Environment:
    return Environment(loader=PackageLoader("service", "templates/mail"), undefined=StrictUndefined,
                       autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def excerpt(text: str, limit: int = EXCERPT_MAX) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def age(seconds: float, lang: Lang) -> str:
    """How long something waited, in words: "5 phút", "2 h 10 min"."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "dưới 1 phút" if lang == "vi" else "under a minute"
    if minutes < 60:
        return f"{minutes} phút" if lang == "vi" else f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} giờ {rest} phút" if lang == "vi" else f"{hours} h {rest} min"
    return f"{hours // 24} ngày" if lang == "vi" else f"{hours // 24} days"


def render_page(**context: Any) -> str:
    """One of the service's small HTML pages of links (`api.mail`): no script, no inline style."""
    return environment().get_template("page.html").render(**context)


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who sends, to whom, and the links every email carries."""

    sender: str  #: the From header
    reply_to: str | None
    to: str
    unsubscribe_https: str  #: empty for a transactional email: no List-Unsubscribe
    unsubscribe_mailto: str
    newspaper: str


def subject(kind: Kind, lang: Lang, **values: Any) -> str:
    vi, en = SUBJECTS[kind]
    return (vi if lang == "vi" else en).format(**values)


def compose(kind: Kind, lang: Lang, envelope: Envelope, message_id: str, context: dict[str, Any],
            now: datetime | None = None) -> bytes:
    """The whole message, ready for SMTP: CRLF lines, 7-bit (non-ASCII headers as RFC 2047 encoded words, both
    parts base64). Written out here rather than with `email.message.EmailMessage`, whose header objects cost
    about 10 ms a message (measured: bench/mail_bench.py), on the event loop that serves readers."""
    title = subject(kind, lang, **context)
    values = {**context, "lang": lang, "subject": title, "newspaper": envelope.newspaper,
              "unsubscribe_url": envelope.unsubscribe_https}
    templates = environment()
    text = templates.get_template(f"{kind}.txt").render(values)
    page = templates.get_template(f"{kind}.html").render(values)
    boundary = "=_" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
    headers = [("From", _address(envelope.sender)), ("To", _address(envelope.to))]
    if envelope.reply_to:
        headers.append(("Reply-To", _address(envelope.reply_to)))
    headers += [
        ("Subject", _words(title)),
        ("Date", format_datetime(now or datetime.now(UTC))),
        ("Message-ID", message_id),
    ]
    if envelope.unsubscribe_https:
        # Folded after the comma: each URI keeps to a line of its own.
        headers += [("List-Unsubscribe", f"<{envelope.unsubscribe_https}>,\r\n <{envelope.unsubscribe_mailto}>"),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
    headers += [
        ("Auto-Submitted", "auto-generated"),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    lines = [f"{name}: {_header_value(value)}" for name, value in headers]
    lines.append("")
    for subtype, body in (("plain", text), ("html", page)):
        lines += [f"--{boundary}", f'Content-Type: text/{subtype}; charset="utf-8"',
                  "Content-Transfer-Encoding: base64", "",
                  base64.encodebytes(body.encode()).decode().rstrip("\n").replace("\n", "\r\n")]
    lines += [f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("ascii")


def _header_value(value: str) -> str:
    """A header's value as given, refused if it could end the header (CR or LF outside our own folding)."""
    if "\n" in value.replace("\r\n ", "") or "\r" in value.replace("\r\n ", ""):
        raise ValueError("a header value may not hold a line break")
    return value


def _words(text: str) -> str:
    """Text for a header: as it is in ASCII, else RFC 2047 encoded words (folded)."""
    return text if text.isascii() else Header(text, "utf-8", header_name="Subject").encode(linesep="\r\n")


def _address(value: str) -> str:
    """An address header: "Báo <a@b.vn>" with the display name encoded when it is not ASCII."""
    name, address = parseaddr(value)
    if not address or any(ch in address for ch in "\r\n"):
        raise ValueError("not an address")
    return formataddr((name, address), charset="utf-8") if name else address


def message_id(job_id: str, sender: str) -> str:
    domain = sender.rpartition("@")[2].strip("<> ") or "localhost"
    return f"<{job_id}@{domain}>" if job_id else make_msgid(domain=domain)


def mailto(address: str, token: str) -> str:
    """The List-Unsubscribe mailto URI: a message to `address` whose subject carries the token."""
    return f"mailto:{address}?subject={quote('unsubscribe ' + token)}"
