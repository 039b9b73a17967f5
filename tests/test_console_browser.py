"""The moderation console (`/moderation/`) in Debian's headless Chromium, against the real service on a real Redis
over real HTTP: a person invited on the command line sets a password, signs in and decides by keyboard; two
moderators share the queue; the session refuses cross-site use; hostile text stays text; search folds diacritics;
the stats charts draw real decisions; axe-core finds nothing serious. Screenshots go to artifacts/console/.

Without Chromium the tests skip locally and fail when CI is set (as tests/test_widget_browser.py's do).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, Response
from support import RedisServer
from test_accessibility import Audits
from test_widget_browser import Api, api, article_id, base, chromium, http

from service.settings import Settings

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "console"
PASSWORD = "ngựa vằn ăn cỏ buổi sáng"
ADMIN = {"Authorization": "Bearer test-admin-token"}
#: Another site, served by the same test server: Chromium resolves it to loopback.
OTHER_SITE = "evil.test"
#: The widget tests' fixtures, found by pytest under these names.
FIXTURES = (api, base, http)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium("console", f"--host-resolver-rules=MAP {OTHER_SITE} 127.0.0.1") as launched:
        yield launched


# --- helpers ---


async def make_person(http: aiohttp.ClientSession, base: str, name: str, role: str = "moderator") -> None:
    """An admin invites `name` (by the API) and the person accepts (by the API)."""
    async with http.post(f"{base}/v1/accounts/invitations", json={"name": name, "role": role}, headers=ADMIN) as r:
        assert r.status == 201, await r.text()
        token = (await r.json())["link"].rsplit("/", 1)[1]
    async with http.post(f"{base}/v1/accounts/invitations/{token}/accept", json={"password": PASSWORD}) as r:
        assert r.status == 201, await r.text()


async def new_page(browser: Browser, width: int = 1280, *, bypass_csp: bool = False) -> tuple[Page, list[str]]:
    context = await browser.new_context(viewport={"width": width, "height": 900}, locale="vi-VN",
                                        bypass_csp=bypass_csp)
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    return page, problems


async def sign_in(page: Page, base: str, name: str) -> None:
    await page.goto(f"{base}/moderation/")
    await page.get_by_label("Tên đăng nhập").fill(name)
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.locator(".top .person").wait_for()


async def current_id(page: Page) -> str | None:
    card = page.locator(".card.is-current")
    return await card.get_attribute("data-id") if await card.count() else None


async def moderator_view(http: aiohttp.ClientSession, base: str, comment_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/v1/moderation/comments/{comment_id}", headers=ADMIN) as r:
        assert r.status == 200, await r.text()
        record: dict[str, Any] = await r.json()
    return record


async def eventually(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 15) -> None:
    """Wait for `check` (the console's requests finish after the cards move on); not a timing assertion."""
    for _ in range(int(seconds * 10)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


async def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


# --- 1. invitation on the command line, a password, and 20 decisions by keyboard ---


@pytest.mark.timeout(300)
async def test_invite_sign_in_and_decide_twenty_by_keyboard(
        browser: Browser, base: str, api: Api, http: aiohttp.ClientSession, settings: Settings,
        redis_server: RedisServer) -> None:
    name = f"Lan{secrets.token_hex(2)}"
    env = {**os.environ, "COMMENTS_REDIS_URL": redis_server.url, "COMMENTS_PUBLIC_URL": base,
           "COMMENTS_DATA_DIR": str(settings.data_dir)}
    invited = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "service", "users", "invite", "--role", "moderator", "--name", name],
        env=env, capture_output=True, text=True, timeout=60, check=False)
    assert invited.returncode == 0, invited.stderr
    link = invited.stdout.strip().splitlines()[0]
    assert link.startswith(f"{base}/moderation/invite/cmi_"), link

    article = article_id("kb")
    ids = [(await api.submit(article, name=f"Bạn đọc {i}", title=f"Ý kiến {i}", body=f"Nội dung số {i}."))["id"]
           for i in range(22)]

    page, problems = await new_page(browser)
    await page.goto(f"{base}/moderation/#/invite/{link.rsplit('/', 1)[1]}")
    await page.get_by_text(f"Lời mời cho {name}").wait_for()
    await page.get_by_label("Mật khẩu mới", exact=True).fill(PASSWORD)
    await page.get_by_label("Nhập lại mật khẩu mới").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.get_by_text("Đã đặt mật khẩu. Mời bạn đăng nhập.").wait_for()
    assert await page.get_by_label("Tên đăng nhập").input_value() == name
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.locator(".card.is-current").wait_for()
    assert await page.evaluate("() => document.activeElement.classList.contains('card')")
    assert await page.locator(".cards .card").count() == 20  # one batch claimed

    expected: dict[str, tuple[str, str]] = {}  # id -> (state, reason)

    async def decide(key: str) -> str:
        """Decide the current card with `key` (r: reject with the dialog's second reason); returns its id."""
        chosen = await current_id(page)
        assert chosen is not None
        await page.keyboard.press(key)
        if key == "r":
            await page.get_by_role("dialog").wait_for()
            await page.keyboard.press("ArrowDown")  # the second reason, "Xúc phạm"
            await page.keyboard.press("Enter")
        await page.locator(f'.card[data-id="{chosen}"]').wait_for(state="detached")
        state, reason = {"a": ("approved", ""), "r": ("rejected", "Xúc phạm"), "s": ("spam", "")}[key]
        expected[chosen] = (state, reason)
        return chosen

    keys = "ars"
    for i in range(20):
        if i == 7:  # j skips a card, the next one is decided, k comes back to the skipped one
            skipped = await current_id(page)
            await page.keyboard.press("j")
            moved = await current_id(page)
            assert moved != skipped
            assert await decide("a") == moved
            await page.keyboard.press("k")
            assert await current_id(page) == skipped
            continue
        decided = await decide(keys[i % 3])
        if i == 12:  # changed my mind: u brings it back (current again), then it is marked as spam
            await page.locator(".toasts .toast").filter(has_text="Hoàn tác").first.wait_for()
            await page.keyboard.press("u")
            await page.locator(f'.card.is-current[data-id="{decided}"]').wait_for()
            await page.locator(".toasts").filter(has_text="Đã hoàn tác").wait_for()
            assert await decide("s") == decided
    assert len(expected) == 20

    async def all_decided() -> bool:
        views = [await moderator_view(http, base, comment_id) for comment_id in expected]
        return all(v["state"] == expected[v["id"]][0] for v in views)

    await eventually(all_decided, "every decision reported by the API")
    for comment_id, (state, reason) in expected.items():
        view = await moderator_view(http, base, comment_id)
        assert view["state"] == state and view["decided_by"] == name
        last = view["history"][-1]
        assert (last["to_state"], last["reason"], last["by"]) == (state, reason, name)
    histories = {c: [e["action"] for e in (await moderator_view(http, base, c))["history"]] for c in expected}
    undone = [c for c, actions in histories.items() if "undo" in actions]
    assert len(undone) == 1 and histories[undone[0]] == ["approve", "undo", "spam"]

    # the two left are mine until I sign out; then anyone may claim them
    left = [i for i in ids if i not in expected]
    assert sorted(await page.locator(".cards .card").evaluate_all("(cards) => cards.map((c) => c.dataset.id)")) \
        == sorted(left)
    async with http.get(f"{base}/v1/moderation/queue", headers=ADMIN) as r:
        assert {c["claimed_by"] for c in (await r.json())["comments"]} == {name}
    await shoot(page, "queue-keyboard-done-1280")
    await page.get_by_role("button", name="Đăng xuất").click()
    await page.get_by_role("button", name="Đăng nhập").wait_for()
    async with http.get(f"{base}/v1/moderation/queue", headers=ADMIN) as r:
        assert {c["claimed_by"] for c in (await r.json())["comments"]} == {None}
    assert problems == []


# --- 2. two moderators at once ---


@pytest.mark.timeout(120)
async def test_the_invitation_link_itself_sets_the_password(
        browser: Browser, base: str, http: aiohttp.ClientSession) -> None:
    """The link as printed (a script-free page) works in a real browser: its form's POST passes the same-origin
    check, and the person can then sign in."""
    name = f"Hoa{secrets.token_hex(2)}"
    async with http.post(f"{base}/v1/accounts/invitations", json={"name": name, "role": "moderator"},
                         headers=ADMIN) as response:
        assert response.status == 201, await response.text()
        link = (await response.json())["link"]  # built from COMMENTS_PUBLIC_URL; the test server is elsewhere
    page, problems = await new_page(browser)
    await page.goto(base + "/moderation/invite/" + link.rsplit("/", 1)[1])
    await page.get_by_label("Mật khẩu").fill(PASSWORD)
    await page.get_by_role("button", name="Đặt mật khẩu").click()
    await page.get_by_role("heading", name="Đã đặt mật khẩu").wait_for()
    await sign_in(page, base, name)
    assert problems == []
    await page.context.close()


@pytest.mark.timeout(120)
async def test_forgot_password_and_the_reset_link_by_keyboard(
        browser: Browser, base: str, http: aiohttp.ClientSession) -> None:
    """The sign-in page asks for a reset by name (the same answer for any name), and an admin's reset link (a
    script-free page) sets a new password by keyboard alone, with which the person then signs in."""
    name = f"Quy{secrets.token_hex(2)}"
    await make_person(http, base, name)
    page, problems = await new_page(browser)
    await page.goto(f"{base}/moderation/")
    await page.get_by_label("Tên đăng nhập").fill(name)
    await page.get_by_role("button", name="Quên mật khẩu?").focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", name="Quên mật khẩu").wait_for()
    assert await page.get_by_label("Tên đăng nhập").input_value() == name
    await page.keyboard.press("Enter")  # the name field has the focus
    await page.get_by_role("status").filter(has_text="liên kết đã được gửi").wait_for()

    async with http.post(f"{base}/v1/accounts/{name}/password-reset", headers=ADMIN) as response:
        assert response.status == 201, await response.text()
        token = (await response.json())["link"].rsplit("/", 1)[1]
    await page.goto(f"{base}/moderation/reset/{token}")
    await page.get_by_role("heading", name=f"Đặt lại mật khẩu cho {name}").wait_for()
    new_password = PASSWORD + " mới"
    await page.keyboard.type(new_password)  # the new password's field has the focus
    await page.keyboard.press("Tab")
    await page.keyboard.type(new_password)
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", name="Đã đặt mật khẩu mới").wait_for()
    await page.goto(f"{base}/moderation/")
    await page.get_by_label("Tên đăng nhập").fill(name)
    await page.get_by_label("Mật khẩu").fill(new_password)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.locator(".top .person").wait_for()
    assert problems == []
    await page.context.close()


@pytest.mark.timeout(300)
async def test_two_moderators_see_disjoint_comments_and_empty_the_queue(
        browser: Browser, base: str, api: Api, http: aiohttp.ClientSession) -> None:
    article = article_id("two")
    ids = {(await api.submit(article, name=f"Độc giả {i}", title=f"Tiêu đề {i}", body=f"Ý kiến {i}."))["id"]
           for i in range(30)}
    names = [f"Mai{secrets.token_hex(2)}", f"Hung{secrets.token_hex(2)}"]
    for name in names:
        await make_person(http, base, name)
    pages = []
    for name in names:
        page, problems = await new_page(browser)
        conflicts: list[str] = []

        def conflict(response: Response, seen: list[str] = conflicts) -> None:
            if response.status == 409:
                seen.append(response.url)

        page.on("response", conflict)
        await sign_in(page, base, name)
        await page.locator(".card.is-current").wait_for()
        pages.append((page, problems, conflicts))

    async def queue_depth() -> int:
        async with http.get(f"{base}/v1/moderation/stats", headers=ADMIN) as r:
            depth: int = (await r.json())["queue_depth"]
        return depth

    async def work(page: Page) -> set[str]:
        seen: set[str] = set()
        while True:
            shown = await page.locator(".cards .card").evaluate_all("(cards) => cards.map((c) => c.dataset.id)")
            seen.update(shown)
            chosen = await current_id(page)
            if chosen is None:
                if await queue_depth() == 0:
                    return seen
                await asyncio.sleep(0.3)  # the other holds the rest, or more are being claimed
                continue
            await page.keyboard.press("a")
            await page.locator(f'.card[data-id="{chosen}"]').wait_for(state="detached")

    seen_a, seen_b = await asyncio.gather(*(work(page) for page, _, _ in pages))
    assert seen_a and seen_b
    assert seen_a.isdisjoint(seen_b)
    assert seen_a | seen_b == ids

    async def all_approved() -> bool:
        return all([(await moderator_view(http, base, i))["state"] == "approved" for i in ids])

    await eventually(all_approved, "every comment approved")
    by = {i: (await moderator_view(http, base, i))["decided_by"] for i in ids}
    assert {i for i, who in by.items() if who == names[0]} == seen_a
    assert {i for i, who in by.items() if who == names[1]} == seen_b
    for page, problems, conflicts in pages:
        assert conflicts == [] and problems == []
        assert await page.locator(".alerts .toast").count() == 0
        await page.context.close()


@pytest.mark.timeout(300)
async def test_a_new_arrival_appears_without_reload_by_the_live_events(
        browser: Browser, base: str, api: Api, http: aiohttp.ClientSession) -> None:
    """The console hears of a submission through GET /v1/moderation/events: its settings are answered with an
    hour-long poll, so only the event stream can bring the new card and the tab counts within the wait."""
    name = f"Thu{secrets.token_hex(2)}"
    await make_person(http, base, name)
    page, problems = await new_page(browser)

    async def slow_poll(route: Any) -> None:
        response = await route.fetch()
        settings = await response.json()
        await route.fulfill(response=response, json={**settings, "poll_seconds": 3600})

    await page.route(f"{base}/moderation/settings", slow_poll)
    streams: list[str] = []
    page.on("request", lambda request: streams.append(request.url) if "/v1/moderation/events" in request.url
            else None)
    await sign_in(page, base, name)
    await page.locator(".queue-status").wait_for()
    assert await page.locator(".cards .card").count() == 0
    await eventually(lambda: _true(bool(streams)), "the console opened the event stream")

    article = article_id("live")
    first = (await api.submit(article, name="Độc giả", title="Mới đến", body="Vừa gửi."))["id"]
    await page.locator(f'.card[data-id="{first}"]').wait_for(timeout=30_000)
    assert await page.locator('[data-count="queue"]').first.text_content() == "1"
    # Decided: the approved tab counts every approval (a total, not the last 24 hours).
    await page.keyboard.press("a")

    async def approved_counted() -> bool:
        return await page.locator('[data-count="approved"]').first.text_content() == "1"

    await eventually(approved_counted, "the approved tab counts the approval", seconds=30)
    assert problems == []
    await page.context.close()


async def _true(value: bool) -> bool:
    return value


# --- 3. the session across sites, the CSP, hostile text ---

XSS_NAME = "<img src=x onerror=alert('name')>"
XSS_TITLE = "<script>alert('title')</script>"
XSS_BODY = "<svg onload=alert('body')></svg> <a href=\"javascript:alert('link')\">bấm</a> {{7*7}} <b>đậm</b>"
INJECTED = ("main img, main script, main iframe, main b, main [onerror], main [onload], main a[href^='javascript'], "
            "main svg:not(.chart)")


@pytest.mark.timeout(300)
async def test_cross_site_csp_and_hostile_text(
        browser: Browser, base: str, api: Api, http: aiohttp.ClientSession) -> None:
    port = base.rsplit(":", 1)[1]
    for path in ("/moderation/", "/moderation/invite/cmi_" + "a" * 43):
        async with http.get(f"{base}{path}") as r:
            csp = r.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe" not in csp, (path, csp)
    async with http.get(f"{base}/moderation/") as r:
        page_html = await r.text()
    assert "<style" not in page_html and " style=" not in page_html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page_html, re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)

    article = "the.article:xss-1"
    parent = await api.publish(article, name=XSS_NAME, title=XSS_TITLE, body=XSS_BODY)
    reply = (await api.submit(article, name=XSS_NAME, title=XSS_TITLE, body=XSS_BODY, parent_id=parent))["id"]
    name = f"Tuan{secrets.token_hex(2)}"
    await make_person(http, base, name)
    page, problems = await new_page(browser)
    await sign_in(page, base, name)

    async def text_only(view: str) -> None:
        await page.wait_for_timeout(300)  # a script that ran would have opened its dialog by now
        assert await page.locator(INJECTED).count() == 0, view
        assert problems == [], (view, problems)

    # the queue: the reply, with the parent it answers
    card = page.locator(f'.card[data-id="{reply}"]')
    await card.wait_for()
    await card.locator(".parent .parent-body").wait_for()
    assert await card.locator(".card-title").text_content() == XSS_TITLE
    assert await card.locator(".name").first.text_content() == XSS_NAME
    assert await card.locator(".body").text_content() == XSS_BODY
    assert await card.locator(".parent-body").text_content() == XSS_BODY
    assert await card.locator(".parent .name").text_content() == XSS_NAME
    assert await card.locator("a.article").text_content() == article
    assert await card.locator("a.article").get_attribute("href") == "/demo/articles/the.article%3Axss-1"
    await card.locator(".author-list li").first.wait_for()
    await text_only("queue")

    # a cross-site page cannot use the session: SameSite=Strict keeps the cookie home
    other = await page.context.new_page()
    other.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
    attacker = f"http://{OTHER_SITE}:{port}/attack"
    await other.route(attacker, lambda route: route.fulfill(content_type="text/html", body=(
        f'<form method="post" action="{base}/v1/moderation/comments/{reply}/decision" enctype="text/plain">'
        '<input name=\'{"action":"approve","reason":"\' value=\'"}\'></form>')))
    await other.goto(attacker)
    async with other.expect_response(lambda r: "/decision" in r.url) as answer:
        await other.evaluate("() => document.forms[0].submit()")
    assert (await answer.value).status == 401
    # ...and with the cookie itself, a request from another origin is refused, CSRF token or not
    cookie = next(c["value"] for c in await page.context.cookies() if c["name"] == "cm_session")
    csrf = await page.evaluate("() => fetch('/v1/session').then((r) => r.json()).then((s) => s.csrf_token)")
    for origin, token in ((f"http://{OTHER_SITE}:{port}", csrf), (base, ""), (base, "forged")):
        async with http.post(f"{base}/v1/moderation/comments/{reply}/decision", json={"action": "approve"},
                              headers={"Cookie": f"cm_session={cookie}", "Origin": origin,
                                       "X-CSRF-Token": token}) as r:
            assert (r.status, (await r.json())["code"]) == (403, "csrf_refused"), (origin, token)
    assert (await moderator_view(http, base, reply))["state"] == "pending"
    await other.close()

    # decide it in the console, then every other view shows it
    await page.bring_to_front()
    await page.locator(f'.card.is-current[data-id="{reply}"]').wait_for()
    await page.keyboard.press("a")
    await card.wait_for(state="detached")
    await page.wait_for_function("() => !document.querySelector('.cards .card')")
    await text_only("queue after the decision")
    for view, wanted in ((f"#/comment/{reply}", reply), ("#/approved", reply), ("#/search?q=onerror", parent),
                         (f"#/approved?article_id={article}", parent)):
        await page.goto(f"{base}/moderation/{view}")
        shown = page.locator(f'.card[data-id="{wanted}"]')
        await shown.wait_for()
        await shown.focus()  # loads its author record
        assert await shown.locator(".card-title").text_content() == XSS_TITLE
        assert await shown.locator(".body").text_content() == XSS_BODY
        assert await shown.locator(".name").first.text_content() == XSS_NAME
        await shown.locator(".author-part").first.wait_for()
        await text_only(view)
    await page.goto(f"{base}/moderation/#/comment/{reply}")
    await page.locator(".history tbody tr").first.wait_for()
    assert await page.locator(".history tbody tr td").nth(1).text_content() == name
    await page.goto(f"{base}/moderation/#/stats")
    await page.locator("svg.chart rect.bar").first.wait_for()
    await text_only("stats")
    await page.context.close()


# --- 4. search, stats, accessibility, screenshots ---


@pytest.mark.timeout(300)
async def test_search_stats_accessibility_and_screenshots(
        browser: Browser, base: str, api: Api, http: aiohttp.ClientSession) -> None:
    article = article_id("road")
    road = await api.submit(article, name="Phạm Đức", title="Con đường mới",
                            body="Đường Nguyễn Huệ cần thêm cây xanh. Xem www.example.com nhé.")
    others = [(await api.submit(article, name=f"Người đọc {i}", title=f"Góp ý {i}", body=f"Cầu số {i} đẹp."))["id"]
              for i in range(6)]
    name = f"Admin{secrets.token_hex(2)}"
    await make_person(http, base, name, role="admin")
    audits = Audits()
    figures, blocking, check = audits.figures, audits.blocking, audits.check

    page, problems = await new_page(browser, bypass_csp=True)  # axe-core is injected inline
    await page.goto(f"{base}/moderation/")
    await page.get_by_label("Tên đăng nhập").wait_for()
    await check("sign-in", page)
    await shoot(page, "sign-in-1280")
    await sign_in(page, base, name)
    await page.locator(".card.is-current").wait_for()
    await page.locator(".card.is-current .author-part").first.wait_for()
    await check("queue", page)
    await shoot(page, "queue-1280")
    await page.keyboard.press("?")
    await page.get_by_role("dialog").wait_for()
    await check("keys dialog", page)
    await page.keyboard.press("Escape")
    await page.keyboard.press("x")
    await page.locator(".bulk").wait_for()
    await page.keyboard.press("r")
    await page.get_by_role("dialog").wait_for()
    await check("reject dialog, bulk bar", page)
    await shoot(page, "reject-dialog-1280")
    await page.keyboard.press("Escape")

    # decisions to draw: approve the road comment and three others, reject two, by keyboard
    decided = 0
    for key in "aaarra":
        before = await current_id(page)
        await page.keyboard.press(key)
        if key == "r":
            await page.get_by_role("dialog").wait_for()
            await page.keyboard.press("3")  # the third reason, "Lạc đề", at once
        await page.locator(f'.card[data-id="{before}"]').wait_for(state="detached")
        decided += 1
    assert decided == 6

    async def settled() -> bool:
        states = [(await moderator_view(http, base, i))["state"] for i in [road["id"], *others]]
        return states.count("pending") == 1

    await eventually(settled, "six decisions stored")
    await check("queue after decisions, toasts", page)

    # search without diacritics, from the keyboard
    await page.keyboard.press("/")
    await page.locator("#search-q:focus").wait_for()
    await page.keyboard.type("duong")
    await page.keyboard.press("Enter")
    found = page.locator(f'.card[data-id="{road["id"]}"]')
    await found.wait_for()
    assert "Đường Nguyễn Huệ" in (await found.locator(".body").text_content() or "")
    assert await page.locator(".cards .card").count() == 1
    assert await found.locator("mark.hl-link").text_content() == "www.example.com"
    await check("search results", page)
    await shoot(page, "search-1280")

    # the charts, from those decisions
    await page.goto(f"{base}/moderation/#/stats")
    bars = page.locator("svg.chart rect.bar[data-moderator]")
    await bars.first.wait_for()
    per_hour = await bars.evaluate_all("(rs) => rs.map((r) => [r.dataset.moderator, Number(r.dataset.value)])")
    assert {who for who, _ in per_hour} == {name}
    assert sum(n for _, n in per_hour) == 6
    waits = await page.locator("svg.chart rect.bar[data-period]").evaluate_all(
        "(rs) => rs.map((r) => [r.dataset.period, r.dataset.kind, r.dataset.value, r.dataset.decisions])")
    assert sorted((p, k) for p, k, _, _ in waits) == [("day", "median"), ("day", "p90"), ("week", "median"),
                                                      ("week", "p90")]
    assert all(float(v) > 0 and d == "6" for _, _, v, d in waits)
    assert await page.locator(".figures .depth").text_content() == "1"
    await check("stats", page)
    await shoot(page, "stats-1280")

    for view, ready in (("#/approved", ".card"), ("#/rejected", ".card"), (f"#/comment/{road['id']}", ".history tr"),
                        ("#/admin", ".admin-section table")):
        await page.goto(f"{base}/moderation/{view}")
        await page.locator(ready).first.wait_for()
        label = view.strip("#/").split("/")[0]
        await check(label, page)
        await shoot(page, f"{label}-1280")
    await page.context.close()

    # a phone
    phone, more = await new_page(browser, width=360, bypass_csp=True)
    await sign_in(phone, base, name)
    await phone.locator(".card.is-current").wait_for()
    await phone.locator(".card.is-current .author-part").first.wait_for()
    await check("queue, 360 px", phone)
    await shoot(phone, "queue-360")
    assert await phone.evaluate("() => document.documentElement.scrollWidth") <= 360
    for view, ready in (("#/stats", "svg.chart"), ("#/admin", ".admin-section table"), ("#/search?q=duong", ".card")):
        await phone.goto(f"{base}/moderation/{view}")
        await phone.locator(ready).first.wait_for()
        label = view.strip("#/").split("?")[0]
        await check(f"{label}, 360 px", phone)
        await shoot(phone, f"{label}-360")
        assert await phone.evaluate("() => document.documentElement.scrollWidth") <= 360, view
    # English, from its switch
    await phone.get_by_role("button", name="English").click()
    await phone.get_by_role("link", name=re.compile("Queue")).wait_for()
    await shoot(phone, "search-360-en")
    await phone.context.close()

    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "axe.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    print("\naxe-core violations (nodes) by impact, console:")
    for state, counts in figures.items():
        print(f"  {state:28} " + "  ".join(f"{k} {v}" for k, v in counts.items()))
    assert blocking == {}, json.dumps(blocking, indent=1, ensure_ascii=False)[:6000]
    assert problems == [] and more == []



# --- the reported queue: what readers reported, kept or retracted by keyboard and button ---

REPORTED_TEXT = "<b>lừa đảo</b> <img src=x onerror=alert('report')>"


@pytest.mark.timeout(300)
async def test_the_reported_queue_keeps_and_retracts(
        browser: Browser, base: str, api: Api, http: aiohttp.ClientSession) -> None:
    name = f"Hoa{secrets.token_hex(2)}"
    await make_person(http, base, name)
    article = article_id("rep")
    doomed = await api.publish(article, name="Độc giả", title="Bị báo trước", body="Nội dung bị báo.")
    kept = await api.publish(article, name="Bạn đọc", title="Bị báo sau", body="Nội dung bình thường.")
    for comment_id, report in ((doomed, {"reason": "offensive", "text": REPORTED_TEXT}), (kept, {"reason": "spam"})):
        async with http.post(f"{base}/v1/comments/{comment_id}/reports", json=report) as r:
            assert r.status == 202, await r.text()

    page, problems = await new_page(browser)
    await sign_in(page, base, name)
    await page.locator('nav.tabs a[data-view="reported"]').click()
    first = page.locator(f'.card[data-id="{doomed}"]')
    await first.wait_for()
    ids = await page.locator(".cards .card").evaluate_all("nodes => nodes.map((n) => n.dataset.id)")
    assert ids.index(doomed) < ids.index(kept)  # one report each: the longest waiting first
    assert "bình luận bị báo vi phạm" in (await page.locator(".page-info").text_content() or "")
    summary = await first.locator(".report-summary").text_content() or ""
    assert summary.startswith("1 lượt báo · lượt đầu đã chờ"), summary
    assert await first.locator('.reasons li[data-reason="offensive"]').text_content() == "Xúc phạm: 1"
    assert await first.locator(".report-text").text_content() == REPORTED_TEXT  # the reader's words, as text
    assert await page.locator("main img, main b, main [onerror]").count() == 0
    await page.keyboard.press("?")
    assert "giữ lại bình luận" in (await page.locator("dialog .keys").text_content() or "")
    await page.keyboard.press("Escape")

    # j/k move between reported comments; t retracts the current one (after its reason), g keeps
    assert await current_id(page) == doomed
    await page.keyboard.press("j")
    assert await current_id(page) == ids[ids.index(doomed) + 1]
    await page.keyboard.press("k")
    assert await current_id(page) == doomed
    await page.keyboard.press("t")
    await page.locator("dialog button[type=submit]").click()
    await first.wait_for(state="detached")
    await api.settle()
    async with http.get(f"{base}/v1/articles/{article}/comments") as r:
        public = [c["id"] for c in (await r.json())["comments"]]
    assert doomed not in public and kept in public

    await page.locator(f'.card[data-id="{kept}"] button.keep').click()
    await page.locator(f'.card[data-id="{kept}"]').wait_for(state="detached")
    async with http.get(f"{base}/v1/moderation/reports", headers=ADMIN) as r:
        assert not {doomed, kept} & {c["comment"]["id"] for c in (await r.json())["comments"]}
    assert (await moderator_view(http, base, doomed))["state"] == "retracted"
    assert (await moderator_view(http, base, kept))["state"] == "approved"
    await api.settle()
    async with http.get(f"{base}/v1/articles/{article}/comments") as r:
        assert kept in [c["id"] for c in (await r.json())["comments"]]
    assert problems == []
    await page.context.close()
