"""`GET /metrics` over real HTTP after real flows against a real redis-server (`service.metrics`, the `serve`
middleware, the counters in the API handlers and the webhook hook), and with several worker processes of
`comments-service run` sharing one port."""

from __future__ import annotations

import asyncio
import http.client
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pytest_aiohttp import AiohttpClient, AiohttpServer
from support import (
    ADMIN,
    ADMIN_TOKEN,
    TEST_ANSWER,
    RedisServer,
    articles_in_distinct_partitions,
    comment_form,
    decide,
    make_app,
    submit_comment,
)

from service.embedded import free_port
from service.metrics import LATENCY_BUCKETS, Metrics
from service.settings import Settings

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]
COMMENTS_ROUTE = "/v1/articles/{article_id}/comments"
SERVICE = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "comments-service"


# -- helpers ---------------------------------------------------------------------------------------------------

@dataclass
class Scrape:
    samples: list[Sample]

    def value(self, name: str, **labels: str) -> float:
        """The sum of every sample called `name` whose labels include `labels`."""
        return sum(s.value for s in self.matching(name, **labels))

    def matching(self, name: str, **labels: str) -> list[Sample]:
        return [s for s in self.samples
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def parse(text: str) -> Scrape:
    return Scrape([s for family in text_string_to_metric_families(text) for s in family.samples])


async def scrape(client: Client) -> Scrape:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(await response.text())


async def eventually(condition: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


# -- format and requests ---------------------------------------------------------------------------------------

async def test_metrics_are_prometheus_text_with_every_family(client: Client) -> None:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f.type for f in text_string_to_metric_families(await response.text())}
    assert families == families | {
        "comments_http_requests": "counter", "comments_http_request_duration_seconds": "histogram",
        "comments_captchas": "counter", "comments_submissions": "counter", "comments_decisions": "counter",
        "comments_time_to_decision_seconds": "histogram", "comments_webhook_deliveries": "counter",
        "comments_redis_errors": "counter", "comments_queue_depth": "gauge",
        "comments_oldest_pending_age_seconds": "gauge"}


async def test_requests_counted_by_route_template_and_status_with_latency_buckets(client: Client) -> None:
    for article in ("a1", "a2", "a3"):
        assert (await client.get(f"/v1/articles/{article}/comments")).status == 200
    assert (await client.get("/v1/articles/a1/comments", params={"order": "sideways"})).status == 422
    assert (await client.get("/no/such/thing")).status == 404
    metrics = await scrape(client)

    assert metrics.value("comments_http_requests_total", method="GET", route=COMMENTS_ROUTE, status="200") == 3
    assert metrics.value("comments_http_requests_total", method="GET", route=COMMENTS_ROUTE, status="422") == 1
    assert metrics.value("comments_http_requests_total", route="unmatched", status="404") == 1
    # The raw path never becomes a label: one series per route, however many articles there are.
    assert not [s for s in metrics.samples if "a1" in s.labels.get("route", "")]

    buckets = metrics.matching("comments_http_request_duration_seconds_bucket", method="GET", route=COMMENTS_ROUTE)
    bounds = sorted(float(s.labels["le"]) for s in buckets)
    assert bounds == [*LATENCY_BUCKETS, float("inf")]
    counts = [s.value for s in sorted(buckets, key=lambda s: float(s.labels["le"]))]
    assert counts == sorted(counts) and counts[-1] == 4
    assert metrics.value("comments_http_request_duration_seconds_count", route=COMMENTS_ROUTE) == 4
    assert 0 < metrics.value("comments_http_request_duration_seconds_sum", route=COMMENTS_ROUTE) < 10


# -- counters by label ---------------------------------------------------------------------------------------

def test_counter_children_kept_by_label_values_count_as_prometheus_client_does() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.submissions.labels("accepted").inc()
    metrics.submissions.labels(outcome="accepted").inc()
    metrics.webhook_deliveries.labels("approved", "ok").inc(2)
    metrics.webhook_deliveries.labels("approved", "ok").inc()
    metrics.redis_errors.labels(42).inc()  # prometheus_client takes the str() of a value
    metrics.redis_errors.labels("42").inc()
    scraped = parse(metrics.render().decode())
    assert scraped.value("comments_submissions_total", outcome="accepted") == 4
    assert scraped.value("comments_webhook_deliveries_total", event="approved", outcome="ok") == 3
    assert scraped.value("comments_redis_errors_total", kind="42") == 2
    assert metrics.submissions.labels("accepted") is metrics.submissions.labels(outcome="accepted")
    with pytest.raises(ValueError, match="label count"):
        metrics.webhook_deliveries.labels("approved")


# -- captchas and submissions ----------------------------------------------------------------------------------

async def test_captchas_and_submissions_by_outcome(client: Client) -> None:
    await submit_comment(client, "a1")
    await submit_comment(client, "a2")
    await submit_comment(client, "a1", expect=422, captcha_answer="WRONG")
    await submit_comment(client, "a1", expect=422, email="not an email")
    await submit_comment(client, "a1", expect=422, body="")
    await submit_comment(client, "a1", website="https://spam.example")
    metrics = await scrape(client)

    assert metrics.value("comments_captchas_total", outcome="issued") == 6
    assert metrics.value("comments_captchas_total", outcome="solved") == 2
    assert metrics.value("comments_captchas_total", outcome="failed") == 1
    assert metrics.value("comments_submissions_total", outcome="accepted") == 2
    assert metrics.value("comments_submissions_total", outcome="captcha") == 1
    assert metrics.value("comments_submissions_total", outcome="validation") == 2
    assert metrics.value("comments_submissions_total", outcome="honeypot") == 1
    assert metrics.value("comments_submissions_total", outcome="rate_limit") == 0


async def test_unreadable_bodies_count_as_refused_for_validation(client: Client) -> None:
    path = "/v1/articles/a1/comments"
    assert (await client.post(path, data=b"{", headers={"Content-Type": "application/json"})).status == 400
    assert (await client.post(path, data=b"name=x", headers={"Content-Type": "text/plain"})).status == 415
    assert (await client.post(path, data=b"x" * 20_000, headers={"Content-Type": "application/json"})).status == 413
    metrics = await scrape(client)
    assert metrics.value("comments_submissions_total", outcome="validation") == 3


async def test_submissions_refused_by_the_rate_limit(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit_enabled": True, "rate_limit_ip": (1, 60)})
    client = await aiohttp_client(make_app(limited))
    await submit_comment(client, "a1")
    await submit_comment(client, "a1", expect=429)
    await submit_comment(client, "a2", expect=429)
    metrics = await scrape(client)
    assert metrics.value("comments_submissions_total", outcome="accepted") == 1
    assert metrics.value("comments_submissions_total", outcome="rate_limit") == 2


# -- moderation ------------------------------------------------------------------------------------------------

async def test_decisions_by_action(client: Client) -> None:
    ids = [(await submit_comment(client, "a1"))["id"] for _ in range(5)]
    await decide(client, ids[0], "approve")
    await decide(client, ids[1], "reject")
    await decide(client, ids[2], "spam")
    bulk = await client.post("/v1/moderation/decisions", json={"action": "approve", "ids": ids[3:]}, headers=ADMIN)
    assert bulk.status == 200, await bulk.text()
    retract = await client.post(f"/v1/moderation/comments/{ids[0]}/retract", json={}, headers=ADMIN)
    assert retract.status == 200, await retract.text()
    again = await client.post(f"/v1/moderation/comments/{ids[1]}/decision", json={"action": "approve"},
                              headers=ADMIN)
    assert again.status == 409  # not a decision: nothing counted
    metrics = await scrape(client)
    assert metrics.value("comments_decisions_total", action="approve") == 3
    assert metrics.value("comments_decisions_total", action="reject") == 1
    assert metrics.value("comments_decisions_total", action="spam") == 1
    assert metrics.value("comments_decisions_total", action="retract") == 1


async def test_time_from_submission_to_decision(client: Client) -> None:
    ids = [(await submit_comment(client, "a1"))["id"] for _ in range(3)]
    await decide(client, ids[0], "approve")
    await decide(client, ids[1], "reject")
    metrics = await scrape(client)
    assert metrics.value("comments_time_to_decision_seconds_count") == 2
    # Decided within a second of submission: every observation falls in the smallest bucket.
    assert metrics.value("comments_time_to_decision_seconds_bucket", le="60.0") == 2
    assert 0 <= metrics.value("comments_time_to_decision_seconds_sum") < 60


async def test_queue_depth_and_oldest_pending_age_at_scrape_time(client: Client) -> None:
    articles = articles_in_distinct_partitions(3)
    ids = [(await submit_comment(client, article))["id"] for article in articles]
    await asyncio.sleep(1.1)  # lets the oldest pending comment grow older than a second
    # Nobody asked /v1/moderation/stats: the scrape itself must bring the gauges up to date.
    metrics = await scrape(client)
    assert metrics.value("comments_queue_depth") == 3
    assert 1.0 <= metrics.value("comments_oldest_pending_age_seconds") < 60

    for comment_id in ids:
        await decide(client, comment_id, "approve")
    metrics = await scrape(client)
    assert metrics.value("comments_queue_depth") == 0
    assert metrics.value("comments_oldest_pending_age_seconds") == 0


# -- webhooks --------------------------------------------------------------------------------------------------

async def test_webhook_deliveries_by_outcome(aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer,
                                             settings: Settings) -> None:
    received: list[str] = []
    answers = [500]

    async def hook(request: web.Request) -> web.Response:
        received.append(orjson.loads(await request.read())["type"])
        return web.Response(status=answers.pop(0) if answers else 200)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", hook)
    receiver = await aiohttp_server(receiver_app)
    fast = settings.model_copy(update={"webhook_backoff_base_seconds": 0.05, "webhook_timeout_seconds": 2.0})
    client = await aiohttp_client(make_app(fast))
    registered = await client.post("/v1/webhooks", headers=ADMIN, json={
        "url": str(receiver.make_url("/hook")), "events": ["comment.approved"], "secret": "x" * 20})
    assert registered.status == 201, await registered.text()

    comment_id = (await submit_comment(client, "a1"))["id"]
    await decide(client, comment_id, "approve")

    async def delivered() -> bool:
        return (await scrape(client)).value("comments_webhook_deliveries_total", outcome="delivered") >= 1

    await eventually(delivered)
    assert received == ["comment.approved", "comment.approved"]
    metrics = await scrape(client)
    assert metrics.value("comments_webhook_deliveries_total", event="comment.approved", outcome="retrying") == 1
    assert metrics.value("comments_webhook_deliveries_total", event="comment.approved", outcome="delivered") == 1
    assert metrics.value("comments_webhook_deliveries_total", outcome="failed") == 0


# -- Redis errors ----------------------------------------------------------------------------------------------

async def test_redis_errors_are_counted_and_metrics_still_answer(client: Client,
                                                                 redis_server: RedisServer) -> None:
    before = (await scrape(client)).value("comments_redis_errors_total", kind="ConnectionError")
    redis_server.stop()
    try:
        response = await client.get("/v1/articles/never-cached/comments")
        assert response.status == 503
        assert "Retry-After" in response.headers
        # Scraping must work while Redis is away: that is when operators look.
        during = await scrape(client)
    finally:
        redis_server.start()
    # The refused request counts once by the error's kind (the scrape may count its own failure too).
    assert during.value("comments_redis_errors_total", kind="ConnectionError") == before + 1
    assert during.value("comments_http_requests_total", route=COMMENTS_ROUTE, status="503") == 1


# -- several worker processes ----------------------------------------------------------------------------------

def call(port: int, method: str, path: str, body: Json | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection (a new 4-tuple, so SO_REUSEPORT may pick either worker)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=None if body is None else orjson.dumps(body), headers={
            "Connection": "close", **({} if body is None else {"Content-Type": "application/json"}),
            **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    return call(port, "GET", path)


def worker_of(headers: dict[str, str]) -> str:
    """Request ids start with a per-process prefix: which worker answered."""
    return headers["x-request-id"][:8]


def wait_for_both_workers(process: subprocess.Popen[bytes], port: int, stderr: Path) -> tuple[set[str], int]:
    """Poll /readyz until both workers answered 200; returns the workers and how many polls got an answer."""
    answered = 0
    ready: set[str] = set()
    deadline = time.monotonic() + 30
    while len(ready) < 2:
        assert process.poll() is None, stderr.read_text()
        assert time.monotonic() < deadline, "never ready: " + stderr.read_text()
        try:
            status, headers, _ = get(port, "/readyz")
        except TimeoutError:
            # The supervisor binds the port before the workers start: the request waits in the backlog and a
            # worker serves (and counts) it once it is up, after this client gave up.
            answered += 1
            continue
        except OSError:
            time.sleep(0.05)
            continue
        answered += 1
        if status == 200:
            ready.add(worker_of(headers))
        else:
            time.sleep(0.05)
    return ready, answered


def scrape_each_worker(port: int) -> dict[str, Scrape]:
    scrapes: dict[str, Scrape] = {}
    for _ in range(40):
        status, headers, body = get(port, "/metrics")
        assert status == 200
        scrapes.setdefault(worker_of(headers), parse(body.decode()))
        if len(scrapes) == 2:
            return scrapes
    raise AssertionError(f"40 scrapes reached only {len(scrapes)} worker(s)")


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = {int(c) for c in (task / "children").read_text().split()}
            except OSError:
                continue
            pending.extend(children - found)
            found |= children
    return found


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def two_workers(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    redis_server.empty()  # what earlier tests stored (the queue's depth is counted)
    port = free_port()
    stderr = tmp_path / "stderr.log"
    env = {**os.environ, "COMMENTS_WORKERS": "2", "COMMENTS_DATA_DIR": str(tmp_path / "data"),
           "COMMENTS_PORT": str(port), "COMMENTS_REDIS_URL": redis_server.url, "COMMENTS_LOG_LEVEL": "WARNING",
           "COMMENTS_CAPTCHA_RENDER_PROCESSES": "1", "COMMENTS_CAPTCHA_POOL_SIZE": "2",
           "COMMENTS_CAPTCHA_TEST_ANSWER": TEST_ANSWER, "COMMENTS_MIN_FILL_SECONDS": "0",
           "COMMENTS_ADMIN_TOKEN": ADMIN_TOKEN, "COMMENTS_RATE_LIMIT_ENABLED": "false"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(stderr, "wb") as errors:
        process = subprocess.Popen([str(SERVICE), "run"], env=env, stdout=subprocess.DEVNULL, stderr=errors,
                                   start_new_session=True)
    try:
        yield process, port, stderr
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.slow
def test_metrics_add_up_across_worker_processes_and_sigterm_exits_cleanly(
        two_workers: tuple[subprocess.Popen[bytes], int, Path]) -> None:
    process, port, stderr = two_workers
    ready, readyz_answered = wait_for_both_workers(process, port, stderr)

    requests = 60
    workers_seen: set[str] = set()
    for _ in range(requests):
        status, headers, _ = get(port, "/healthz")
        assert status == 200
        workers_seen.add(worker_of(headers))
    assert workers_seen == ready, "60 connections to the shared socket should have reached both workers"

    # A worker writes its requests' metrics once per turn of its loop (`Metrics.observe_request`): the other
    # worker's scrape may come in that turn and miss the last ones. Once written, every scrape sees them all.
    deadline = time.monotonic() + 10
    while parse(get(port, "/metrics")[2].decode()).value("comments_http_requests_total",
                                                         route="/healthz") != requests:
        assert time.monotonic() < deadline, "the workers' request counts never added up"
        time.sleep(0.05)
    scraped_by: set[str] = set()
    for _ in range(20):
        status, headers, body = get(port, "/metrics")
        assert status == 200
        scraped_by.add(worker_of(headers))
        metrics = parse(body.decode())
        assert metrics.value("comments_http_requests_total", route="/healthz") == requests
        assert metrics.value("comments_http_requests_total", route="/healthz", status="200") == requests
        assert metrics.value("comments_http_request_duration_seconds_count", route="/healthz") == requests
        assert metrics.value("comments_http_request_duration_seconds_bucket", route="/healthz",
                             le="+Inf") == requests
        assert metrics.value("comments_http_requests_total", route="/readyz") == readyz_answered
        if len(scraped_by) == 2:
            break
    assert scraped_by == workers_seen, "both workers should have answered a scrape"

    children = descendants(process.pid)
    assert len(children) >= 2
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0, stderr.read_text()
    # Helpers such as multiprocessing's resource tracker exit when they see their parent's pipe close, a moment
    # after it; anything still there a few seconds on was orphaned.
    commands = {pid: command(pid) for pid in children}
    deadline = time.monotonic() + 5
    while (leftovers := [commands[pid] for pid in children if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers == [], f"processes outlived the service: {leftovers}"

    # COMMENTS_LOG_LEVEL=WARNING: no access line for any of these successful requests, and nothing went wrong:
    # each worker says once that the captcha test answer is on, as JSON, and nothing else.
    lines = stderr.read_text().splitlines()
    assert lines and lines[0].startswith("comments-service: serving http://")
    # The banner (where to go, the next step) is text; from the first JSON object on, everything is a log line.
    banner = next((i for i, line in enumerate(lines) if line.startswith("{")), len(lines))
    assert "Demo page:" in lines[1] and banner <= 8, lines[:banner]
    entries = [orjson.loads(line) for line in lines[banner:]]  # everything after the banner is JSON
    assert [(e["logger"], e["level"]) for e in entries] == [("service.app", "warning")] * 2, lines


@pytest.mark.slow
def test_queue_gauges_agree_whichever_worker_is_scraped(
        two_workers: tuple[subprocess.Popen[bytes], int, Path]) -> None:
    process, port, stderr = two_workers
    wait_for_both_workers(process, port, stderr)
    ids = []
    for article in articles_in_distinct_partitions(3):
        status, _, body = call(port, "POST", "/v1/captchas", {})
        assert status == 201
        status, _, body = call(port, "POST", f"/v1/articles/{article}/comments", comment_form(orjson.loads(body)["id"]))
        assert status == 202, body
        ids.append(orjson.loads(body)["id"])
    for worker, metrics in scrape_each_worker(port).items():
        assert metrics.value("comments_queue_depth") == 3, worker
        assert metrics.value("comments_submissions_total", outcome="accepted") == 3, worker

    for comment_id in ids:
        status, _, body = call(port, "POST", f"/v1/moderation/comments/{comment_id}/decision",
                               {"action": "approve"}, ADMIN)
        assert status == 200, body
    # Each worker refreshes the gauge when scraped; the other worker's older reading must not win.
    for worker, metrics in scrape_each_worker(port).items():
        assert metrics.value("comments_queue_depth") == 0, worker
        assert metrics.value("comments_oldest_pending_age_seconds") == 0, worker
        assert metrics.value("comments_decisions_total", action="approve") == 3, worker
        assert metrics.value("comments_time_to_decision_seconds_count") == 3, worker
