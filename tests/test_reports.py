"""Readers' reports (`service.reports`, `lua/report.lua`, `lua/reports_resolve.lua`, `service.api.reports`)
against a real redis-server: counted once per client and comment, limited per client, the reported queue's
order, keep and retract, the time from the first report to a decision, and the overdue alert."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from support import ADMIN, decide, make_app, submit_comment

from service.appkeys import METRICS, REPORTS
from service.clock import now_ms
from service.settings import Settings

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]
LIMIT = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Clients told apart by X-Forwarded-For (the test client is a trusted proxy); a small report limit."""
    return settings.model_copy(update={"trusted_proxies": [ipaddress.ip_network("127.0.0.0/8")],
                                       "rate_limit_report": (LIMIT, 3600)})


def reader(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"198.51.100.{n}"}


async def report(client: Client, comment_id: str, who: int, expect: int = 202, **body: Any) -> None:
    response = await client.post(f"/v1/comments/{comment_id}/reports", json={"reason": "spam", **body},
                                 headers=reader(who))
    assert response.status == expect, await response.text()


async def reported(client: Client) -> Json:
    response = await client.get("/v1/moderation/reports", headers=ADMIN)
    assert response.status == 200, await response.text()
    body: Json = await response.json()
    return body


async def published(client: Client, article: str) -> Json:
    body: Json = await (await client.get(f"/v1/articles/{article}/comments")).json()
    return body


async def test_counted_once_per_client_limited_and_ordered(client: Client) -> None:
    article = "rep-1"
    ids = []
    for n in range(3):
        item = await submit_comment(client, article, body=f"Bình luận số {n}")
        await decide(client, item["id"], "approve")
        ids.append(item["id"])
    first, second, third = ids
    await report(client, second, 1, reason="offensive", text="Lời lẽ thô tục")  # the oldest report
    await report(client, first, 2)
    await report(client, first, 2, reason="false")  # the same client again: not counted
    await report(client, first, 3, reason="unlawful")
    await report(client, third, 4)

    queue = await reported(client)
    assert [c["comment"]["id"] for c in queue["comments"]] == [first, second, third]  # count, then age
    assert [c["open_reports"] for c in queue["comments"]] == [2, 1, 1]
    assert queue["comments"][0]["reasons"] == {"spam": 1, "unlawful": 1}
    assert queue["comments"][1]["reports"][0]["text"] == "Lời lẽ thô tục"
    assert queue["total"] == 3

    # limited per client: the limit counts every report it sends (two so far from reader 2, a repeat included)
    await report(client, second, 2)
    await report(client, third, 2, expect=429)
    metrics = client.app[METRICS].reports
    assert (metrics.labels("counted")._value.get(), metrics.labels("repeated")._value.get(),
            metrics.labels("limited")._value.get()) == (5, 1, 1)


async def test_only_approved_comments_are_reported_and_input_is_checked(client: Client) -> None:
    pending = await submit_comment(client, "rep-2")
    await report(client, pending["id"], 1, expect=404)
    await report(client, "0f" + "0" * 24, 1, expect=404)
    item = await submit_comment(client, "rep-2")
    await decide(client, item["id"], "approve")
    for bad in ({"reason": "boring"}, {"reason": "spam", "text": "x" * 501}, {"reason": "spam", "extra": 1},
                {"reason": "spam", "text": "a\u202eb"}):
        response = await client.post(f"/v1/comments/{item['id']}/reports", json=bad, headers=reader(9))
        assert response.status == 422, bad
    assert (await client.get("/v1/moderation/reports")).status == 401


async def test_keep_and_retract_resolve_reports_and_move_the_sla_metrics(client: Client,
                                                                       settings: Settings) -> None:
    article = "rep-3"
    kept = await submit_comment(client, article, body="Giữ lại")
    pulled = await submit_comment(client, article, body="Gỡ xuống")
    for item in (kept, pulled):
        await decide(client, item["id"], "approve")
        await report(client, item["id"], 1)
    await report(client, kept["id"], 2)

    histogram = client.app[METRICS].time_to_report_decision
    response = await client.post(f"/v1/moderation/reports/{kept['id']}/decision", json={"action": "keep"},
                                 headers=ADMIN)
    assert response.status == 200, await response.text()
    outcome = await response.json()
    assert outcome["resolved_reports"] == 2 and outcome["comment"]["state"] == "approved"
    response = await client.post(f"/v1/moderation/reports/{pulled['id']}/decision",
                                 json={"action": "retract", "reason": "vi phạm"}, headers=ADMIN)
    assert (await response.json())["comment"]["state"] == "retracted"
    assert (await reported(client))["comments"] == []
    assert sum(b.get() for b in histogram._buckets) == 2  # the histogram counted both decisions

    stats = await (await client.get("/v1/moderation/reports/stats", headers=ADMIN)).json()
    assert stats["open"] == 0 and stats["time_to_decision"]["day"]["decisions"] == 2
    assert stats["time_to_decision"]["day"]["median_seconds"] is not None
    assert stats["time_to_decision"]["day"]["p90_seconds"] is not None

    await asyncio.sleep(settings.public_cache_seconds + 0.1)
    assert [c["id"] for c in (await published(client, article))["comments"]] == [kept["id"]]
    # the same reader cannot report the kept comment into the queue again; another reader can
    await report(client, kept["id"], 2)
    assert (await reported(client))["comments"] == []
    await report(client, kept["id"], 3)
    assert [c["open_reports"] for c in (await reported(client))["comments"]] == [1]
    # resolving again is harmless
    response = await client.post(f"/v1/moderation/reports/{pulled['id']}/decision", json={"action": "keep"},
                                 headers=ADMIN)
    assert (await response.json())["resolved_reports"] == 0


async def test_a_report_waiting_too_long_raises_the_alert(client: Client, settings: Settings) -> None:
    item = await submit_comment(client, "rep-4")
    await decide(client, item["id"], "approve")
    await report(client, item["id"], 1)

    async def metric(name: str) -> float:
        text = (await (await client.get("/metrics")).read()).decode()
        return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))

    assert await metric("comments_reports_open") == 1
    assert await metric("comments_reports_overdue") == 0
    later = now_ms() + (settings.report_alert_hours + 1) * 3_600_000
    client.app[REPORTS].clock = lambda: later
    assert await metric("comments_reports_overdue") == 1
    assert await metric("comments_reports_oldest_waiting_seconds") > settings.report_alert_hours * 3600
    stats = await (await client.get("/v1/moderation/reports/stats", headers=ADMIN)).json()
    assert (stats["open"], stats["overdue"], stats["alert_hours"]) == (1, 1, 24)


async def test_the_widgets_report_button_works_in_chromium(aiohttp_server: Any, settings: Settings) -> None:
    """The reader's side in a real Chromium (as tests/test_widget_browser.py drives it): "Báo vi phạm" under an
    approved comment, a reason and words, the thanks; the moderators' queue has the report."""
    import shutil


    try:
        from playwright.async_api import async_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        pytest.skip("the playwright package is not installed")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium is not installed")
    app = make_app(settings)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    from aiohttp import ClientSession

    async with ClientSession() as http:
        captcha = await (await http.post(f"{base}/v1/captchas")).json()
        accepted = await (await http.post(f"{base}/v1/articles/rep-browser/comments", json={
            "name": "Hùng", "email": "hung@example.vn", "title": "Ý kiến", "body": "Một bình luận gây tranh cãi",
            "captcha_id": captcha["id"], "captcha_answer": "ABCDE"})).json()
        response = await http.post(f"{base}/v1/moderation/comments/{accepted['id']}/decision",
                                   json={"action": "approve"}, headers=ADMIN)
        assert response.status == 200
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = await browser.new_page(locale="vi-VN")
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(f"{base}/demo/articles/rep-browser")
                item = page.locator(f'[data-comments-article] li.cw-c[data-id="{accepted["id"]}"]')
                button = item.get_by_role("button", name="Báo vi phạm bình luận của Hùng")
                await button.click()
                assert await button.get_attribute("aria-expanded") == "true"
                await item.get_by_label("Lý do").select_option("offensive")
                await item.get_by_label("Mô tả thêm (không bắt buộc)").fill("Lời lẽ xúc phạm người khác")
                await item.get_by_role("button", name="Gửi báo cáo").click()
                await item.get_by_role("status").filter(has_text="Cảm ơn bạn").wait_for()
                assert errors == []
            finally:
                await browser.close()
        queue = await (await http.get(f"{base}/v1/moderation/reports", headers=ADMIN)).json()
    assert [(c["comment"]["id"], c["open_reports"]) for c in queue["comments"]] == [(accepted["id"], 1)]
    assert queue["comments"][0]["reports"][0]["text"] == "Lời lẽ xúc phạm người khác"
    assert queue["comments"][0]["reasons"] == {"offensive": 1}
