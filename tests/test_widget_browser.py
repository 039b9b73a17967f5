"""The widget in a real headless Chromium, against the real service (Redis included).

Needs the `settings` fixture of tests/conftest.py (captcha answer ABCDE, no rate limits, admin token) and
`aiohttp_server` from pytest-aiohttp. Without Chromium the tests skip locally and fail when CI is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from support import make_app

from service.i18n import field_message
from service.settings import Settings

try:
    from playwright.async_api import Browser, BrowserContext, Locator, Page, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.browser

CAPTCHA_ANSWER = "ABCDE"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
WIDGET = "[data-comments-article]"  # the host element; Playwright's CSS engine pierces its open shadow root
#: The comment form's own status line (the report and "my data" panels have status lines of their own).
FORM_STATUS = ".cw-status[id$='-status']"

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


# --- fixtures ---


@contextlib.asynccontextmanager
async def chromium(tests: str, *args: str) -> AsyncIterator[Browser]:
    """A headless Chromium with `CHROMIUM_ARGS` and `args`, closed on exit. Without it (or playwright) the `tests`
    browser tests skip locally and fail when CI is set."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None or async_playwright is None:
        reason = "Chromium (or the playwright package) is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(f"{reason}; install Debian's chromium to run the {tests} browser tests")
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=executable, args=[*CHROMIUM_ARGS, *args])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium("widget") as launched:
        yield launched


@pytest.fixture
async def base(aiohttp_server: ServerFactory, settings: Settings) -> str:

    server = await aiohttp_server(make_app(settings))
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def article_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


# --- helpers ---


class Api:
    """The service's HTTP API, driven directly (what a bot, or a moderator's tool, would do)."""

    def __init__(self, http: aiohttp.ClientSession, base: str, settings: Settings) -> None:
        assert settings.admin_token is not None, "the test settings must have an admin token"
        self.http = http
        self.base = base
        self.admin_token = settings.admin_token.get_secret_value()
        #: how long a public list may be served from the service's memory after a change
        self.public_cache_seconds = settings.public_cache_seconds

    async def submit(
        self, article: str, *, name: str, title: str, body: str, parent_id: str | None = None
    ) -> dict[str, Any]:
        async with self.http.post(f"{self.base}/v1/captchas") as resp:
            assert resp.status == 201, await resp.text()
            captcha = await resp.json()
        payload = {
            "name": name,
            "email": f"reader{secrets.token_hex(3)}@example.vn",
            "title": title,
            "body": body,
            "captcha_id": captcha["id"],
            "captcha_answer": CAPTCHA_ANSWER,
            "parent_id": parent_id,
            "website": "",
        }
        async with self.http.post(f"{self.base}/v1/articles/{article}/comments", json=payload) as resp:
            assert resp.status == 202, await resp.text()
            accepted: dict[str, Any] = await resp.json()
        return accepted

    async def approve(self, comment_id: str) -> None:
        async with self.http.post(
            f"{self.base}/v1/moderation/comments/{comment_id}/decision",
            json={"action": "approve"},
            headers={"Authorization": f"Bearer {self.admin_token}"},
        ) as resp:
            assert resp.status == 200, await resp.text()

    async def settle(self) -> None:
        """Let the service's short public cache expire, so that a new reader sees the latest decisions."""
        await asyncio.sleep(self.public_cache_seconds + 0.1)

    async def publish(self, article: str, **fields: Any) -> str:
        comment_id: str = (await self.submit(article, **fields))["id"]
        await self.approve(comment_id)
        return comment_id


@pytest.fixture
def api(http: aiohttp.ClientSession, base: str, settings: Settings) -> Api:
    return Api(http, base, settings)


async def open_article(
    browser: Browser, base: str, article: str, *, width: int = 1280, height: int = 900, lang: str = "vi"
) -> tuple[BrowserContext, Page, list[str]]:
    """A fresh reader (own localStorage); returns the page errors seen, which every test expects empty."""
    context = await browser.new_context(viewport={"width": width, "height": height}, locale="vi-VN")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    suffix = "?lang=en" if lang == "en" else ""
    await page.goto(f"{base}/demo/articles/{article}{suffix}")
    await page.locator(f"{WIDGET} .cw").wait_for(state="visible")
    await (
        page.locator(f"{WIDGET} .cw-info")
        .filter(has_text=re.compile("Đang tải|Loading"))
        .wait_for(state="hidden")
    )
    return context, page, errors


async def fill_form(page: Page, *, name: str, email: str, title: str, body: str, code: str) -> None:
    await page.get_by_label("Họ Tên", exact=True).fill(name)
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Tiêu Đề", exact=True).fill(title)
    await page.get_by_label("Nội dung", exact=True).fill(body)
    await page.wait_for_function(
        "() => !!document.querySelector('[data-comments-article]').shadowRoot"
        ".querySelector('.cw-cap-img').getAttribute('src')"
    )
    await page.get_by_label("Mã xác nhận", exact=True).fill(code)


def comment(page: Page, comment_id: str) -> Locator:
    return page.locator(f'{WIDGET} li.cw-c[data-id="{comment_id}"]')


async def pending_in_storage(page: Page, article: str) -> list[dict[str, Any]]:
    raw = await page.evaluate("(k) => localStorage.getItem(k)", f"cmts:pending:{article}")
    return list(json.loads(raw)) if raw else []


DEEP_ACTIVE = """() => {
  let a = document.activeElement;
  while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
  return a ? {tag: a.tagName, name: a.getAttribute('name') || '', text: (a.textContent || '').trim(),
              outline: getComputedStyle(a).outlineStyle} : null;
}"""


# --- 1. the whole flow ---


async def test_submit_moderate_and_see_it_published(browser: Browser, base: str, api: Api) -> None:
    article = article_id("a1")
    author_ctx, author, author_errors = await open_article(browser, base, article)
    await fill_form(
        author,
        name="Nguyễn Thị Hoa",
        email="hoa@example.vn",
        title="Cây cầu rất cần thiết",
        body="Gia đình tôi đi chợ nhanh hơn hẳn.\nCảm ơn các đơn vị thi công!",
        code=CAPTCHA_ANSWER,
    )
    old_captcha = await author.locator(f"{WIDGET} .cw-cap-img").get_attribute("src")
    await author.get_by_role("button", name="Gửi bình luận").click()

    status = author.locator(f"{WIDGET} {FORM_STATUS}")
    await status.filter(has_text="Bình luận của bạn đang chờ duyệt").wait_for()
    assert await status.get_attribute("aria-live") == "polite"
    stored = await pending_in_storage(author, article)
    assert len(stored) == 1
    mine = stored[0]
    assert mine["receipt"] and mine["article"] == article and mine["name"] == "Nguyễn Thị Hoa"
    pending = comment(author, mine["id"])
    await pending.wait_for()
    assert "Đang chờ duyệt" in (await pending.locator(".cw-badge").text_content() or "")
    assert await pending.locator(".cw-body").text_content() == (
        "Gia đình tôi đi chợ nhanh hơn hẳn.\nCảm ơn các đơn vị thi công!"
    )
    # the form is ready for another comment: title/body cleared, name/email kept, a fresh captcha
    assert await author.get_by_label("Tiêu Đề", exact=True).input_value() == ""
    assert await author.get_by_label("Nội dung", exact=True).input_value() == ""
    assert await author.get_by_label("Họ Tên", exact=True).input_value() == "Nguyễn Thị Hoa"
    assert await author.get_by_label("Email", exact=True).input_value() == "hoa@example.vn"
    await author.wait_for_function(
        "(old) => { const i = document.querySelector('[data-comments-article]').shadowRoot"
        ".querySelector('.cw-cap-img'); return i.getAttribute('src') && i.getAttribute('src') !== old; }",
        arg=old_captcha,
    )

    # another reader does not see a comment awaiting moderation
    other_ctx, other, other_errors = await open_article(browser, base, article)
    assert await comment(other, mine["id"]).count() == 0
    assert await other.locator(f"{WIDGET} .cw-badge").count() == 0

    await api.approve(mine["id"])
    await api.settle()

    # a new reader (empty localStorage) sees it, as an ordinary comment
    reader_ctx, reader, reader_errors = await open_article(browser, base, article)
    published = comment(reader, mine["id"])
    await published.wait_for()
    assert await published.locator(".cw-name").text_content() == "Nguyễn Thị Hoa"
    assert await published.locator(".cw-title").text_content() == "Cây cầu rất cần thiết"
    assert await published.locator(".cw-badge").count() == 0
    assert await published.locator(".cw-time").text_content() == "vừa xong"
    assert "(1)" in (await reader.locator(f"{WIDGET} .cw-h").text_content() or "")

    # the author, after a reload, sees it approved and no longer pending (the widget asks for the status,
    # learns of the approval and reloads the list past any cache)
    await author.reload()
    await comment(author, mine["id"]).locator(".cw-reply").wait_for()
    await author.wait_for_function(
        "(k) => !localStorage.getItem(k)", arg=f"cmts:pending:{article}", timeout=10_000
    )
    assert await author.locator(f"{WIDGET} .cw-badge").count() == 0
    assert await comment(author, mine["id"]).count() == 1

    # the new reader replies: the reply button names the comment, focus goes to the form
    await published.locator(".cw-reply").click()
    replying = reader.locator(f"{WIDGET} .cw-replying")
    await replying.wait_for()
    assert (await replying.text_content() or "").startswith("Trả lời Nguyễn Thị Hoa")
    focused = await reader.evaluate(DEEP_ACTIVE)
    assert focused["name"] == "name"
    await fill_form(
        reader,
        name="Trần Văn Bình",
        email="binh@example.vn",
        title="Đồng ý",
        body="Tôi cũng vậy.",
        code=CAPTCHA_ANSWER,
    )
    await reader.get_by_role("button", name="Gửi bình luận").click()
    await reader.locator(f"{WIDGET} {FORM_STATUS}").filter(has_text="đang chờ duyệt").wait_for()
    assert await replying.is_hidden()
    reply = (await pending_in_storage(reader, article))[0]
    await api.approve(reply["id"])
    await api.settle()
    await other_ctx.close()
    other_ctx, other, more_errors = await open_article(browser, base, article)
    other_errors += more_errors
    nested = other.locator(f'{WIDGET} li.cw-c[data-id="{mine["id"]}"] > .cw-replies > li.cw-c')
    await nested.wait_for()
    assert await nested.get_attribute("data-id") == reply["id"]

    assert author_errors == other_errors == reader_errors == []
    for ctx in (author_ctx, other_ctx, reader_ctx):
        await ctx.close()


# --- 2. validation errors, client-side and server-side ---


async def test_validation_errors_are_shown_next_to_their_fields(browser: Browser, base: str) -> None:
    article = article_id("validation")
    context, page, errors = await open_article(browser, base, article)
    send = page.get_by_role("button", name="Gửi bình luận")

    # client-side: nothing filled in
    await send.click()
    name = page.get_by_label("Họ Tên", exact=True)
    assert await name.get_attribute("aria-invalid") == "true"
    described = await name.get_attribute("aria-describedby")
    assert described
    name_error = page.locator(f"{WIDGET} #{described}")
    # the widget words an error exactly as the service does (one source: service/i18n.py)
    assert await name_error.text_content() == field_message("name", "required", {}, "vi") == "Vui lòng nhập họ tên"
    assert await name_error.is_visible()
    assert (await page.evaluate(DEEP_ACTIVE))["name"] == "name", "focus moves to the first invalid field"
    body_error = await page.get_by_label("Nội dung", exact=True).get_attribute("aria-describedby")
    assert await page.locator(f"{WIDGET} #{body_error}").text_content() == "Vui lòng nhập nội dung"

    # client-side: too long (code points after NFC + trim) and a malformed email
    await page.get_by_label("Họ Tên", exact=True).fill("  " + "Ễ" * 81 + "  ")
    await page.get_by_label("Email", exact=True).fill("không-phải-email")
    await send.click()
    too_long = field_message("name", "too_long", {"max": 80}, "vi")
    assert await page.locator(f"{WIDGET} .cw-f-name .cw-err").text_content() == too_long == "Họ tên tối đa 80 ký tự"
    assert await page.locator(f"{WIDGET} .cw-f-email .cw-err").text_content() == field_message(
        "email", "invalid_email", {}, "vi")

    # server-side: a wrong captcha is refused by the service, whose Vietnamese message is shown by the field
    await fill_form(
        page, name="Lê Thu", email="thu@example.vn", title="Hỏi", body="Khi nào thông xe?", code="ZZZZZ"
    )
    assert await name.get_attribute("aria-invalid") is None, "fixed fields lose their error"
    old_captcha = await page.locator(f"{WIDGET} .cw-cap-img").get_attribute("src")
    async with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(f"/v1/articles/{article}/comments")
    ) as info:
        await send.click()
    response = await info.value
    assert response.status == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = await response.json()
    assert problem["code"] == "captcha_invalid"
    server_messages = [e["message"] for e in problem.get("errors") or [] if e["field"] == "captcha_answer"]
    expected = server_messages[0] if server_messages else problem["title"]  # both localised by the service
    captcha_input = page.get_by_label("Mã xác nhận", exact=True)
    captcha_error = page.locator(f"{WIDGET} .cw-f-captcha_answer .cw-err")
    await captcha_error.filter(has_text=expected).wait_for()
    assert await captcha_error.text_content() == expected
    assert "Mã xác nhận" in expected, "the service answered in Vietnamese"
    assert await captcha_input.get_attribute("aria-invalid") == "true"
    # the used captcha was replaced and its answer cleared; the rest of the form is kept
    await page.wait_for_function(
        "(old) => { const i = document.querySelector('[data-comments-article]').shadowRoot"
        ".querySelector('.cw-cap-img'); return i.getAttribute('src') && i.getAttribute('src') !== old; }",
        arg=old_captcha,
    )
    assert await captcha_input.input_value() == ""
    assert await page.get_by_label("Nội dung", exact=True).input_value() == "Khi nào thông xe?"
    assert errors == []
    await context.close()

    # the English widget speaks English, and the service's messages follow
    context, page, errors = await open_article(browser, base, article, lang="en")
    await page.get_by_role("button", name="Post comment").click()
    assert await page.locator(f"{WIDGET} .cw-f-name .cw-err").text_content() == "Please enter your name"
    await page.get_by_label("Name", exact=True).fill("Lan")
    await page.get_by_label("Email", exact=True).fill("lan@example.vn")
    await page.get_by_label("Title", exact=True).fill("Hi")
    await page.get_by_label("Comment", exact=True).fill("Nice bridge")
    await page.wait_for_function(
        "() => !!document.querySelector('[data-comments-article]').shadowRoot"
        ".querySelector('.cw-cap-img').getAttribute('src')"
    )
    await page.get_by_label("Verification code", exact=True).fill("ZZZZZ")
    await page.get_by_role("button", name="Post comment").click()
    en_error = page.locator(f"{WIDGET} .cw-f-captcha_answer .cw-err")
    await en_error.filter(has_text=re.compile("[a-z]")).wait_for()
    assert "Mã" not in (await en_error.text_content() or "")
    assert errors == []
    await context.close()


# --- 3. XSS ---

XSS_PAYLOADS = [
    "<script>window.__xss=1;alert(1)</script>",
    "<img src=x onerror=window.__xss=2;alert(2)>",
    "<svg/onload=window.__xss=3;alert(3)>",
    '"><script>window.__xss=4</script>',
    "javascript:window.__xss=5;alert(5)",
    '<iframe src="javascript:parent.__xss=6;alert(6)"></iframe>',
    "<body onload=window.__xss=7;alert(7)>",
    '<a href="javascript:window.__xss=8">x</a>',
    "'';!--\"<XSS>=&{()}",
    "<IMG SRC=\"jav&#x09;ascript:window.__xss=10;alert('XSS');\">",
    '<IMG """><SCRIPT>window.__xss=11</SCRIPT>">',
    "<input onfocus=window.__xss=12 autofocus>",
    "<details open ontoggle=window.__xss=13;alert(13)>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=14>",
    "{{constructor.constructor('window.__xss=15')()}}",
    "<scr<script>ipt>window.__xss=16</scr</script>ipt>",
    '<video><source onerror="window.__xss=17;alert(17)">',
    "<style>*{x:expression(window.__xss=18)}</style><marquee onstart=window.__xss=18>",
    "&lt;script&gt;window.__xss=19&lt;/script&gt; &amp; &#60;b&#62;",
    "%3Cscript%3Ewindow.__xss=20%3C/script%3E",
]


async def test_hostile_comments_are_rendered_as_text(browser: Browser, base: str, api: Api) -> None:
    assert len(XSS_PAYLOADS) >= 10
    assert all(len(p) <= 80 for p in XSS_PAYLOADS), "each payload must fit the name field"
    article = article_id("xss")
    ids = [await api.publish(article, name=p, title=p, body=p) for p in XSS_PAYLOADS]
    await api.settle()

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.add_init_script("window.__xss = 0;")
    page = await context.new_page()
    dialogs: list[str] = []
    page_errors: list[str] = []

    async def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    await page.goto(f"{base}/demo/articles/{article}")
    for comment_id in ids:
        await comment(page, comment_id).wait_for()
    # let onerror/onload handlers, iframes and media fire if anything got parsed as markup
    await page.wait_for_timeout(1500)

    for comment_id, payload in zip(ids, XSS_PAYLOADS, strict=True):
        item = comment(page, comment_id)
        assert await item.locator(".cw-name").text_content() == payload
        assert await item.locator(".cw-title").text_content() == payload
        assert await item.locator(".cw-body").text_content() == payload
        assert (await item.locator(".cw-reply").get_attribute("aria-label")) == f"Trả lời {payload}"

    # replying to a hostile name shows it as text too
    await comment(page, ids[1]).locator(".cw-reply").click()
    assert await page.locator(f"{WIDGET} .cw-replying > span").nth(1).text_content() == XSS_PAYLOADS[1]

    markup = await page.evaluate(
        """() => {
          const root = document.querySelector('[data-comments-article]').shadowRoot;
          const count = (sel) => root.querySelectorAll(sel).length;
          return {
            scripts: count('script'), iframes: count('iframe'), svgs: count('svg'), imgs: count('img'),
            anchors: count('a'), handlers: [...root.querySelectorAll('*')]
              .flatMap((el) => [...el.attributes].map((a) => a.name)).filter((n) => n.startsWith('on')),
            pageScripts: document.scripts.length,
          };
        }"""
    )
    assert markup == {
        "scripts": 0,
        "iframes": 0,
        "svgs": 0,
        "imgs": 1,  # the captcha
        "anchors": 0,
        "handlers": [],
        "pageScripts": 1,  # the widget's own <script>
    }
    assert await page.evaluate("window.__xss") == 0
    assert dialogs == []
    assert page_errors == []
    await context.close()


# --- 4. layout: screenshots, no horizontal scroll on a phone ---


async def test_layout_on_phone_and_desktop(browser: Browser, base: str, api: Api) -> None:
    article = article_id("layout")
    first = await api.publish(
        article,
        name="Nguyễn Văn An",
        title="Mong sớm có đèn chiếu sáng",
        body="Cây cầu rất đẹp, đi lại thuận tiện hơn nhiều.\nMong tỉnh sớm lắp thêm đèn chiếu sáng ban đêm.",
    )
    await api.publish(article, name="Trần Thị Bích", title="Trả lời anh An", body="Đồng ý!", parent_id=first)
    await api.publish(
        article,
        name="Lê Hoàng Phúc Nguyên Khang Trường Thịnh Vượng",
        title="Một liên kết rất dài",
        body="https://example.vn/" + "a-very-long-unbroken-path-segment" * 6,
    )
    await api.settle()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width, height in ((360, 740), (1280, 900)):
        context, page, errors = await open_article(browser, base, article, width=width, height=height)
        await comment(page, first).wait_for()
        await page.get_by_label("Họ Tên", exact=True).focus()  # loads the captcha, as a reader would
        await page.wait_for_function(
            "() => document.querySelector('[data-comments-article]').shadowRoot"
            ".querySelector('.cw-cap-img').complete"
        )
        await page.screenshot(path=str(SCREENSHOTS / f"widget-{width}.png"), full_page=True)
        await page.locator(f"{WIDGET} .cw-h").evaluate("(el) => el.scrollIntoView({block: 'start'})")
        await page.screenshot(path=str(SCREENSHOTS / f"widget-{width}-viewport.png"))
        scroll_width = await page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"horizontal scroll at {width}px: {scroll_width}"
        # The captcha picture is shown large (its readability is measured at 360 px wide): as wide as the form
        # allows, up to 360 px, in its own proportions.
        shown = await page.locator(f"{WIDGET} .cw-cap-img").evaluate(
            "(el) => { const r = el.getBoundingClientRect();"
            " return [r.width, r.height, el.parentElement.clientWidth]; }")
        assert shown[0] >= min(360, shown[2]) - 2 and shown[0] <= 362, shown
        assert abs(shown[0] / shown[1] - 200 / 70) < 0.1, shown
        sizes = await page.evaluate(
            """() => [...document.querySelector('[data-comments-article]').shadowRoot
                 .querySelectorAll('input:not([name=website]), textarea')]
                 .map((el) => parseFloat(getComputedStyle(el).fontSize))"""
        )
        assert len(sizes) >= 5 and min(sizes) >= 16, f"inputs must be >= 16px (no iOS zoom): {sizes}"
        # the host page's global `label, button, input {font: 12px serif}` did not reach the widget
        label_font = await page.get_by_text("Họ Tên", exact=True).evaluate(
            "(el) => getComputedStyle(el).fontFamily"
        )
        assert "serif" not in label_font.replace("sans-serif", "")
        assert errors == []
        await context.close()


# --- 5. keyboard and labels ---


async def test_keyboard_only_and_labels(browser: Browser, base: str) -> None:
    article = article_id("keyboard")
    context, page, errors = await open_article(browser, base, article)
    labels = await page.evaluate(
        """() => [...document.querySelector('[data-comments-article]').shadowRoot
             .querySelectorAll('input, textarea')]
             .map((el) => ({name: el.name, labels: [...el.labels].map((l) => l.textContent),
                            tabIndex: el.tabIndex, hidden: el.getAttribute('aria-hidden')}))"""
    )
    by_name = {item["name"]: item for item in labels}
    assert by_name["name"]["labels"] == ["Họ Tên"]
    assert by_name["email"]["labels"] == ["Email"]
    assert by_name["title"]["labels"] == ["Tiêu Đề"]
    assert by_name["body"]["labels"] == ["Nội dung"]
    assert by_name["captcha_answer"]["labels"] == ["Mã xác nhận"]
    assert by_name["website"]["tabIndex"] == -1 and by_name["website"]["hidden"] == "true"
    alt = await page.locator(f"{WIDGET} .cw-cap-img").get_attribute("alt")
    assert alt and "Nghe mã" in alt and "âm thanh" in alt

    await page.locator("body").click(position={"x": 5, "y": 5})
    seen: list[dict[str, Any]] = []
    for _ in range(80):
        await page.keyboard.press("Tab")
        active = await page.evaluate(DEEP_ACTIVE)
        if active is None:
            continue
        seen.append(active)
        if active["tag"] == "BUTTON" and active["text"] == "Gửi bình luận":
            break
    names = [item["name"] for item in seen]
    assert "name" in names, "Tab reaches the name field"
    assert "website" not in names, "the honeypot is not in the tab order"
    assert seen[-1]["text"] == "Gửi bình luận", "Tab reaches the send button"
    assert seen[-1]["outline"] != "none", "focus is visible"
    for expected in ("email", "title", "body", "captcha_answer"):
        assert expected in names
    assert names.index("name") < names.index("email") < names.index("body") < names.index("captcha_answer")
    assert any(item["text"] == "Đổi mã" for item in seen) and any(item["text"] == "Nghe mã" for item in seen)

    # Enter on the focused send button submits: the client-side checks answer
    await page.keyboard.press("Enter")
    await page.locator(f"{WIDGET} .cw-f-name .cw-err").filter(has_text="Vui lòng nhập họ tên").wait_for()
    assert (await page.evaluate(DEEP_ACTIVE))["name"] == "name"
    assert errors == []
    await context.close()


# --- 6. polish: what each state looks like, and what is announced ---

SHADOW = "document.querySelector('[data-comments-article]').shadowRoot"


async def style_of(page: Page, selector: str, pseudo: str | None = None) -> dict[str, str]:
    """The computed colour, background and generated content of an element in the widget."""
    style: dict[str, str] = await page.evaluate(
        f"""([sel, pseudo]) => {{
          const s = getComputedStyle({SHADOW}.querySelector(sel), pseudo);
          return {{color: s.color, background: s.backgroundColor, content: s.content}};
        }}""",
        [selector, pseudo],
    )
    return style


def is_reddish(color: str) -> bool:
    r, g, b = (int(x) for x in re.findall(r"\d+", color)[:3])
    return r > 2 * g and r > 2 * b


async def test_error_and_success_messages_look_different(browser: Browser, base: str) -> None:
    context, page, errors = await open_article(browser, base, article_id("colours"))
    send = page.get_by_role("button", name="Gửi bình luận")
    await send.click()
    status = page.locator(f"{WIDGET} {FORM_STATUS}")
    await status.filter(has_text="Vui lòng kiểm tra").wait_for()
    assert "is-error" in (await status.get_attribute("class") or "")
    error = await style_of(page, ".cw-status")
    error_icon = (await style_of(page, ".cw-status", "::before"))["content"]
    field_colour = (await style_of(page, ".cw-f-name .cw-err"))["color"]

    await fill_form(page, name="Hoa", email="hoa@example.vn", title="Cầu", body="Đẹp quá", code=CAPTCHA_ANSWER)
    await send.click()
    await status.filter(has_text="đang chờ duyệt").wait_for()
    assert "is-ok" in (await status.get_attribute("class") or "")
    success = await style_of(page, ".cw-status")
    success_icon = (await style_of(page, ".cw-status", "::before"))["content"]

    assert error["color"] != success["color"], (error, success)
    assert is_reddish(error["color"]) and not is_reddish(success["color"])
    assert error["color"] == field_colour, "the summary speaks in the fields' error colour"
    assert "⚠" in error_icon and "✓" in success_icon, "an icon, not colour alone, tells them apart"
    assert errors == []
    await context.close()


async def test_counter_warns_and_announces_past_the_limit(browser: Browser, base: str) -> None:
    context, page, errors = await open_article(browser, base, article_id("counter"))
    counter = page.locator(f"{WIDGET} .cw-counter")
    limit = page.locator(f"{WIDGET} .cw-limit")
    body = page.get_by_label("Nội dung", exact=True)
    assert await limit.get_attribute("aria-live") == "polite", "the warning is in a live region"
    await body.fill("a" * 5000)
    assert await counter.text_content() == "5000/5000"
    normal = (await style_of(page, ".cw-counter"))["color"]
    assert await limit.text_content() == ""
    assert await limit.is_hidden()

    await body.fill("a" * 6000)
    assert await counter.text_content() == "6000/5000"
    assert "is-over" in (await counter.get_attribute("class") or "")
    over = (await style_of(page, ".cw-counter"))["color"]
    assert over != normal and is_reddish(over)
    expected = field_message("body", "too_long", {"max": 5000}, "vi")
    assert await limit.text_content() == expected == "Nội dung tối đa 5000 ký tự"
    assert await limit.is_visible()
    snapshot = await page.locator(WIDGET).aria_snapshot()
    assert expected in snapshot, "the warning is in the accessibility tree"

    # sending shows the same words by the field; the live line then stays quiet instead of repeating them
    await page.get_by_role("button", name="Gửi bình luận").click()
    assert await page.locator(f"{WIDGET} .cw-f-body .cw-err:not(.cw-limit)").text_content() == expected
    assert await limit.text_content() == ""
    await body.fill("a" * 4000)
    assert await counter.text_content() == "4000/5000"
    assert "is-over" not in (await counter.get_attribute("class") or "")
    assert await limit.text_content() == ""
    assert errors == []
    await context.close()


async def test_listen_shows_playing_and_stops_and_replays(browser: Browser, base: str) -> None:
    context, page, errors = await open_article(browser, base, article_id("listen"))
    await page.get_by_label("Họ Tên", exact=True).focus()  # loads the captcha
    await page.wait_for_function(f"() => !!{SHADOW}.querySelector('.cw-cap-img').getAttribute('src')")
    listen = page.locator(f"{WIDGET} .cw-listen")
    paused = f"() => {SHADOW}.querySelector('audio').paused"
    assert await listen.text_content() == "Nghe mã"

    await listen.click()
    assert await listen.text_content() == "Dừng nghe"
    assert "is-playing" in (await listen.get_attribute("class") or "")
    await page.wait_for_function(f"() => !({paused})() && {SHADOW}.querySelector('audio').currentTime > 0")
    playing_icon = (await style_of(page, ".cw-listen", "::before"))["content"]

    await listen.click()  # stop
    assert await listen.text_content() == "Nghe mã"
    assert "is-playing" not in (await listen.get_attribute("class") or "")
    assert await page.evaluate(paused)
    assert (await style_of(page, ".cw-listen", "::before"))["content"] != playing_icon

    await listen.click()  # again, from the start, and it plays to its end
    assert await listen.text_content() == "Dừng nghe"
    await page.wait_for_function(f"() => !({paused})()")
    await listen.filter(has_text="Nghe mã").wait_for(timeout=30_000)
    assert await page.evaluate(f"() => {SHADOW}.querySelector('audio').ended")
    assert errors == []
    await context.close()


async def test_avatar_colour_is_the_same_pending_and_approved(browser: Browser, base: str, api: Api) -> None:
    article = article_id("avatar")
    context, page, errors = await open_article(browser, base, article)
    await fill_form(page, name="Phạm Minh", email="minh@example.vn", title="Cầu", body="Tốt", code=CAPTCHA_ANSWER)
    await page.get_by_role("button", name="Gửi bình luận").click()
    await page.wait_for_function("(k) => !!localStorage.getItem(k)", arg=f"cmts:pending:{article}")
    mine = await pending_in_storage(page, article)
    avatar = comment(page, mine[0]["id"]).locator(".cw-av")
    await avatar.wait_for()
    pending_colour = await avatar.evaluate("(el) => getComputedStyle(el).backgroundColor")

    await api.approve(mine[0]["id"])
    await api.settle()
    await page.reload()
    await comment(page, mine[0]["id"]).locator(".cw-reply").wait_for()  # now shown as approved
    approved_colour = await avatar.evaluate("(el) => getComputedStyle(el).backgroundColor")
    assert approved_colour == pending_colour
    assert errors == []
    await context.close()


async def test_console_names_the_setting_when_the_origin_is_refused(
    browser: Browser, base: str, aiohttp_server: ServerFactory
) -> None:
    """A newspaper page on an origin that COMMENTS_ALLOWED_ORIGINS does not list: the reader sees "could not
    load", the developer's console says which setting to change."""

    async def host_page(_: web.Request) -> web.Response:
        return web.Response(
            text=f'<!doctype html><html lang="vi"><title>Báo</title><div data-comments-article="a1"></div>'
            f'<script src="{base}/widget.js" async></script>',
            content_type="text/html",
        )

    other = web.Application()
    other.router.add_get("/", host_page)
    site = await aiohttp_server(other)
    origin = str(site.make_url("")).rstrip("/")
    assert origin != base
    context = await browser.new_context()
    page = await context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    async with page.expect_console_message(lambda m: "COMMENTS_ALLOWED_ORIGINS" in m.text) as info:
        await page.goto(f"{origin}/")
    message = (await info.value).text
    assert origin in message and base in message, message
    assert "does not allow this page's origin" in message, "it tells a refused origin from an unreachable service"
    await page.locator(f"{WIDGET} .cw-info").filter(has_text="Không tải được").wait_for()
    assert sum("COMMENTS_ALLOWED_ORIGINS" in text for text in console) == 1, "said once, not per request"
    await context.close()


async def test_console_names_the_setting_when_the_service_is_unreachable(browser: Browser, base: str) -> None:
    """Everything but the script itself fails at the network level (the service went away, a firewall)."""
    context = await browser.new_context()
    page = await context.new_page()

    async def drop(route: Any) -> None:
        await route.abort("connectionrefused")

    await page.route(re.compile(re.escape(base) + r"/(v1/|widget\.css)"), drop)
    async with page.expect_console_message(lambda m: "COMMENTS_ALLOWED_ORIGINS" in m.text) as info:
        await page.goto(f"{base}/demo/articles/unreachable")
    message = (await info.value).text
    assert message.startswith("Comments widget: could not reach the service at " + base), message
    assert "COMMENTS_ALLOWED_ORIGINS" in message
    await page.locator(f"{WIDGET} .cw-info").filter(has_text="Không tải được").wait_for()
    await context.close()
