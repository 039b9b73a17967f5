"""Shared fixtures: a real redis-server for the session (flushed per test), settings, and the app over real
HTTP on loopback through the suite's privacy-checking client. Shared helpers live in `support`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis
from support import (
    LOOPBACK,
    Client,
    PrivacyCheckingClient,
    RedisServer,
    make_app,
    service_settings,
    shared_render_pool,
)

from service.settings import Settings


@pytest.fixture(scope="session", autouse=True)
def _stop_the_shared_render_pool() -> Iterator[None]:
    """The suite's one captcha render process (`support.make_app`) is stopped once, at the session's end."""
    yield
    if shared_render_pool.cache_info().currsize:
        shared_render_pool().shutdown(wait=True, cancel_futures=True)


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


@pytest.fixture
def settings(redis_server: RedisServer, redis: Redis, tmp_path: Path) -> Settings:
    return service_settings(redis_server.url, tmp_path, captcha_pool_size=4,
                            allowed_origins=["https://news.example"], public_cache_seconds=0.2,
                            webhook_allowed_networks=LOOPBACK)


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, settings: Settings) -> Client:
    return await aiohttp_client(make_app(settings))


@pytest.fixture
def aiohttp_client_cls() -> type[Client]:
    return PrivacyCheckingClient
