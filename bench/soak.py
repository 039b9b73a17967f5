"""`make soak`: a bounded soak on loopback. `comments-service run` (embedded Redis, a temporary data dir, rate
limits off, the captcha test answer) gets mixed traffic at a fixed rate (captchas, submissions, list reads,
claims and decisions, feed reads); every minute it samples p99 latency, the service's RSS, Redis used_memory
and the comments kept. At the end it asserts: zero 5xx, p99 stable (last minute within 2x of the first),
RSS flat (within +20% of the first minute), Redis memory proportional to the comments kept, and no key
without a TTL among the short-lived ones (captchas, rate limits, idempotency, seen-text).

    python -m bench.soak [--minutes 10] [--rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from service.embedded import free_port

SHORT_LIVED = ("cm:cap:*", "cm:rl:*", "cm:idem:*", "cm:seen:*")
ADMIN = {"Authorization": "Bearer soak-admin-token"}
ARTICLES = [f"soak-{i}" for i in range(50)]


@dataclass
class Minute:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


def _rss_kb(pid: int) -> int:
    """The service's processes (workers and captcha renderers), without the embedded redis-server."""
    total = 0
    family, frontier = [pid], [pid]
    while frontier:
        frontier = [c for p in frontier for c in _children(p)]
        family.extend(frontier)
    for child in family:
        try:
            if Path(f"/proc/{child}/comm").read_text().strip() == "redis-server":
                continue
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout
    except OSError:
        return []
    return [int(p) for p in out.split()]


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


async def _one(http: aiohttp.ClientSession, base: str, minute: Minute, method: str, path: str,
               **kwargs: Any) -> Any:
    started = time.perf_counter()
    async with http.request(method, base + path, **kwargs) as response:
        body = await response.read()
    minute.latencies.append(time.perf_counter() - started)
    minute.statuses[response.status] = minute.statuses.get(response.status, 0) + 1
    return response.status, body


async def _mixed(http: aiohttp.ClientSession, base: str, minute: Minute, n: int) -> None:
    """One unit of traffic: the mix a news site sees (mostly reads, some writing, some moderating)."""
    roll = n % 20
    article = random.choice(ARTICLES)
    if roll < 10:
        await _one(http, base, minute, "GET", f"/v1/articles/{article}/comments")
    elif roll < 14:
        status, body = await _one(http, base, minute, "POST", "/v1/captchas")
        if status == 201:
            form = {"name": "Độc giả", "email": f"r{n}@example.com", "title": "Ý kiến",
                    "body": f"Bình luận {n} về bài {article}", "captcha_id": json.loads(body)["id"],
                    "captcha_answer": "ABCDE"}
            await _one(http, base, minute, "POST", f"/v1/articles/{article}/comments", json=form,
                       headers={"Idempotency-Key": f"soak-{n}"})
    elif roll < 16:
        status, body = await _one(http, base, minute, "POST", "/v1/moderation/claims", headers=ADMIN,
                                  json={"limit": 5, "lease_seconds": 60})
        if status == 200:
            for comment in json.loads(body)["comments"]:
                action = random.choice(["approve", "approve", "reject", "spam"])
                await _one(http, base, minute, "POST", f"/v1/moderation/comments/{comment['id']}/decision",
                           headers=ADMIN, json={"action": action})
    elif roll < 18:
        await _one(http, base, minute, "GET", "/v1/feed?limit=100", headers=ADMIN)
    else:
        await _one(http, base, minute, "GET", f"/v1/counts?article_id={article}")


async def _sample(redis: Redis, pid: int, minute: Minute) -> dict[str, Any]:
    info = await redis.info("memory")
    kept = 0
    async for _ in redis.scan_iter(match="cm:{p*}:c:*", count=1000):
        kept += 1
    return {"p99_ms": round(_p99(minute.latencies) * 1000, 1), "requests": len(minute.latencies),
            "5xx": sum(c for s, c in minute.statuses.items() if s >= 500), "rss_mb": round(_rss_kb(pid) / 1024, 1),
            "redis_mb": round(info["used_memory"] / 2**20, 2), "comments": kept}


async def soak(minutes: float, rate: int, base: str, redis_url: str, pid: int) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    redis = Redis.from_url(redis_url)
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        n = 0
        pending: set[asyncio.Task[None]] = set()
        for index in range(max(1, round(minutes))) if minutes >= 1 else [0]:
            minute = Minute()
            length = 60.0 if minutes >= 1 else minutes * 60
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < length:
                due = int(elapsed * rate)
                while n - index * int(length * rate) < due:
                    task = asyncio.create_task(_mixed(http, base, minute, n))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    n += 1
                await asyncio.sleep(0.005)
            if pending:
                await asyncio.wait(pending, timeout=30)
            samples.append({"minute": index + 1, **await _sample(redis, pid, minute)})
            print(samples[-1], flush=True)
    short_lived_without_ttl = []
    for pattern in SHORT_LIVED:
        async for key in redis.scan_iter(match=pattern, count=1000):
            if await redis.ttl(key) < 0:
                short_lived_without_ttl.append(key.decode())
    await redis.aclose()
    samples.append({"short_lived_without_ttl": short_lived_without_ttl})
    return samples


def _judge(samples: list[dict[str, Any]]) -> list[str]:
    minutes = [s for s in samples if "minute" in s]
    first, last = minutes[0], minutes[-1]
    problems = []
    if any(m["5xx"] for m in minutes):
        problems.append(f"5xx responses: {[m['5xx'] for m in minutes]}")
    if last["p99_ms"] > 2 * max(first["p99_ms"], 5.0):
        problems.append(f"p99 grew from {first['p99_ms']} ms to {last['p99_ms']} ms")
    if last["rss_mb"] > 1.2 * first["rss_mb"]:
        problems.append(f"RSS grew from {first['rss_mb']} MB to {last['rss_mb']} MB")
    # Redis memory per comment kept must not grow: later minutes hold more comments at the same cost each.
    per = [(m["redis_mb"] * 2**20) / max(1, m["comments"]) for m in minutes if m["comments"] > 100]
    if len(per) >= 2 and per[-1] > 1.5 * per[0]:
        problems.append(f"Redis bytes per comment grew from {per[0]:.0f} to {per[-1]:.0f}")
    if samples[-1]["short_lived_without_ttl"]:
        problems.append(f"short-lived keys without TTL: {samples[-1]['short_lived_without_ttl'][:10]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=200, help="requests started per second")
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="comments-soak-"))
    port = free_port()
    env = {**os.environ, "COMMENTS_DATA_DIR": str(data_dir), "COMMENTS_PORT": str(port),
           "COMMENTS_HOST": "127.0.0.1", "COMMENTS_RATE_LIMIT_ENABLED": "false",
           "COMMENTS_CAPTCHA_TEST_ANSWER": "ABCDE", "COMMENTS_MIN_FILL_SECONDS": "0",
           "COMMENTS_ADMIN_TOKEN": "soak-admin-token", "COMMENTS_LOG_LEVEL": "WARNING",
           "COMMENTS_SECRET_KEY": "soak-" * 10}
    env.pop("COMMENTS_REDIS_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "service", "run"], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=open(data_dir / "service.log", "wb"))  # noqa: SIM115
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the service did not start") from None
                time.sleep(0.2)
        redis_url = (data_dir / "redis" / "url").read_text().strip()
        print(f"soak: {args.minutes} min at {args.rate} req/s against {base} (Redis {redis_url})", flush=True)
        samples = asyncio.run(soak(args.minutes, args.rate, base, redis_url, process.pid))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    problems = _judge(samples)
    minutes = [s for s in samples if "minute" in s]
    print("\nminute  requests  p99 ms  5xx  RSS MB  Redis MB  comments")
    for m in minutes:
        print(f"{m['minute']:>6}  {m['requests']:>8}  {m['p99_ms']:>6}  {m['5xx']:>3}  {m['rss_mb']:>6}  "
              f"{m['redis_mb']:>8}  {m['comments']:>8}")
    print(f"short-lived keys without TTL: {len(samples[-1]['short_lived_without_ttl'])}")
    print("PASS" if not problems else "FAIL:\n  " + "\n  ".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
