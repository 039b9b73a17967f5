"""Email must not slow readers or moderators: submissions and decisions with email off, with email on against a
closed SMTP port, and against an SMTP server that accepts connections and never answers (the worst a mail server
can do: every send hangs until its timeout). Every comment asks for the approval email and a moderator wants
each new comment, so every submission and every decision makes an email.

    python -m bench.mail_bench [--seconds 5] [--concurrency 16]

The service runs in this process (one worker, `create_app` on a loopback port, its own redis-server) with the
client on the same event loop, so the figures are for comparing the two modes with each other, not absolute
capacity (`python -m bench` measures that). Reports rates and p50/p99 latencies per mode, and how many SMTP
connections the silent server was holding (sends that hung, in the background) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from redis.asyncio import Redis

from service.accounts import AccountRole
from service.app import create_app
from service.appkeys import ACCOUNTS, METRICS
from service.embedded import embedded_redis, free_port
from service.settings import Settings

ADMIN_TOKEN: Final = "bench-admin-token-0123456789abcdef"
ANSWER: Final = "ABCDE"
ARTICLES: Final = tuple(f"mail-bench-{n}" for n in range(16))
#: off: no email; refused: email on, the SMTP port refuses connections (every send fails at once); silent: email
#: on, the SMTP server accepts connections and never answers (every send hangs until its timeout). refused and
#: silent make the same emails: what they differ by is the cost of a mail server that hangs.
MODES: Final = ("off", "refused", "silent")


def _settings(redis_url: str, data_dir: Path, port: int, smtp_port: int | None) -> Settings:
    mail: dict[str, Any] = {} if smtp_port is None else {
        "smtp_url": SecretStr(f"smtp://127.0.0.1:{smtp_port}"), "mail_from": "Bench <mail@bench.example>",
        "mail_timeout_seconds": 10.0}
    return Settings(redis_url=redis_url, data_dir=data_dir, port=port, secret_key=SecretStr("b" * 48),
                    admin_token=SecretStr(ADMIN_TOKEN), rate_limit_enabled=False, min_fill_seconds=0,
                    captcha_test_answer=ANSWER, captcha_render_processes=1, captcha_pool_size=0,
                    log_level="WARNING", **mail)


def _summary(latencies: list[float], seconds: float, errors: int) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0
    return {"per_second": round(len(latencies) / seconds, 1), "p50_ms": round(statistics.median(ordered) * 1000, 2)
            if ordered else 0.0, "p99_ms": round(p99 * 1000, 2), "count": len(latencies), "errors": errors}


async def _load(seconds: float, concurrency: int,
                one: Callable[[int], Awaitable[bool | None]]) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    serial = 0

    async def worker() -> None:
        nonlocal errors, serial
        while time.monotonic() < deadline:
            serial += 1
            started = time.monotonic()
            done = await one(serial)
            if done is None:  # nothing left to do
                return
            if done:
                latencies.append(time.monotonic() - started)
            else:
                errors += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return _summary(latencies, time.monotonic() - started, errors)


async def measure(mode: str, redis_url: str, workdir: Path, seconds: float, concurrency: int) -> dict[str, Any]:
    held: list[asyncio.StreamWriter] = []

    async def say_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    silent = await asyncio.start_server(say_nothing, "127.0.0.1", 0) if mode == "silent" else None
    smtp_port = silent.sockets[0].getsockname()[1] if silent is not None else None
    if mode == "refused":
        smtp_port = free_port()  # nothing listens there: every send fails at once
    port = free_port()
    app = create_app(_settings(redis_url, workdir / mode, port, smtp_port))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    base = f"http://127.0.0.1:{port}"
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        if mode != "off":
            people = app[ACCOUNTS]
            invited = await people.invite("bientap", AccountRole.MODERATOR, "bench")
            await people.accept(invited.token, "một mật khẩu dài cho bench")
        async with aiohttp.ClientSession() as http:
            if mode != "off":
                async with http.put(f"{base}/v1/moderation/notifications/bientap", headers=admin,
                                    json={"email": "bientap@bench.example", "mode": "each"}) as response:
                    assert response.status == 200, await response.text()
            submitted: list[str] = []

            async def submit(serial: int) -> bool:
                async with http.post(f"{base}/v1/captchas") as response:
                    captcha = (await response.json())["id"]
                form = {"name": "Bạn đọc", "email": f"reader{serial}@bench.example", "title": "Ý kiến",
                        "body": f"Bình luận số {serial} về bài viết.", "captcha_id": captcha,
                        "captcha_answer": ANSWER, "notify": True}
                async with http.post(f"{base}/v1/articles/{ARTICLES[serial % len(ARTICLES)]}/comments",
                                     json=form) as response:
                    if response.status != 202:
                        return False
                    submitted.append((await response.json())["id"])
                    return True

            submissions = await _load(seconds, concurrency, submit)
            queue = list(submitted)

            async def approve(_: int) -> bool | None:
                if not queue:
                    return None
                comment_id = queue.pop()
                async with http.post(f"{base}/v1/moderation/comments/{comment_id}/decision", headers=admin,
                                     json={"action": "approve"}) as response:
                    return response.status == 200

            decisions = await _load(seconds, concurrency, approve)
        await asyncio.sleep(1.0)  # let the consumer turn the last events into emails
        registry = app[METRICS].registry
        failed = sum(registry.get_sample_value("comments_mail_total", {"kind": kind, "outcome": "failed"}) or 0
                     for kind in ("approved", "moderator"))
        redis = Redis.from_url(redis_url)
        try:
            queued = int(await redis.zcard("cm:{mail}:due"))
        finally:
            await redis.aclose()
        return {"mode": mode, "submissions": submissions, "decisions": decisions,
                "smtp_connections_hanging": len(held), "mail_attempts_failed": failed, "mail_jobs_waiting": queued}
    finally:
        await runner.cleanup()
        for writer in held:
            writer.close()
        if silent is not None:
            silent.close()
            await silent.wait_closed()


def describe(found: dict[str, Any]) -> str:
    s, d = found["submissions"], found["decisions"]
    extra = (f"; SMTP connections hanging {found['smtp_connections_hanging']}, attempts failed "
             f"{found['mail_attempts_failed']:.0f}, emails waiting {found['mail_jobs_waiting']}"
             if found["mode"] != "off" else "")
    return (f"{found['mode']:<8} submit {s['per_second']:>7.1f}/s p50 {s['p50_ms']:6.2f} ms p99 {s['p99_ms']:7.2f} ms"
            f" (errors {s['errors']}) | approve {d['per_second']:>7.1f}/s p50 {d['p50_ms']:6.2f} ms p99 "
            f"{d['p99_ms']:7.2f} ms (errors {d['errors']}){extra}")


async def run(seconds: float, concurrency: int) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="comments-mail-bench-") as workdir:
        for mode in MODES:
            with embedded_redis(Path(workdir) / f"redis-{mode}") as url:
                found = await measure(mode, url, Path(workdir), seconds, concurrency)
            print(describe(found), file=sys.stderr, flush=True)
            results.append(found)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mail_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of submissions, then of decisions")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.seconds, args.concurrency))
    print(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
