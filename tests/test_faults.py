"""Fault injection against real processes on loopback: Redis SIGKILLed and restarted from its AOF, the service
SIGKILLed under load, Redis paused with SIGSTOP, a TCP proxy dropping and delaying the service's Redis
connections, and slow or idle clients. Each test prints what it injected and what it found.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from redis.asyncio import Redis
from support import RedisServer, comment_form
from tcp_proxy import ServedService, TcpProxy

from service import keys
from service.scripts import as_text
from service.submissions import idempotent_comment_id

RECORD_FIELDS: Final = {b"d", b"a", b"t", b"s", b"v", b"f"}


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, so killing it does not disturb the session one."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    yield server
    server.kill()


def _form(captcha_id: str, n: int) -> dict[str, Any]:
    return comment_form(captcha_id, name=f"Độc giả {n}", email=f"r{n}@example.com", body=f"Bình luận số {n}")


async def _submit(http: aiohttp.ClientSession, base: str, n: int,
                  key: str | None = None) -> tuple[int, dict[str, Any]]:
    to = aiohttp.ClientTimeout(total=5)
    async with http.post(f"{base}/v1/captchas", timeout=to) as response:
        if response.status != 201:
            return response.status, {}
        captcha = await response.json()
    headers = {"Idempotency-Key": key} if key else {}
    async with http.post(f"{base}/v1/articles/art-{n % 7}/comments", json=_form(captcha["id"], n),
                         headers=headers, timeout=to) as response:
        return response.status, await response.json(content_type=None)


async def _complete_records(redis: Redis, ids: list[str]) -> list[str]:
    """Ids whose record is missing, incomplete, or not in its partition's and its article's pending sets."""
    broken = []
    for comment_id in ids:
        record = await redis.hgetall(keys.comment(comment_id))
        p = keys.partition_of_comment(comment_id)
        if not set(record) >= RECORD_FIELDS or await redis.zscore(keys.pending(p), comment_id) is None \
                or await redis.zscore(keys.article_pending(as_text(record[b"a"])), comment_id) is None:
            broken.append(comment_id)
    return broken


async def _all_records(redis: Redis) -> list[str]:
    return [key.decode().rsplit(":", 1)[1] async for key in redis.scan_iter(match="cm:{p*}:c:*", count=1000)]


@pytest.mark.slow
async def test_redis_sigkill_keeps_acknowledged_submissions(own_redis: RedisServer, tmp_path: Path) -> None:
    service = ServedService(own_redis.url, tmp_path / "svc")
    service.start()
    acknowledged: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(200):
                status, body = await _submit(http, service.url, n)
                assert status == 202, body
                acknowledged.append(body["id"])
        # A SIGKILL of redis-server loses nothing already written to the OS (appendfsync everysec guards
        # against a machine crash, which this is not).
        own_redis.kill()
        own_redis.start()
        redis = Redis.from_url(own_redis.url)
        try:
            assert await _complete_records(redis, acknowledged) == []
        finally:
            await redis.aclose()
    finally:
        service.stop()
    print(f"\nredis SIGKILL: {len(acknowledged)} acknowledged, all found after the restart from the AOF")


@pytest.mark.slow
async def test_service_sigkill_under_load_loses_no_acknowledged_comment(own_redis: RedisServer,
                                                                          tmp_path: Path) -> None:
    service = ServedService(own_redis.url, tmp_path / "svc")
    service.start()
    acknowledged: list[str] = []
    failed = 0
    enough = asyncio.Event()

    async def writer(http: aiohttp.ClientSession, start: int) -> None:
        nonlocal failed
        for n in range(start, start + 10_000, 16):
            try:
                status, body = await _submit(http, service.url, n)
            except (TimeoutError, aiohttp.ClientError):
                failed += 1
                return
            if status == 202:
                acknowledged.append(body["id"])
                if len(acknowledged) >= 150:
                    enough.set()

    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(writer(http, i)) for i in range(16)]
        await asyncio.wait_for(enough.wait(), timeout=60)
        service.kill()
        await asyncio.gather(*tasks)
    redis = Redis.from_url(own_redis.url)
    try:
        stored = await _all_records(redis)
        assert set(acknowledged) <= set(stored), "an acknowledged comment is missing"
        assert await _complete_records(redis, stored) == [], "a comment is half written"
    finally:
        await redis.aclose()
    print(f"\nservice SIGKILL under load: {len(acknowledged)} acknowledged, {len(stored)} stored, all complete, "
          f"{failed} connections cut")


@pytest.mark.slow
async def test_redis_sigstop_gives_503_then_recovers(own_redis: RedisServer, tmp_path: Path) -> None:
    service = ServedService(own_redis.url, tmp_path / "svc")
    service.start()
    assert own_redis.process is not None
    try:
        async with aiohttp.ClientSession() as http:
            status, _ = await _submit(http, service.url, 1)
            assert status == 202
            os.kill(own_redis.process.pid, signal.SIGSTOP)
            try:
                timings = []
                for n in range(5):
                    # Captchas are signed tokens: issuing one needs no Redis; submitting does.
                    async with http.post(f"{service.url}/v1/captchas",
                                         timeout=aiohttp.ClientTimeout(total=10)) as response:
                        assert response.status == 201
                        captcha = await response.json()
                    started = time.monotonic()
                    async with http.post(f"{service.url}/v1/articles/art-{n}/comments", json=_form(captcha["id"], n),
                                         timeout=aiohttp.ClientTimeout(total=10)) as response:
                        timings.append(time.monotonic() - started)
                        assert response.status == 503, await response.text()
                        assert response.content_type == "application/problem+json"
                        assert response.headers["Retry-After"]
                    async with http.get(f"{service.url}/v1/articles/art-{n}/comments",
                                        timeout=aiohttp.ClientTimeout(total=10)) as response:
                        assert response.status == 503
                assert max(timings) < 2.0, timings
            finally:
                os.kill(own_redis.process.pid, signal.SIGCONT)
            deadline = time.monotonic() + 10
            status = 0
            while time.monotonic() < deadline and status != 202:
                status, _ = await _submit(http, service.url, 2)
            assert status == 202, "the service did not recover without a restart"
    finally:
        service.stop()
    print(f"\nredis SIGSTOP: 10 requests got 503 in at most {max(timings):.2f} s; recovered without restart")


@pytest.mark.slow
async def test_dropped_and_delayed_redis_connections_with_retries(own_redis: RedisServer,
                                                                  tmp_path: Path) -> None:
    proxy = TcpProxy("127.0.0.1", own_redis.port)
    await proxy.start()
    service = ServedService(proxy.url, tmp_path / "svc")
    await asyncio.to_thread(service.start)
    acknowledged: dict[str, str] = {}
    attempts = 0
    errors: dict[int, int] = {}
    abandoned: list[tuple[str, str]] = []

    async def client(http: aiohttp.ClientSession, start: int) -> None:
        nonlocal attempts
        for n in range(start, start + 60, 6):
            key = f"fault-{n}"
            for _ in range(50):  # retry with the same key until a 202 or a 4xx
                attempts += 1
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                    status, body = await _submit(http, service.url, n, key)
                    if status == 202:
                        assert acknowledged.setdefault(key, body["id"]) == body["id"]
                        break
                    if 400 <= status < 500:
                        # Not acknowledged, so not lost: a retry after a failed first attempt brings a
                        # fresh captcha, and the request fingerprint includes captcha_id (reported defect).
                        abandoned.append((key, body.get("code", "")))
                        break
                    # Redis unreachable: 503 and retry. (A reset Redis connection once gave a 500 here;
                    # test_reset_redis_connection_is_503_not_500 holds it to 503 now. This test only counts.)
                    assert status in (500, 503), (status, body)
                    errors[status] = errors.get(status, 0) + 1
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"{key} never acknowledged")

    async def chaos() -> None:
        while len(acknowledged) + len(abandoned) < 60:
            await asyncio.sleep(0.15)
            proxy.drop_all()
            proxy.delay = 0.3 if proxy.delay == 0 else 0.0

    try:
        async with aiohttp.ClientSession() as http:
            chaos_task = asyncio.create_task(chaos())
            await asyncio.gather(*(client(http, i) for i in range(6)))
            await chaos_task
        redis = Redis.from_url(own_redis.url)
        try:
            stored = await _all_records(redis)
            # One comment per key at most: the ids a key can map to are known, so a duplicate would show.
            per_key = {idempotent_comment_id(b"s" * 48, f"art-{n % 7}", f"fault-{n}") for n in range(60)}
            assert set(stored) <= per_key and len(stored) == len(set(stored)), "a duplicate comment"
            assert set(acknowledged.values()) <= set(stored), "an acknowledged comment is lost"
            assert await _complete_records(redis, stored) == []
        finally:
            await redis.aclose()
    finally:
        await asyncio.to_thread(service.stop)
        await proxy.close()
    print(f"\ntcp proxy: {proxy.connections_dropped} Redis connections dropped, {attempts} attempts, "
          f"{len(acknowledged)} acknowledged, {len(stored)} stored, 0 duplicates; retried statuses {errors}; "
          f"given up on 4xx: {len(abandoned)} {sorted({code for _, code in abandoned})}")


@pytest.mark.slow
async def test_reset_redis_connection_is_503_not_500(own_redis: RedisServer, tmp_path: Path) -> None:
    proxy = TcpProxy("127.0.0.1", own_redis.port)
    await proxy.start()
    service = ServedService(proxy.url, tmp_path / "svc")
    await asyncio.to_thread(service.start)
    statuses = []
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(5):
                await asyncio.gather(*(_submit(http, service.url, n) for n in range(8)))
                proxy.drop_all()
                await asyncio.sleep(0.05)
                for _ in range(8):
                    async with http.post(f"{service.url}/v1/captchas") as response:
                        statuses.append(response.status)
    finally:
        await asyncio.to_thread(service.stop)
        await proxy.close()
    assert 500 not in statuses, statuses


@pytest.fixture
def served(redis_server: RedisServer, tmp_path: Path) -> Iterator[ServedService]:
    service = ServedService(redis_server.url, tmp_path / "svc")
    service.start()
    yield service
    service.stop()


@pytest.mark.slow
async def test_body_trickled_at_one_byte_a_second_is_cut_off(served: ServedService) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"POST /v1/articles/a1/comments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n")
    await writer.drain()
    started = time.monotonic()
    cut_off = None
    while time.monotonic() - started < 15:
        try:
            writer.write(b" ")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(1024), timeout=1.0)
        except (TimeoutError, ConnectionError):
            continue
        if data == b"" or data.startswith(b"HTTP/1.1 4"):
            cut_off = time.monotonic() - started
            break
    writer.close()
    print(f"\nslow body: cut off after {cut_off} s")
    assert cut_off is not None and cut_off < 11, "a trickled body held the connection past 10 s"


@pytest.mark.slow
async def test_idle_connections_do_not_stop_others(served: ServedService) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    idle = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", served.port))
            idle.append(sock)
        async with aiohttp.ClientSession() as http:
            started = time.monotonic()
            async with http.get(f"{served.url}/v1/articles/a1/comments",
                                timeout=aiohttp.ClientTimeout(total=5)) as response:
                elapsed = time.monotonic() - started
                assert response.status == 200
        # Stopped by idle connections, the request would wait for the 5 s client timeout; the margin below it
        # absorbs a shared, loaded machine (how fast it answers is the benchmark's business, not a unit test's).
        assert elapsed < 4.0, elapsed
    finally:
        for sock in idle:
            sock.close()
    print(f"\n1000 idle connections: a normal request answered in {elapsed * 1000:.0f} ms")
