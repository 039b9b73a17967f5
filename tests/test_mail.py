"""Email (`service.mail`, `api.mail`) against a real SMTP server the tests start (aiosmtpd, in the test's loop) and
a real redis-server: every kind of email, its headers and language, outages and restarts, one-click links,
unsubscribing and reply subscriptions, a reader's data request and its link, moderators told of overdue reports."""

from __future__ import annotations

import asyncio
import email
import ipaddress
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from pydantic import SecretStr
from redis.asyncio import Redis
from support import ADMIN, decide, make_app, submit_comment

from service import keys
from service.appkeys import ACCOUNTS, MAIL, METRICS, SETTINGS
from service.clients import email_hash
from service.clock import now_ms
from service.embedded import free_port
from service.mail import links
from service.settings import Settings
from service.webhooks import event_payload

Client = TestClient[web.Request, web.Application]
FROM = "Báo Mẫu <binhluan@bao.example.vn>"
MODERATOR_PASSWORD = "một mật khẩu rất dài 2024"


class Sink:
    """A real SMTP server (aiosmtpd's protocol on an asyncio server of the test's loop): keeps every message it
    accepts; can refuse chosen recipients for good (550), and can be stopped and started on its port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: set[str] = set()
        self._server: asyncio.Server | None = None

    async def handle_RCPT(self, server: SMTPServer, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SMTPServer(self, hostname="sink.test", loop=loop),
                                                "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def wait_for(self, count: int, what: Callable[[EmailMessage], bool] = lambda m: True,
                       within: float = 30.0) -> list[EmailMessage]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = [m for m in self.messages if what(m)]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"{count} messages did not arrive; got {len(self.messages)}")


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    server = Sink()
    await server.start()
    yield server
    await server.stop()


def mail_settings(settings: Settings, smtp_url: str, **changes: Any) -> Settings:
    return settings.model_copy(update={
        "smtp_url": SecretStr(smtp_url), "mail_from": FROM, "mail_backoff_base_seconds": 0.1,
        "mail_timeout_seconds": 1.0, "mail_rejection_notice": True, "public_url": "https://binhluan.example.vn",
        **changes})


@pytest.fixture
def mailing(settings: Settings, sink: Sink) -> Settings:
    return mail_settings(settings, sink.url)


@pytest.fixture
async def client(aiohttp_client: Any, mailing: Settings) -> Client:
    made: Client = await aiohttp_client(make_app(mailing))
    return made


def text_part(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def links_in(text: str, path: str) -> list[str]:
    return re.findall(rf"https://binhluan\.example\.vn({re.escape(path)}[A-Za-z0-9_.-]+)", text)


def check_headers(message: EmailMessage, to: str) -> None:
    assert message["From"] == FROM and message["To"] == to
    assert message["Date"] and re.fullmatch(r"<[0-9a-f]{32}@bao\.example\.vn>", message["Message-ID"])
    unsubscribe = message["List-Unsubscribe"]
    assert re.fullmatch(r"<https://binhluan\.example\.vn/mail/unsubscribe/[A-Za-z0-9_.-]+>, "
                        r"<mailto:binhluan@bao\.example\.vn\?subject=unsubscribe%20[A-Za-z0-9_.-]+>", unsubscribe)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None


async def make_moderator(client: Client, name: str, **notifications: Any) -> None:
    people = client.app[ACCOUNTS]
    invited = await people.invite(name, people_role("moderator"), "admin")
    await people.accept(invited.token, MODERATOR_PASSWORD)
    response = await client.put(f"/v1/moderation/notifications/{name}", json=notifications, headers=ADMIN)
    assert response.status == 200, await response.text()


def people_role(role: str) -> Any:
    from service.accounts import AccountRole
    return AccountRole(role)


async def until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "the condition was not met in time"
        await asyncio.sleep(0.05)


# -- authors -------------------------------------------------------------------------------------------------

async def test_approval_email_in_the_readers_language_with_its_headers(client: Client, sink: Sink) -> None:
    hostile = "<b>đậm</b> & <script>alert(1)</script>"
    quiet = await submit_comment(client, "bai-1", email="quiet@example.com")  # no box ticked: no email
    loud = await submit_comment(client, "bai-1", email="reader@example.com", notify=True, lang="en",
                                name="Ann <i>", body=hostile)
    await decide(client, quiet["id"])
    await decide(client, loud["id"])
    [message] = await sink.wait_for(1)
    check_headers(message, "reader@example.com")
    assert message["Subject"] == "Your comment has been approved"
    assert sink.envelopes[0] == ("binhluan@bao.example.vn", ["reader@example.com"])
    text, page = text_part(message), html_part(message)
    assert hostile in text and "Hello Ann <i>," in text
    assert "<script>" not in page and "<b>đậm" not in page and "<i>" not in page
    assert "&lt;b&gt;đậm&lt;/b&gt; &amp; &lt;script&gt;" in page and "Ann &lt;i&gt;" in page
    assert f"https://binhluan.example.vn/demo/articles/bai-1#comment-{loud['id']}" in text
    assert not sink.to("quiet@example.com")


async def test_vietnamese_by_default_and_a_rejection_notice_with_its_reason(client: Client, sink: Sink) -> None:
    first = await submit_comment(client, "bai-2", email="lan@example.com", notify=True)
    spam = await submit_comment(client, "bai-2", email="lan@example.com", notify=True)
    await decide(client, spam["id"], "spam")  # spam is never told
    response = await client.post(f"/v1/moderation/comments/{first['id']}/decision",
                                 json={"action": "reject", "reason": "Lạc đề <b>"}, headers=ADMIN)
    assert response.status == 200
    [message] = await sink.wait_for(1)
    check_headers(message, "lan@example.com")
    assert message["Subject"] == "Bình luận của bạn không được duyệt"
    assert "Lý do của người kiểm duyệt: Lạc đề <b>" in text_part(message)
    assert "Lạc đề &lt;b&gt;" in html_part(message)
    approved = await submit_comment(client, "bai-2", email="lan@example.com", notify=True)
    await decide(client, approved["id"])
    later = await sink.wait_for(2)
    assert [m["Subject"] for m in later] == ["Bình luận của bạn không được duyệt", "Bình luận của bạn đã được duyệt"]


async def test_no_rejection_notice_unless_the_newspaper_turns_it_on(aiohttp_client: Any, settings: Settings,
                                                                    sink: Sink) -> None:
    client: Client = await aiohttp_client(make_app(mail_settings(settings, sink.url, mail_rejection_notice=False)))
    rejected = await submit_comment(client, "bai-3", email="lan@example.com", notify=True)
    approved = await submit_comment(client, "bai-3", email="lan@example.com", notify=True)
    await decide(client, rejected["id"], "reject")
    await decide(client, approved["id"])
    [message] = await sink.wait_for(1)
    assert message["Subject"] == "Bình luận của bạn đã được duyệt"


# -- moderators ------------------------------------------------------------------------------------------------

async def test_a_moderator_hears_of_each_new_comment_with_the_queue(client: Client, sink: Sink) -> None:
    await make_moderator(client, "Hương", email="huong@bao.example.vn", mode="each", lang="vi")
    for n in range(12):
        await submit_comment(client, "bai-4", title=f"Ý kiến {n} <x>", body="MUA NGAY TẠI http://spam.example")
    # Every email counts the queue when it is sent: a burst read after the twelfth was stored says 12 too.
    last = (await sink.wait_for(1, lambda m: m["Subject"] == "12 bình luận đang chờ duyệt"))[-1]
    check_headers(last, "huong@bao.example.vn")
    text = text_part(last)
    assert "12 bình luận đang chờ duyệt; bình luận cũ nhất đã chờ" in text and "Vừa có" in text
    assert len(links_in(text, "/mail/decide/")) == 20  # the first ten, each with approve and reject
    assert "Ý kiến 0 <x>" in text and "Ý kiến 10" not in text and "rủi ro:" in text
    assert "Ý kiến 0 &lt;x&gt;" in html_part(last)

    def told() -> int:  # comments a burst read together share one email: every new one is told once
        found = [re.search(r"Vừa có (một|\d+) bình luận mới", text_part(m)) for m in sink.to("huong@bao.example.vn")]
        return sum(1 if match[1] == "một" else int(match[1]) for match in found if match)

    await until(lambda: _true(told() == 12))
    assert len({m["Message-ID"] for m in sink.messages}) == len(sink.messages)


async def test_a_digest_every_n_minutes_only_while_comments_wait(client: Client, sink: Sink) -> None:
    await make_moderator(client, "Minh", email="minh@bao.example.vn", mode="digest", minutes=30, lang="en")
    mail = client.app[MAIL]
    assert await mail.digest_once() == 0  # nothing waits: no digest
    await submit_comment(client, "bai-5")
    await submit_comment(client, "bai-5")
    assert await mail.digest_once() == 1
    assert await mail.digest_once() == 0  # one per window, however often it is looked at
    [message] = await sink.wait_for(1)
    check_headers(message, "minh@bao.example.vn")
    assert message["Subject"] == "2 comments waiting for moderation"
    assert "A new one" not in text_part(message) and "Approve: https://" in text_part(message)


async def test_notification_settings_are_ones_own_and_validated(client: Client) -> None:
    await make_moderator(client, "Lan", email="lan@bao.example.vn", mode="none")
    response = await client.get("/v1/moderation/notifications/lan", headers=ADMIN)
    assert (await response.json()) == {"email": "lan@bao.example.vn", "mode": "none", "minutes": 30, "lang": "vi"}
    response = await client.put("/v1/moderation/notifications/lan", json={"email": "x", "mode": "each"},
                                headers=ADMIN)
    assert response.status == 422
    response = await client.put("/v1/moderation/notifications/lan", json={"email": None, "mode": "weekly"},
                                headers=ADMIN)
    assert response.status == 422
    assert (await client.get("/v1/moderation/notifications/lan")).status == 401


# -- one-click decision links ------------------------------------------------------------------------------------

async def test_a_decision_link_shows_on_get_and_decides_once_on_post(client: Client, sink: Sink,
                                                                     redis: Redis) -> None:
    await make_moderator(client, "Hương", email="huong@bao.example.vn", mode="each")
    submitted = await submit_comment(client, "bai-6", title="Tiêu đề <b>")
    [message] = await sink.wait_for(1)
    approve, reject = links_in(text_part(message), "/mail/decide/")
    page = await client.get(approve)
    assert page.status == 200 and page.content_type == "text/html"
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    body = await page.text()
    assert "<script" not in body and "style=" not in body and "Tiêu đề &lt;b&gt;" in body
    assert '<form method="post"' in body
    assert await redis.hget(keys.comment(submitted["id"]), "s") == b"pending"  # a GET decides nothing
    assert (await client.get(approve)).status == 200

    decided = await client.post(approve)
    assert decided.status == 200
    assert await redis.hget(keys.comment(submitted["id"]), "s") == b"approved"
    history = await client.get(f"/v1/moderation/comments/{submitted['id']}", headers=ADMIN)
    assert (await history.json())["decided_by"] == "Hương"
    again = await client.post(approve)
    assert again.status == 410 and "đã được dùng" in await again.text()
    assert (await client.get(approve)).status == 410
    late = await client.post(reject)  # another link of the same comment: the comment is decided already
    assert late.status == 409
    assert await redis.hget(keys.comment(submitted["id"]), "s") == b"approved"


async def test_expired_forged_and_malformed_links_are_refused(client: Client, redis: Redis) -> None:
    await make_moderator(client, "Hương", email="huong@bao.example.vn", mode="none")
    submitted = await submit_comment(client, "bai-7")
    secret = client.app[SETTINGS].secret
    expired = links.decision_link(secret, submitted["id"], "approve", "Hương", now_ms() - 1)
    forged = links.decision_link(b"another secret" * 4, submitted["id"], "approve", "Hương", now_ms() + 60_000)
    good = links.decision_link(secret, submitted["id"], "approve", "Hương", now_ms() + 60_000)
    for token in (expired, forged, good + "%0A", good[:-1] + ("A" if good[-1] != "A" else "B"),
                  links.unsubscribe_link(secret, "0" * 24)):
        for method in ("GET", "POST"):
            response = await client.request(method, f"/mail/decide/{token}")
            assert response.status in (404, 410), (token, method)
    assert await redis.hget(keys.comment(submitted["id"]), "s") == b"pending"
    assert links.read_decision(secret, good + "\n") is None and links.read_decision(secret, good) is not None


async def test_two_posts_of_one_link_at_once_decide_once(client: Client, redis: Redis) -> None:
    await make_moderator(client, "Hương", email="huong@bao.example.vn", mode="none")
    submitted = await submit_comment(client, "bai-8")
    token = links.decision_link(client.app[SETTINGS].secret, submitted["id"], "reject", "Hương", now_ms() + 60_000)
    statuses = sorted([r.status for r in await asyncio.gather(*(client.post(f"/mail/decide/{token}")
                                                                for _ in range(5)))])
    assert statuses == [200, 410, 410, 410, 410]
    # Decided once: the version went up once, and the one decision is the record's fields (no history list yet).
    assert await redis.hmget(keys.comment(submitted["id"]), "s", "v", "db") == [b"rejected", b"2", "Hương".encode()]
    assert await redis.exists(keys.history(submitted["id"])) == 0


# -- unsubscribing -------------------------------------------------------------------------------------------

async def test_one_click_unsubscribe_is_honoured_by_later_sends(client: Client, sink: Sink) -> None:
    first = await submit_comment(client, "bai-9", email="an@example.com", notify=True)
    await decide(client, first["id"])
    [message] = await sink.wait_for(1)
    url = re.search(r"<https://binhluan\.example\.vn(/mail/unsubscribe/[^>]+)>", message["List-Unsubscribe"])
    assert url is not None
    page = await client.get(url[1])
    assert page.status == 200 and "an@example.com" not in await page.text()
    assert not await client.app[MAIL].is_suppressed("an@example.com")  # a GET changes nothing
    done = await client.post(url[1], data="List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status == 200 and "an@example.com" not in await done.text()
    assert await client.app[MAIL].is_suppressed("AN@example.com")

    second = await submit_comment(client, "bai-9", email="an@example.com", notify=True)
    other = await submit_comment(client, "bai-9", email="binh@example.com", notify=True)
    await decide(client, second["id"])
    await decide(client, other["id"])
    await sink.wait_for(1, lambda m: m["To"] == "binh@example.com")
    metrics = client.app[METRICS].registry
    await until(lambda: _true(metrics.get_sample_value("comments_mail_total",
                                                       {"kind": "approved", "outcome": "suppressed"}) == 1.0))
    assert len(sink.to("an@example.com")) == 1


async def _true(value: bool) -> bool:
    return value


# -- reply subscriptions ---------------------------------------------------------------------------------------

async def test_replies_are_emailed_only_after_the_double_opt_in(client: Client, sink: Sink, redis: Redis) -> None:
    parent = await submit_comment(client, "bai-10", email="cha@example.com", notify=True, title="Gốc")
    await decide(client, parent["id"])
    [approval] = await sink.wait_for(1)
    [replies] = links_in(text_part(approval), "/mail/replies/")

    early = await submit_comment(client, "bai-10", email="con@example.com", parent_id=parent["id"], notify=True)
    await decide(client, early["id"])  # not confirmed yet: the parent's author hears nothing
    await sink.wait_for(1, lambda m: m["To"] == "con@example.com")

    assert (await client.get(replies)).status == 200
    assert len(sink.to("cha@example.com")) == 1  # a GET sends nothing
    assert (await client.post(replies)).status == 200
    [confirmation] = await sink.wait_for(1, lambda m: m["Subject"] == "Xác nhận: nhận email khi có trả lời")
    check_headers(confirmation, "cha@example.com")
    [confirm] = links_in(text_part(confirmation), "/mail/replies/confirm/")
    assert (await client.get(confirm)).status == 200
    assert await redis.hget(keys.comment(parent["id"]), "rs") is None
    assert (await client.post(confirm)).status == 200

    late = await submit_comment(client, "bai-10", email="chau@example.com", parent_id=parent["id"], title="Đáp <i>")
    await decide(client, late["id"])
    [reply] = await sink.wait_for(1, lambda m: m["Subject"] == "Có trả lời mới cho bình luận của bạn")
    check_headers(reply, "cha@example.com")
    assert "Đáp <i>" in text_part(reply) and "Đáp &lt;i&gt;" in html_part(reply)


async def test_an_author_asks_with_the_receipt(client: Client, sink: Sink) -> None:
    made = await submit_comment(client, "bai-11", email="tac.gia@example.com", lang="en")
    path = f"/v1/comments/{made['id']}/reply-subscription"
    assert (await client.post(path, headers={"Authorization": f"Receipt {made['receipt']}"})).status == 404
    await decide(client, made["id"])
    assert (await client.post(path)).status == 401
    response = await client.post(path, headers={"Authorization": f"Receipt {made['receipt']}"})
    assert response.status == 202
    [message] = await sink.wait_for(1)
    assert message["Subject"] == "Confirm: email me about replies" and message["To"] == "tac.gia@example.com"


# -- the mail server away, slow or silent; restarts ---------------------------------------------------------------

async def test_every_email_arrives_after_an_outage(client: Client, sink: Sink) -> None:
    await sink.stop()
    ids = []
    for n in range(4):
        made = await submit_comment(client, "bai-12", email=f"doc{n}@example.com", notify=True)
        await decide(client, made["id"])
        ids.append(made["id"])
    metrics = client.app[METRICS].registry
    await until(lambda: _true((metrics.get_sample_value("comments_mail_total",
                                                        {"kind": "approved", "outcome": "failed"}) or 0) >= 4))
    await asyncio.sleep(1.0)  # the outage goes on a while (30 s: test_outage_of_thirty_seconds)
    await sink.start()
    messages = await sink.wait_for(4)
    assert sorted(m["To"] for m in messages)[:4] == [f"doc{n}@example.com" for n in range(4)]
    assert {m["To"] for m in messages} == {f"doc{n}@example.com" for n in range(4)}


@pytest.mark.slow
async def test_outage_of_thirty_seconds(aiohttp_client: Any, settings: Settings, sink: Sink) -> None:
    client: Client = await aiohttp_client(make_app(mail_settings(settings, sink.url,
                                                                   mail_backoff_base_seconds=1.0)))
    await sink.stop()
    for n in range(5):
        made = await submit_comment(client, "bai-13", email=f"doc{n}@example.com", notify=True)
        await decide(client, made["id"])
    await asyncio.sleep(30)
    await sink.start()
    messages = await sink.wait_for(5, within=100)
    assert {m["To"] for m in messages} == {f"doc{n}@example.com" for n in range(5)}


async def test_a_restart_between_the_decision_and_the_send_loses_nothing(aiohttp_client: Any, settings: Settings,
                                                                          sink: Sink) -> None:
    mailing = mail_settings(settings, sink.url)
    await sink.stop()
    first: Client = await aiohttp_client(make_app(mailing))
    made = [await submit_comment(first, "bai-14", email=f"doc{n}@example.com", notify=True) for n in range(3)]
    for comment in made:
        await decide(first, comment["id"])
    await first.close()  # the service stops: whatever it read and did not send is in Redis

    await sink.start()
    second: Client = await aiohttp_client(make_app(mailing))
    second.app[MAIL].outbox.stale_entry_ms = 200  # take over what the stopped process read at once
    second.app[MAIL].outbox.reclaim_every_seconds = 0.2
    messages = await sink.wait_for(3)
    assert {m["To"] for m in messages} == {f"doc{n}@example.com" for n in range(3)}


async def test_a_server_that_never_answers_holds_up_no_request(aiohttp_client: Any, settings: Settings,
                                                               redis: Redis) -> None:
    silent_port = free_port()
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", silent_port)
    try:
        client: Client = await aiohttp_client(make_app(mail_settings(settings, f"smtp://127.0.0.1:{silent_port}")))
        await make_moderator(client, "Hương", email="huong@bao.example.vn", mode="each")
        for n in range(5):  # figures: bench/mail_bench.py; no timing is asserted here
            made = await submit_comment(client, "bai-15", email=f"doc{n}@example.com", notify=True)
            await decide(client, made["id"])
        await until(lambda: _true(len(held) >= 2))  # sends were tried, and hang
        metrics = client.app[METRICS].registry
        await until(lambda: _true((metrics.get_sample_value("comments_mail_total",
                                                            {"kind": "approved", "outcome": "failed"}) or 0) >= 1))
    finally:
        for writer in held:
            writer.close()
        silent.close()
        await silent.wait_closed()


# -- suppression and limits --------------------------------------------------------------------------------------

async def test_an_address_refused_for_good_several_times_is_suppressed(aiohttp_client: Any, settings: Settings,
                                                                       sink: Sink) -> None:
    client: Client = await aiohttp_client(make_app(mail_settings(settings, sink.url, mail_bounce_limit=2)))
    sink.refuse.add("gone@example.com")
    made = await submit_comment(client, "bai-16", email="gone@example.com", notify=True)
    await decide(client, made["id"])
    mail = client.app[MAIL]
    await until(lambda: mail.is_suppressed("gone@example.com"))
    metrics = client.app[METRICS].registry
    await until(lambda: _true(metrics.get_sample_value("comments_mail_total",
                                                       {"kind": "approved", "outcome": "suppressed"}) == 1.0))
    assert metrics.get_sample_value("comments_mail_total", {"kind": "approved", "outcome": "failed"}) == 2.0


async def test_per_address_limit_drops_the_excess(aiohttp_client: Any, settings: Settings, sink: Sink) -> None:
    client: Client = await aiohttp_client(make_app(mail_settings(settings, sink.url,
                                                                   mail_limit_address=(2, 3600))))
    for _ in range(3):
        made = await submit_comment(client, "bai-17", email="nhieu@example.com", notify=True)
        await decide(client, made["id"])
    other = await submit_comment(client, "bai-17", email="khac@example.com", notify=True)
    await decide(client, other["id"])
    await sink.wait_for(1, lambda m: m["To"] == "khac@example.com")
    metrics = client.app[METRICS].registry
    await until(lambda: _true(metrics.get_sample_value("comments_mail_total",
                                                       {"kind": "approved", "outcome": "limited"}) == 1.0))
    assert len(sink.to("nhieu@example.com")) == 2


# -- privacy and switching it off ----------------------------------------------------------------------------------

async def test_outbox_entries_and_webhook_payloads_carry_no_email(client: Client, sink: Sink, redis: Redis) -> None:
    made = await submit_comment(client, "bai-18", email="kin@example.com", notify=True)
    response = await client.post(f"/v1/moderation/comments/{made['id']}/decision",
                                 json={"action": "reject", "reason": "Spam"}, headers=ADMIN)
    assert response.status == 200
    await sink.wait_for(1)
    stream = keys.outbox(keys.partition_of_comment(made["id"]))
    entries: Any = await redis.xrange(stream)
    assert len(entries) == 2
    for entry_id, raw in entries:
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        assert not any("@" in value for value in fields.values())
        assert b"@" not in event_payload(entry_id.decode(), fields)


async def test_without_smtp_email_is_off(aiohttp_client: Any, settings: Settings, tmp_path: Path) -> None:
    assert not settings.mail_enabled
    client: Client = await aiohttp_client(make_app(settings))
    script = await (await client.get("/widget.js")).text()
    assert "var MAIL = /*__WIDGET_MAIL__*/false;" in script
    token = links.unsubscribe_link(settings.secret, "0" * 24)
    assert (await client.get(f"/mail/unsubscribe/{token}")).status == 404
    made = await submit_comment(client, "bai-19", notify=True)  # accepted, and nothing is sent
    await decide(client, made["id"])
    on: Client = await aiohttp_client(make_app(mail_settings(settings, "smtp://127.0.0.1:1")))
    assert "var MAIL = true;" in await (await on.get("/widget.js")).text()


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "smtp://host:port", "mail.example:25"])
def test_smtp_urls_are_checked_without_echoing_them(url: str) -> None:
    from pydantic import ValidationError

    from service.settings import describe
    with pytest.raises(ValidationError) as raised:
        Settings(smtp_url=SecretStr(url.replace("//", "//user:hunter2@", 1) if "//" in url else url))
    assert "hunter2" not in describe(raised.value)


def test_starttls_is_required_off_loopback() -> None:
    from service.mail.smtp import Server
    assert Server.from_url("smtp://u:p%40ss@mail.example", 5).start_tls is True
    assert Server.from_url("smtp://mail.example", 5).port == 587
    remote = Server.from_url("smtps://u:p%40ss@mail.example", 5)
    assert (remote.implicit_tls, remote.port, remote.password) == (True, 465, "p@ss")
    assert Server.from_url("smtp://127.0.0.1:2525", 5).start_tls is None


# -- a reader's data request (“Dữ liệu của tôi”) ------------------------------------------------------------------

def check_transactional_headers(message: EmailMessage, to: str) -> None:
    """A data request's email: the headers of every email but List-Unsubscribe (there is no list to leave)."""
    assert message["From"] == FROM and message["To"] == to
    assert message["Date"] and re.fullmatch(r"<[0-9a-f]{32}@bao\.example\.vn>", message["Message-ID"])
    assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None


async def no_request_items(redis: Redis) -> bool:
    return await redis.xlen(keys.data_request_mail()) == 0


async def test_a_data_request_emails_a_link_that_exports_and_erases(client: Client, sink: Sink,
                                                                    redis: Redis) -> None:
    item = await submit_comment(client, "self-1", email="mai@example.vn", name="Mai", body="Của Mai.")
    await decide(client, item["id"], "approve")
    response = await client.post("/v1/privacy/requests", json={"email": "mai@example.vn", "kind": "export"})
    assert response.status == 202 and (await response.json()) == {"status": "sent"}
    # an address without data is answered alike, and no link is told to the client
    response = await client.post("/v1/privacy/requests", json={"email": "ghost@example.vn", "kind": "export",
                                                               "lang": "en"})
    assert response.status == 202 and b"/privacy/" not in await response.read()

    [mine] = await sink.wait_for(1, lambda m: m["To"] == "mai@example.vn")
    [ghost] = await sink.wait_for(1, lambda m: m["To"] == "ghost@example.vn")
    check_transactional_headers(mine, "mai@example.vn")
    assert mine["Subject"] == "Liên kết tới dữ liệu của bạn" and ghost["Subject"] == "The link to your data"
    assert "Tải về dữ liệu của bạn" in html_part(mine) and "24 giờ" in text_part(mine)
    assert "Hủy đăng ký" not in html_part(mine) and "/mail/unsubscribe/" not in text_part(mine)
    [path] = links_in(text_part(mine), "/privacy/")
    assert [path] == links_in(html_part(mine), "/privacy/")
    assert links_in(text_part(ghost), "/privacy/") != [path]
    await until(lambda: no_request_items(redis))  # the address left the stream once its email was queued

    page = await client.get(path)
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    download = await client.get(path + "/export")
    assert download.status == 200 and "attachment" in download.headers["Content-Disposition"]
    assert [c["id"] for c in (await download.json())["comments"]] == [item["id"]]
    assert (await client.post(path + "/erase", data={"mode": "delete"})).status == 404  # an export link

    await client.post("/v1/privacy/requests", json={"email": "mai@example.vn", "kind": "erase"})
    [erase] = await sink.wait_for(1, lambda m: m["To"] == "mai@example.vn" and m["Message-ID"] != mine["Message-ID"])
    check_transactional_headers(erase, "mai@example.vn")
    assert "xác nhận" in text_part(erase) and "chỉ dùng được một lần" in text_part(erase)
    [path] = links_in(text_part(erase), "/privacy/")
    assert "Xóa hẳn" in await (await client.get(path)).text()
    done = await client.post(path + "/erase", data={"mode": "delete"})
    assert done.status == 200, await done.text()
    exported = await client.post("/v1/privacy/export", json={"email": "mai@example.vn"}, headers=ADMIN)
    assert (await exported.json())["comments"] == []
    assert (await client.post(path + "/erase", data={"mode": "delete"})).status == 404  # once
    public = await (await client.get("/v1/articles/self-1/comments")).json()
    assert public["comments"] == []
    log = await (await client.get("/v1/privacy/log", headers=ADMIN)).json()
    assert log["entries"][0]["requested_by"] == log["entries"][0]["run_by"] == "self-service"


async def test_a_data_request_reaches_an_unsubscribed_address_not_a_refusing_one(client: Client, sink: Sink,
                                                                                  redis: Redis) -> None:
    mail = client.app[MAIL]
    secret = client.app[SETTINGS].secret
    await mail.suppress(email_hash(secret, "left@example.vn"), "unsubscribed")
    await mail.suppress(email_hash(secret, "gone@example.vn"), "bounced")
    for address in ("gone@example.vn", "left@example.vn"):
        response = await client.post("/v1/privacy/requests", json={"email": address, "kind": "export"})
        assert response.status == 202
    [message] = await sink.wait_for(1, lambda m: m["To"] == "left@example.vn")  # asked for: it is sent
    check_transactional_headers(message, "left@example.vn")
    metrics = client.app[METRICS].registry
    await until(lambda: _true(metrics.get_sample_value("comments_mail_total",
                                                       {"kind": "data_request", "outcome": "suppressed"}) == 1.0))
    assert not sink.to("gone@example.vn")
    # an item that is not what privacy.py writes, or whose link expired, is dropped, never sent
    await redis.xadd(keys.data_request_mail(), {"type": "data_request", "to": "x@example.vn", "kind": "export",
                                                "link": "https://evil.example/privacy/x", "expires": now_ms() + 9_000})
    await redis.xadd(keys.data_request_mail(), {"type": "data_request", "to": "y@example.vn", "kind": "export",
                                                "link": "https://binhluan.example.vn/privacy/y", "expires": 1})
    await until(lambda: no_request_items(redis))
    assert metrics.get_sample_value("comments_mail_total", {"kind": "data_request", "outcome": "malformed"}) == 1.0
    assert metrics.get_sample_value("comments_mail_total", {"kind": "data_request", "outcome": "expired"}) == 1.0
    assert not sink.to("x@example.vn") and not sink.to("y@example.vn")


async def test_without_email_there_is_no_data_request(aiohttp_client: Any, settings: Settings,
                                                      redis: Redis) -> None:
    client: Client = await aiohttp_client(make_app(settings))
    response = await client.post("/v1/privacy/requests", json={"email": "mai@example.vn", "kind": "export"})
    assert response.status == 404  # no link could reach the reader: nothing is kept
    assert await redis.xlen(keys.data_request_mail()) == 0


# -- moderators: reports waiting too long ----------------------------------------------------------------------

async def test_moderators_hear_once_of_each_overdue_report(aiohttp_client: Any, settings: Settings, sink: Sink,
                                                           redis: Redis) -> None:
    client: Client = await aiohttp_client(make_app(mail_settings(
        settings, sink.url, trusted_proxies=[ipaddress.ip_network("127.0.0.0/8")])))
    mail = client.app[MAIL]
    await make_moderator(client, "Hương", email="huong@bao.example.vn", mode="digest", minutes=600, lang="vi")
    await make_moderator(client, "Minh", email="minh@bao.example.vn", mode="each", lang="en")
    await make_moderator(client, "Lan", email="lan@bao.example.vn", mode="none")
    reported = await submit_comment(client, "bai-20", title="Tiêu đề <b>", body="Nội dung bị báo")
    recent = await submit_comment(client, "bai-20")
    for made in (reported, recent):
        await decide(client, made["id"])

    async def report(comment_id: str, reader: int) -> None:
        response = await client.post(f"/v1/comments/{comment_id}/reports", json={"reason": "offensive"},
                                     headers={"X-Forwarded-For": f"198.51.100.{reader}"})
        assert response.status == 202, await response.text()

    async def overdue(comment_id: str, hours: int) -> None:  # its first open report came `hours` ago
        added = await redis.zadd(keys.reported(keys.partition_of_comment(comment_id)),
                                 {comment_id: now_ms() - hours * 3_600_000}, xx=True, ch=True)
        assert added == 1

    async def settled() -> bool:  # every email made so far is sent (or dropped)
        return await redis.zcard(keys.mail_due()) == 0

    def alerts(to: str) -> list[EmailMessage]:
        return [m for m in sink.to(to) if "giờ" in m["Subject"] or "hours" in m["Subject"]]

    for reader in (1, 2):
        await report(reported["id"], reader)
    await report(recent["id"], 3)
    await overdue(reported["id"], 25)
    await mail.overdue_once()
    assert await mail.overdue_once() == 0  # told already: this period is over only when the reports are resolved
    [vi] = await sink.wait_for(1, lambda m: m["Subject"] == "1 bình luận bị báo vi phạm đã chờ quá 24 giờ")
    [en] = await sink.wait_for(1, lambda m: m["Subject"] == "Reported comments waiting over 24 hours: 1")
    check_headers(vi, "huong@bao.example.vn")
    check_headers(en, "minh@bao.example.vn")
    assert "Tiêu đề <b>" in text_part(vi) and "2 lượt báo, lượt đầu cách đây 25 giờ" in text_part(vi)
    assert "Tiêu đề &lt;b&gt;" in html_part(vi) and "Nội dung bị báo" in html_part(vi)
    assert "https://binhluan.example.vn/moderation/#/reported" in text_part(en)
    await until(settled)
    assert len(alerts("huong@bao.example.vn")) == len(alerts("minh@bao.example.vn")) == 1
    assert not sink.to("lan@bao.example.vn")

    # kept: the reports are resolved; a later report that waits too long again starts a new period
    response = await client.post(f"/v1/moderation/reports/{reported['id']}/decision", json={"action": "keep"},
                                 headers=ADMIN)
    assert response.status == 200, await response.text()
    await mail.overdue_once()
    assert await redis.hget(keys.mail_overdue(), reported["id"]) is None
    await report(reported["id"], 4)
    await overdue(reported["id"], 30)
    await mail.overdue_once()
    await sink.wait_for(2, lambda m: m["To"] == "huong@bao.example.vn" and "24 giờ" in m["Subject"])
    await until(settled)
    assert len(alerts("huong@bao.example.vn")) == len(alerts("minh@bao.example.vn")) == 2
