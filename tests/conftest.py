"""Shared fixtures: a real redis-server for the session (flushed per test), settings, and the app over real
HTTP on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import StrOrURL
from pydantic import SecretStr
from redis.asyncio import Redis

from service import keys
from service.app import create_app
from service.embedded import find_redis_server, free_port, server_args, wait_until_ready
from service.settings import Settings

ADMIN_TOKEN = "test-admin-token"
TEST_ANSWER = "ABCDE"


class RedisServer:
    """A real redis-server on a free loopback port, in its own directory; stoppable and restartable."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(server_args(find_redis_server(), self.directory, self.port, *self.extra),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_ready(self.port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    directory = Path(tempfile.mkdtemp(prefix="comments-redis-"))
    server = RedisServer(directory)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


#: Every test webhook receiver listens on loopback, which the service refuses unless allowed (tests of the
#: refusal itself, in test_ssrf.py, build settings without it).
LOOPBACK: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.fixture
def settings(redis_server: RedisServer, redis: Redis, tmp_path: Path) -> Settings:
    return Settings(
        redis_url=redis_server.url, data_dir=tmp_path, secret_key=SecretStr("s" * 48),
        admin_token=SecretStr(ADMIN_TOKEN), rate_limit_enabled=False, min_fill_seconds=0,
        captcha_test_answer=TEST_ANSWER, captcha_render_processes=1, captcha_pool_size=4,
        allowed_origins=["https://news.example"], public_cache_seconds=0.2,
        webhook_allowed_networks=LOOPBACK,
    )


@pytest.fixture
async def client(aiohttp_client: object, settings: Settings) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(create_app(settings))  # type: ignore[operator,no-any-return]


#: Routes where an email may legitimately appear: moderators see it; webhooks and tokens carry none but are
#: admin-only. Everything else, the feed included, is checked.
_PRIVATE_PREFIXES = ("/v1/moderation", "/v1/webhooks", "/v1/tokens")


class PrivacyCheckingClient(TestClient):  # type: ignore[type-arg]
    """Every test client in the suite: remembers the emails a test submitted and, when the client closes,
    fails the test if any public response (body or headers) showed one, or its md5/sha1/sha256."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.submitted_emails: set[str] = set()
        self.public_responses: list[tuple[str, bytes]] = []

    async def _request(self, method: str, path: StrOrURL, **kwargs: Any) -> ClientResponse:
        body = kwargs.get("json")
        if body is None and isinstance(kwargs.get("data"), bytes | str):
            with contextlib.suppress(ValueError):
                body = orjson.loads(kwargs["data"])
        if isinstance(body, dict) and isinstance(body.get("email"), str) and "@" in body["email"]:
            self.submitted_emails.add(body["email"].strip().lower())
        response = await super()._request(method, path, **kwargs)
        if not str(path).startswith(_PRIVATE_PREFIXES):
            seen = await response.read()
            headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items()).encode()
            self.public_responses.append((f"{method} {path} {response.status}", (seen + b"\n" + headers).lower()))
        return response

    async def close(self) -> None:
        needles = {e.encode() for e in self.submitted_emails}
        needles |= {h(e.encode()).hexdigest().encode() for e in self.submitted_emails
                    for h in (hashlib.md5, hashlib.sha1, hashlib.sha256)}
        leaks = [(what, needle) for what, blob in self.public_responses for needle in needles if needle in blob]
        self.public_responses.clear()  # checked once, however often the client is closed
        await super().close()
        assert not leaks, f"a public response showed an email: {leaks[:3]}"


@pytest.fixture
def aiohttp_client_cls() -> type[TestClient]:  # type: ignore[type-arg]
    return PrivacyCheckingClient


def articles_in_distinct_partitions(count: int, prefix: str = "art-") -> list[str]:
    """Article ids whose partitions (and so hash tags and Cluster slots) all differ."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < count:
        found.setdefault(keys.partition_of_article(f"{prefix}{n}"), f"{prefix}{n}")
        n += 1
    return list(found.values())
