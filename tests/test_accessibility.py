"""axe-core on the demo page and the widget in each of its states, in Debian's Chromium: no serious or critical
violation anywhere.

axe-core comes from npm (`make axe-core`, which `make test` and .ci/run call); without it these tests fail and
say how to install it. The figures (violations by impact, per state) are printed and written to
artifacts/axe.json.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from test_widget_browser import (
    CAPTCHA_ANSWER,
    WIDGET,
    Api,
    api,
    article_id,
    base,
    browser,
    fill_form,
    http,
)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
BLOCKING = ("serious", "critical")
#: The widget's browser-test fixtures (Chromium launched with its flags, the service on a real Redis), found by
#: pytest under these names.
FIXTURES = (api, base, browser, http)


def axe_source() -> str:
    candidates = [Path(p) for p in (os.environ.get("AXE_CORE_JS"),) if p]
    candidates.append(ROOT / "node_modules" / "axe-core" / "axe.min.js")
    for path in candidates:
        if path.is_file():
            return path.read_text("utf-8")
    pytest.fail(
        "axe-core is not installed (looked for " + ", ".join(map(str, candidates)) + "). Install it with "
        "`make axe-core` (that is `npm install --prefix . --no-save axe-core` in the repository root; Debian: "
        "`apt-get install npm` first), or point AXE_CORE_JS at axe.min.js."
    )


async def audit(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on the whole page, the widget's open shadow root included."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.add_script_tag(content=axe_source())
    violations: list[dict[str, Any]] = await page.evaluate(
        """async () => {
          const result = await axe.run(document, {resultTypes: ['violations']});
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.map((n) => ({target: n.target, summary: n.failureSummary})),
          }));
        }"""
    )
    return violations


def by_impact(violations: list[dict[str, Any]]) -> dict[str, int]:
    """Violated nodes per impact (minor, moderate, serious, critical)."""
    counts: Counter[str] = Counter()
    for v in violations:
        counts[str(v["impact"])] += len(v["nodes"])
    return {impact: counts[impact] for impact in ("minor", "moderate", "serious", "critical")}


class Audits:
    """axe's findings, state by state: each state's violations by impact, and the blocking ones."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, int]] = {}
        self.blocking: dict[str, list[dict[str, Any]]] = {}

    async def check(self, state: str, page: Page) -> None:
        violations = await audit(page)
        self.figures[state] = by_impact(violations)
        found = [v for v in violations if v["impact"] in BLOCKING]
        if found:
            self.blocking[state] = found


async def open_page(browser: Browser, url: str, width: int = 1280) -> tuple[Page, list[str]]:
    # bypass_csp: axe is injected as an inline script, which a strict Content-Security-Policy would refuse
    context = await browser.new_context(viewport={"width": width, "height": 900}, locale="vi-VN", bypass_csp=True)
    page = await context.new_page()
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.on("pageerror", lambda exc: failed.append(f"page error: {exc}"))
    await page.goto(url)
    await page.locator(f"{WIDGET} .cw").wait_for(state="visible")
    await page.locator(f"{WIDGET} .cw-info").filter(has_text="Đang tải").wait_for(state="hidden")
    return page, failed


async def test_demo_page_and_widget_states(browser: Browser, base: str, api: Api) -> None:
    audits = Audits()
    figures, blocking, check = audits.figures, audits.blocking, audits.check

    # with approved comments (and a reply), on a desktop and on a phone
    busy = article_id("axe-busy")
    first = await api.publish(busy, name="Nguyễn Văn An", title="Mong có đèn", body="Cầu đẹp, cần thêm đèn.")
    await api.publish(busy, name="Trần Thị Bích", title="Đồng ý", body="Tôi cũng nghĩ vậy.", parent_id=first)
    await api.settle()
    page, failed = await open_page(browser, f"{base}/demo/articles/{busy}")
    await page.locator(f'{WIDGET} li.cw-c[data-id="{first}"]').wait_for()
    await check("approved comments", page)
    await page.context.close()
    page, more = await open_page(browser, f"{base}/demo/articles/{busy}", width=360)
    await page.locator(f'{WIDGET} li.cw-c[data-id="{first}"]').wait_for()
    await check("approved comments, 360 px", page)
    failed += more

    # a new article: empty, then the reader's way through the form
    empty = article_id("axe-empty")
    page, more = await open_page(browser, f"{base}/demo/articles/{empty}")
    failed += more
    await page.get_by_label("Họ Tên", exact=True).focus()  # loads the captcha, as a reader would
    await page.wait_for_function(
        "() => document.querySelector('[data-comments-article]').shadowRoot.querySelector('.cw-cap-img').complete"
        " && document.querySelector('[data-comments-article]').shadowRoot.querySelector('.cw-cap-img').src"
    )
    await check("empty", page)

    await page.get_by_role("button", name="Gửi bình luận").click()
    await page.locator(f"{WIDGET} .cw-status.is-error").wait_for()
    await check("form errors shown", page)

    await page.get_by_label("Nội dung", exact=True).fill("Ý kiến rất dài. " * 400)  # 6,400 characters
    await page.locator(f"{WIDGET} .cw-counter.is-over").wait_for()
    await page.locator(f"{WIDGET} .cw-limit").filter(has_text="5000").wait_for()
    await check("over-limit counter", page)

    await page.get_by_role("button", name="Nghe mã").click()
    await page.locator(f"{WIDGET} .cw-listen.is-playing").wait_for()
    await check("audio playing", page)
    await page.get_by_role("button", name="Dừng nghe").click()

    await fill_form(page, name="Lê Thu", email="thu@example.vn", title="Hỏi", body="Khi nào thông xe?",
                    code=CAPTCHA_ANSWER)
    await page.get_by_role("button", name="Gửi bình luận").click()
    await page.locator(f"{WIDGET} .cw-status.is-ok").wait_for()
    await page.locator(f"{WIDGET} .cw-badge").wait_for()
    await check("submitted, pending", page)
    await page.context.close()

    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "axe.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    print("\naxe-core violations (nodes) by impact:")
    for state, counts in figures.items():
        print(f"  {state:28} " + "  ".join(f"{k} {v}" for k, v in counts.items()))
    assert blocking == {}, json.dumps(blocking, indent=1, ensure_ascii=False)[:6000]
    assert set(figures) == {"approved comments", "approved comments, 360 px", "empty", "form errors shown",
                            "over-limit counter", "audio playing", "submitted, pending"}
    # the demo page's favicon and everything else it loads exists
    assert failed == [], failed
