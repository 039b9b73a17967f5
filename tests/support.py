"""What the tests share besides fixtures: the test settings' secrets, the one way to start a redis-server, the
suite's privacy-checking HTTP client, and helpers that speak the public and moderation API.

Test modules import it as `from support import ...` (tests/ is on sys.path through pytest's rootdir conftest,
and mypy reads it as the top-level module `support`, as it reads `conftest`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Final

import orjson
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import StrOrURL
from pydantic import SecretStr
from redis import Redis as SyncRedis

from service import keys
from service.app import create_app, start_render_pool
from service.embedded import find_redis_server, free_port, server_args, wait_until_ready
from service.settings import Settings

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]

ADMIN_TOKEN: Final = "test-admin-token"
#: The test settings make this every captcha's answer.
TEST_ANSWER: Final = "ABCDE"
ADMIN: Final = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

#: Every test webhook receiver listens on loopback, which the service refuses unless allowed (tests of the
#: refusal itself, in test_ssrf.py, build settings without it).
LOOPBACK: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [ipaddress.ip_network("127.0.0.0/8")]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def service_settings(redis_url: str, data_dir: Path, **changes: Any) -> Settings:
    """Settings for a service under test: the test secrets, no rate limits, no minimum fill time, `TEST_ANSWER`
    for every captcha and one render process; `changes` set the rest."""
    return Settings(redis_url=redis_url, data_dir=data_dir, secret_key=SecretStr("s" * 48),
                    admin_token=SecretStr(ADMIN_TOKEN), rate_limit_enabled=False, min_fill_seconds=0,
                    captcha_test_answer=TEST_ANSWER, captcha_render_processes=1, **changes)


# -- redis-server ------------------------------------------------------------------------------------------------

class RedisServer:
    """A real redis-server on loopback, started the way `make run` starts one (`service.embedded`: AOF on,
    `noeviction`), in its own directory with its log there; stoppable, killable and restartable on the same port.

    `extra` are more command-line options (`--sentinel`, `--cluster-enabled yes`, ...); `config` lines are written
    to a redis.conf that comes first on the command line (a sentinel must have a config file to rewrite).
    """

    def __init__(self, directory: Path, *extra: str, port: int | None = None, config: Sequence[str] = ()) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def start(self) -> None:
        args = server_args(find_redis_server(), self.directory, self.port, "--logfile", str(self.log), *self.extra)
        if self.config:
            conf = self.directory / "redis.conf"
            conf.write_text("\n".join(self.config) + "\n")
            args.insert(1, str(conf))
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_ready(self.port, self.process)
        except RuntimeError as exc:
            self.kill()
            raise RuntimeError(f"{exc} (port {self.port}): {self.log_tail()}") from None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def empty(self) -> None:
        """Delete what earlier tests stored (the `redis` fixture does this for tests in-process; a test that
        starts a `comments-service run` of its own against this server calls it first)."""
        with SyncRedis.from_url(self.url) as client:
            client.flushdb()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def articles_in_distinct_partitions(count: int, prefix: str = "art-") -> list[str]:
    """Article ids whose partitions (and so hash tags and Cluster slots) all differ."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < count:
        found.setdefault(keys.partition_of_article(f"{prefix}{n}"), f"{prefix}{n}")
        n += 1
    return list(found.values())


# -- the API -----------------------------------------------------------------------------------------------------

def comment_form(captcha_id: str, answer: str = TEST_ANSWER, **changes: Any) -> Json:
    """A valid comment submission body; `changes` replace or add fields."""
    return {"name": "Lan", "email": "lan@example.com", "title": "Ý kiến", "body": "Hay.",
            "captcha_id": captcha_id, "captcha_answer": answer, **changes}


async def issue_captcha(client: Client) -> str:
    response = await client.post("/v1/captchas")
    assert response.status == 201, await response.text()
    captcha_id: str = (await response.json())["id"]
    return captcha_id


async def submit_comment(client: Client, article: str, *, expect: int = 202,
                         headers: Mapping[str, str] | None = None, **fields: Any) -> Json:
    """Submit `comment_form` with `fields` under a fresh captcha; the status must be `expect`; returns the body."""
    form = comment_form(await issue_captcha(client), **fields)
    response = await client.post(f"/v1/articles/{article}/comments", json=form, headers=headers)
    assert response.status == expect, await response.text()
    body: Json = await response.json(content_type=None)
    return body


async def decide(client: Client, comment_id: str, action: str = "approve",
                 headers: Mapping[str, str] = ADMIN) -> Json:
    """A moderator's decision that must succeed; returns the comment as moderators see it."""
    response = await client.post(f"/v1/moderation/comments/{comment_id}/decision", json={"action": action},
                                 headers=headers)
    assert response.status == 200, await response.text()
    record: Json = await response.json()
    return record


async def create_token(client: Client, role: str, name: str, **fields: Any) -> Json:
    """A new machine token, made by the admin; returns the response (`token` and the token's description)."""
    response = await client.post("/v1/tokens", json={"role": role, "name": name, **fields}, headers=ADMIN)
    assert response.status == 201, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    created: Json = await response.json()
    return created


# -- the suite's client ------------------------------------------------------------------------------------------

#: Routes where an email may legitimately appear: moderators see it; webhooks and tokens carry none but are
#: admin-only; a person's data export shows their own address (to an admin, or behind the link sent to it).
#: Everything else, the feed included, is checked.
_PRIVATE_PREFIXES = ("/v1/moderation", "/v1/webhooks", "/v1/tokens", "/v1/privacy/export", "/privacy/")


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


@functools.cache
def shared_render_pool() -> ProcessPoolExecutor:
    """One captcha render process for the whole suite, started on first use: an app's own costs about a second
    of CPU to start and to stop, which hundreds of tests paid each (conftest stops it at the session's end)."""
    return start_render_pool(1)


def make_app(settings: Settings) -> web.Application:
    """The service's app (`create_app`) for a test, rendering captchas in the suite's shared process."""
    return create_app(settings, render_pool=shared_render_pool())
