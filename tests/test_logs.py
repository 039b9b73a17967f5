"""Structured logs (`service.logs`, the `serve` middleware): one JSON line per request with a request id, never
an email, a captcha answer or a token; the level from settings. In-process over real HTTP, and from
`comments-service run` on stderr."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from support import ADMIN, ADMIN_TOKEN, TEST_ANSWER, RedisServer, bearer, comment_form

from service import logs
from service.embedded import free_port

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]
EMAIL = "zz-unique-8812@example.org"
BOGUS_TOKEN = "bogus-token-5b1e9d0c"
SERVICE = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "comments-service"


class Captured:
    """Every record the root logger sees, formatted by `service.logs.JSONFormatter`."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def entries(self) -> list[Json]:
        return [orjson.loads(line) for line in self.lines]

    def access(self) -> list[Json]:
        return [e for e in self.entries() if e["logger"] == "service.access"]


@pytest.fixture
def captured() -> Iterator[Captured]:
    capture = Captured()
    handler = logging.StreamHandler(capture.stream)
    handler.setFormatter(logs.JSONFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # stricter than production: not even a debug line may leak
    try:
        yield capture
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


# -- in process ------------------------------------------------------------------------------------------------

async def test_one_json_line_per_request_with_its_id_and_nothing_secret(client: Client,
                                                                       captured: Captured) -> None:
    ids: list[str] = []

    async def call(method: str, path: str, expect: int, **kwargs: Any) -> Any:
        response = await client.request(method, path, **kwargs)
        assert response.status == expect, await response.text()
        ids.append(response.headers["X-Request-ID"])
        return await response.json(content_type=None)

    await call("POST", "/v1/captchas", 201)
    captcha = await call("POST", "/v1/captchas", 201)
    form = comment_form(captcha["id"], email=EMAIL, title="Tiêu đề", body="Nội dung bình luận")
    await call("POST", "/v1/articles/a1/comments", 202, json=form, headers={"X-Request-ID": "client-id-4711"})
    await call("GET", "/v1/moderation/queue", 200, headers=ADMIN)
    await call("GET", "/v1/moderation/queue", 401, headers=bearer(BOGUS_TOKEN))
    await call("GET", "/v1/articles/a1/comments", 200)
    await call("GET", "/no/such/path", 404)

    access = captured.access()
    assert len(access) == len(ids)
    for entry in access:
        assert {"ts", "level", "request_id", "method", "route", "status", "ms"} <= entry.keys()
        assert entry["level"] == "info" and isinstance(entry["ms"], float | int) and entry["ms"] >= 0
    assert [(e["method"], e["route"], e["status"]) for e in access] == [
        ("POST", "/v1/captchas", 201), ("POST", "/v1/captchas", 201),
        ("POST", "/v1/articles/{article_id}/comments", 202), ("GET", "/v1/moderation/queue", 200),
        ("GET", "/v1/moderation/queue", 401), ("GET", "/v1/articles/{article_id}/comments", 200),
        ("GET", "unmatched", 404)]

    # The client's id is echoed in the response and the log line; every other request gets an id of its own.
    logged = [e["request_id"] for e in access]
    assert logged == ids
    assert logged[2] == "client-id-4711"
    assert len(set(logged)) == len(logged)

    # Every line (access, auth failures, warnings, library debug) is JSON and carries no secret.
    assert captured.entries()
    text = "\n".join(captured.lines)
    for secret in (EMAIL, "zz-unique-8812", TEST_ANSWER, ADMIN_TOKEN, BOGUS_TOKEN):
        assert secret not in text
    assert any(e["logger"] == "service.auth" for e in captured.entries())  # the failed attempt was logged


@pytest.mark.parametrize(("sent", "kept"), [
    ("a" * 128, True),
    ("trace-00f3:span/1", True),
    ("a" * 129, False),
    ("", False),
    ("id with\ttab", False),
])
async def test_incoming_request_id_is_used_only_when_short_and_printable(
        client: Client, captured: Captured, sent: str, kept: bool) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": sent})
    assert response.status == 200
    echoed = response.headers["X-Request-ID"]
    assert (echoed == sent) is kept
    assert echoed and echoed.isascii() and echoed.isprintable() and len(echoed) <= 128
    assert [e["request_id"] for e in captured.access()] == [echoed]


async def test_redis_outage_is_logged_with_the_request_id(client: Client, captured: Captured,
                                                         redis_server: RedisServer) -> None:
    redis_server.stop()
    try:
        response = await client.get("/v1/articles/never-cached/comments", headers={"X-Request-ID": "outage-1"})
    finally:
        redis_server.start()
    assert response.status == 503
    lines = [e for e in captured.entries() if e.get("request_id") == "outage-1"]
    assert [(e["logger"], e["level"]) for e in lines] == [("service.errors", "warning"), ("service.access", "info")]
    assert lines[1]["status"] == 503


def test_formatter_drops_fields_named_like_secrets() -> None:
    record = logging.LogRecord("service.test", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    for key, value in {"email": EMAIL, "token": ADMIN_TOKEN, "authorization": f"Bearer {ADMIN_TOKEN}",
                       "captcha_answer": TEST_ANSWER, "answer": TEST_ANSWER, "password": "hunter2",
                       "secret": "x" * 20, "article_id": "a1", "count": 3}.items():
        setattr(record, key, value)
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = logs.JSONFormatter().format(record)
    assert "\n" not in line  # one record, one line, even with a traceback
    entry = orjson.loads(line)
    assert entry["msg"] == "hello world" and entry["level"] == "warning" and entry["logger"] == "service.test"
    assert entry["article_id"] == "a1" and entry["count"] == 3
    assert "ValueError: boom" in entry["exc"]
    assert entry["ts"].endswith("Z")
    for secret in (EMAIL, ADMIN_TOKEN, TEST_ANSWER, "hunter2", "x" * 20):
        assert secret not in line


def test_configure_sets_the_level_from_settings_and_json_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("aiohttp.access").level
    try:
        logs.configure("warning")
        assert root.level == logging.WARNING
        logging.getLogger("service.access").info("request", extra={"request_id": "r1"})
        logging.getLogger("service.errors").warning("redis unavailable", extra={"request_id": "r2"})
        logs.configure("DEBUG")
        assert root.level == logging.DEBUG
        assert logging.getLogger("aiohttp.access").level == logging.WARNING
        logging.getLogger("service.access").info("request", extra={"request_id": "r3"})
    finally:
        root.handlers[:], level, access_level = saved
        root.setLevel(level)
        logging.getLogger("aiohttp.access").setLevel(access_level)
    entries = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [e["request_id"] for e in entries] == ["r2", "r3"]


# -- comments-service run --------------------------------------------------------------------------------------

def request(port: int, path: str, body: Json | None = None, headers: dict[str, str] | None = None) -> Json:
    data = orjson.dumps(body) if body is not None else None
    sent = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers={
        **({"Content-Type": "application/json"} if data else {}), **(headers or {})})
    with urllib.request.urlopen(sent, timeout=5) as response:
        answer: Json = orjson.loads(response.read())
        answer["_request_id"] = response.headers["X-Request-ID"]
        return answer


@pytest.mark.slow
def test_service_writes_json_access_lines_on_stderr_at_info(redis_server: RedisServer, tmp_path: Path) -> None:
    redis_server.empty()  # the queue it reads holds only its own comment
    port = free_port()
    stderr = tmp_path / "stderr.log"
    env = {**os.environ, "COMMENTS_WORKERS": "1", "COMMENTS_DATA_DIR": str(tmp_path / "data"),
           "COMMENTS_PORT": str(port), "COMMENTS_REDIS_URL": redis_server.url, "COMMENTS_LOG_LEVEL": "INFO",
           "COMMENTS_CAPTCHA_TEST_ANSWER": TEST_ANSWER, "COMMENTS_MIN_FILL_SECONDS": "0",
           "COMMENTS_RATE_LIMIT_ENABLED": "false", "COMMENTS_ADMIN_TOKEN": ADMIN_TOKEN,
           "COMMENTS_CAPTCHA_RENDER_PROCESSES": "1", "COMMENTS_CAPTCHA_POOL_SIZE": "2"}
    with open(stderr, "wb") as errors:
        process = subprocess.Popen([str(SERVICE), "run"], env=env, stdout=subprocess.DEVNULL, stderr=errors,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, stderr.read_text()
            try:
                request(port, "/healthz", headers={"X-Request-ID": "first-health"})
                break
            except OSError:
                time.sleep(0.05)
        captcha = request(port, "/v1/captchas", {})
        form = comment_form(captcha["id"], email=EMAIL, title="Tiêu đề", body="Nội dung bình luận")
        accepted = request(port, "/v1/articles/a1/comments", form, {"X-Request-ID": "the-submission"})
        queue = request(port, "/v1/moderation/queue", headers=ADMIN)
        assert [c["id"] for c in queue["comments"]] == [accepted["id"]]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, stderr.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    lines = stderr.read_text().splitlines()
    assert lines and lines[0].startswith("comments-service: serving http://")
    # The banner (where to go, the next step) is text; from the first JSON object on, everything is a log line.
    banner = next((i for i, line in enumerate(lines) if line.startswith("{")), len(lines))
    assert "Demo page:" in lines[1] and banner <= 8, lines[:banner]
    entries = [orjson.loads(line) for line in lines[banner:]]  # everything after the banner is JSON
    access = [e for e in entries if e["logger"] == "service.access"]
    assert [(e["request_id"], e["route"], e["status"]) for e in access] == [
        ("first-health", "/healthz", 200), (captcha["_request_id"], "/v1/captchas", 201),
        ("the-submission", "/v1/articles/{article_id}/comments", 202),
        (queue["_request_id"], "/v1/moderation/queue", 200)]
    text = "\n".join(lines)
    for secret in (EMAIL, TEST_ANSWER, ADMIN_TOKEN):
        assert secret not in text
