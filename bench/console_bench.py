"""The moderation console under a scripted keyboard moderator, in Debian's headless Chromium.

    python -m bench --scenarios console      # as part of `make bench` (the default runs every scenario)
    python -m bench.console_bench            # alone

A person is invited and signs in at /moderation/; the script presses `a` (approve) on the current card, waits for
the next card to be shown, and presses again, `DECISIONS` times. Reported:

* decisions per minute: decisions the service confirmed (200), from the first keypress to the last confirmation;
* keypress -> next card shown: from the keydown event's timestamp (taken by the browser when the key arrived,
  before any script ran) to the second animation frame after the next card became current, that is once the
  frame showing it was painted (conservative by up to one frame); p50 and p95, against the target of 100 ms.

The figures are reported, never asserted: they depend on the machine.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import aiohttp

from bench.api import Api
from bench.processes import ADMIN_TOKEN, Service

DECISIONS: Final = 150
#: Seeded beyond the decisions, so the console always has a next card to show.
SPARE: Final = 30
TARGET_MS: Final = 100.0
ARTICLE: Final = "bench-console"
PASSWORD: Final = "một con ngựa vằn chạy qua cầu"

#: Runs in the page before its own script (an init script is not subject to the page's CSP): the time from a key
#: to the paint of the card it made current.
KEY_TO_CARD: Final = """
(() => {
  window.__keyToCard = [];
  let pressed = null;
  window.addEventListener('keydown', (event) => { if (event.key === 'a') pressed = event.timeStamp; }, true);
  new MutationObserver((records) => {
    if (pressed === null) return;
    const shown = records.some((r) => r.target.classList && r.target.classList.contains('card')
      && r.target.getAttribute('aria-current') === 'true');
    if (!shown) return;
    const start = pressed;
    pressed = null;
    requestAnimationFrame(() => requestAnimationFrame(() => window.__keyToCard.push(performance.now() - start)));
  }).observe(document, {subtree: true, attributes: true, attributeFilter: ['aria-current']});
})();
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _person(base_url: str) -> str:
    name = f"bench{secrets.token_hex(3)}"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base_url}/v1/accounts/invitations", json={"name": name, "role": "moderator"},
                             headers=admin) as response:
            if response.status != 201:
                raise RuntimeError(f"invitation: {response.status} {await response.text()}")
            token = (await response.json())["link"].rsplit("/", 1)[1]
        async with http.post(f"{base_url}/v1/accounts/invitations/{token}/accept",
                             json={"password": PASSWORD}) as response:
            if response.status != 201:
                raise RuntimeError(f"accepting the invitation: {response.status} {await response.text()}")
    return name


async def _measure(base_url: str, decisions: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        return {"skipped": "Chromium is not installed (Debian: apt-get install chromium)"}
    async with Api(base_url) as api:
        await api.submit_many(ARTICLE, range(decisions + SPARE))
    name = await _person(base_url)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
            await context.add_init_script(KEY_TO_CARD)
            page = await context.new_page()
            confirmed: list[float] = []
            refused: list[int] = []

            def answered(response: Any) -> None:
                if response.url.endswith("/decision"):
                    (confirmed.append(time.perf_counter()) if response.status == 200
                     else refused.append(response.status))

            page.on("response", answered)
            await page.goto(f"{base_url}/moderation/")
            await page.get_by_label("Tên đăng nhập").fill(name)
            await page.get_by_label("Mật khẩu").fill(PASSWORD)
            await page.keyboard.press("Enter")
            await page.locator(".card.is-current").wait_for()
            started = time.perf_counter()
            for _ in range(decisions):
                current = await page.locator(".card.is-current").get_attribute("data-id")
                await page.keyboard.press("a")
                await page.locator(f'.card.is-current:not([data-id="{current}"])').wait_for()
            for _ in range(300):  # the last requests finish after their cards moved on
                if len(confirmed) + len(refused) >= decisions:
                    break
                await asyncio.sleep(0.1)
            samples: list[float] = await page.evaluate("() => window.__keyToCard")
        finally:
            await browser.close()
    elapsed = (max(confirmed) if confirmed else time.perf_counter()) - started
    return {
        "decisions": len(confirmed),
        "refused": len(refused),
        "seconds": round(elapsed, 3),
        "decisions_per_minute": round(len(confirmed) / elapsed * 60, 1) if elapsed > 0 else 0.0,
        "key_to_card_ms": {
            "samples": len(samples),
            "p50": round(statistics.median(samples), 1) if samples else None,
            "p95": round(percentile(samples, 0.95), 1) if samples else None,
            "max": round(max(samples), 1) if samples else None,
        },
        "target_p95_ms": TARGET_MS,
    }


def measure(base_url: str, decisions: int = DECISIONS) -> dict[str, Any]:
    """The console's figures against a running service (its admin token is the bench's)."""
    return asyncio.run(_measure(base_url, decisions))


def describe(found: dict[str, Any]) -> str:
    if "skipped" in found:
        return f"skipped: {found['skipped']}"
    latency = found["key_to_card_ms"]
    met = "met" if latency["p95"] is not None and latency["p95"] <= found["target_p95_ms"] else "NOT met"
    return (f"{found['decisions_per_minute']:,.0f} decisions/min by a scripted keyboard moderator "
            f"({found['decisions']} decisions in {found['seconds']:.1f} s, {found['refused']} refused); "
            f"keypress -> next card shown p50 {latency['p50']} ms, p95 {latency['p95']} ms, max {latency['max']} ms "
            f"over {latency['samples']} keys (target p95 <= {found['target_p95_ms']:.0f} ms: {met})")


def run_alone(output: Path | None = None, decisions: int = DECISIONS) -> dict[str, Any]:
    """Start `comments-service run` (one worker) in a temporary directory, measure, stop it."""
    with tempfile.TemporaryDirectory(prefix="comments-console-bench-") as workdir:
        service = Service(Path(workdir), 1)
        service.start()
        try:
            found = measure(service.base_url, decisions)
        finally:
            service.stop()
    print(f"Console: {describe(found)}")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(found, indent=2) + "\n")
        print(f"wrote {output}", file=sys.stderr)
    return found


if __name__ == "__main__":
    run_alone(Path(__file__).parent / "results" / "console.json")
