"""Retention (`service.retention`, erase.lua's purge and strip_ip) against a real redis-server: a dry run lists
exactly what the real run then removes; pending comments are never deleted, only counted; one worker at a time."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from support import ADMIN, submit_comment

from service import keys
from service.appkeys import MODERATION, RETENTION
from service.clock import now_ms
from service.settings import Settings

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]
DAY = 86_400_000


async def decide_at(client: Client, comment_id: str, action: str, at_ms: int) -> None:
    """A decision made `at_ms` (the moderation's clock set back for it)."""
    moderation = client.app[MODERATION]
    moderation.clock = lambda: at_ms
    try:
        response = await client.post(f"/v1/moderation/comments/{comment_id}/decision", json={"action": action},
                                     headers=ADMIN)
        assert response.status == 200, await response.text()
    finally:
        moderation.clock = now_ms


def cli_dry_run(redis_url: str, settings: Settings) -> Json:
    env = {**os.environ, "COMMENTS_REDIS_URL": redis_url, "COMMENTS_SECRET_KEY": "s" * 48,
           "COMMENTS_DATA_DIR": str(settings.data_dir)}
    done = subprocess.run([sys.executable, "-m", "service", "privacy", "retention", "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    report: Json = orjson.loads(done.stdout)
    return report


async def test_dry_run_lists_exactly_what_the_run_removes(client: Client, redis: Redis, redis_server: Any,
                                                          settings: Settings) -> None:
    now = now_ms()
    old_rejected = await submit_comment(client, "ret-1", body="Cũ, bị từ chối")
    old_spam = await submit_comment(client, "ret-2", body="Quảng cáo cũ")
    old_approved = await submit_comment(client, "ret-1", body="Cũ, đã duyệt")
    recent_rejected = await submit_comment(client, "ret-2", body="Mới bị từ chối")
    recent_approved = await submit_comment(client, "ret-1", body="Mới duyệt")
    pending = await submit_comment(client, "ret-3", body="Vẫn chờ")
    await decide_at(client, old_rejected["id"], "reject", now - 100 * DAY)
    await decide_at(client, old_spam["id"], "spam", now - 91 * DAY)
    await decide_at(client, old_approved["id"], "approve", now - 40 * DAY)
    await decide_at(client, recent_rejected["id"], "reject", now - 31 * DAY)
    await decide_at(client, recent_approved["id"], "approve", now - 2 * DAY)

    dry = cli_dry_run(redis_server.url, settings)
    assert dry["dry_run"] is True
    assert dry["deleted"] == sorted([old_rejected["id"], old_spam["id"]])
    assert dry["ip_dropped"] == sorted([old_approved["id"], recent_rejected["id"]])
    assert await redis.exists(keys.comment(old_rejected["id"])) == 1  # a dry run changes nothing

    response = await client.post("/v1/privacy/retention", json={"dry_run": False}, headers=ADMIN)
    assert response.status == 200, await response.text()
    run = await response.json()
    assert (run["deleted"], run["ip_dropped"]) == (dry["deleted"], dry["ip_dropped"])

    for gone in (old_rejected, old_spam):
        assert await redis.exists(keys.comment(gone["id"]), keys.history(gone["id"])) == 0
        response = await client.get(f"/v1/moderation/comments/{gone['id']}", headers=ADMIN)
        assert response.status == 404
    for stripped in (old_approved, recent_rejected):
        record = await (await client.get(f"/v1/moderation/comments/{stripped['id']}", headers=ADMIN)).json()
        assert record["ip_hash"] == "" and record["body"]  # the text stays
    kept = await (await client.get(f"/v1/moderation/comments/{recent_approved['id']}", headers=ADMIN)).json()
    assert kept["ip_hash"]
    # the pending comment is never touched
    waiting = await (await client.get(f"/v1/moderation/comments/{pending['id']}", headers=ADMIN)).json()
    assert waiting["state"] == "pending" and waiting["ip_hash"]
    # nothing is left to do; the log has both runs' ids and nothing else
    again = cli_dry_run(redis_server.url, settings)
    assert again["deleted"] == again["ip_dropped"] == []
    log = await (await client.get("/v1/privacy/log", headers=ADMIN)).json()
    by_mode = {e["mode"]: e for e in log["entries"] if e["kind"] == "retention"}
    assert sorted(by_mode["purge"]["ids"]) == dry["deleted"] and by_mode["purge"]["run_by"] == "retention"
    assert sorted(by_mode["strip_ip"]["ids"]) == dry["ip_dropped"]


async def test_old_pending_comments_are_counted_never_deleted(client: Client) -> None:
    pending = await submit_comment(client, "ret-4")
    retention = client.app[RETENTION]
    later = now_ms() + (retention.pending_days + 1) * DAY
    retention.clock = lambda: later
    report = await retention.run()
    assert report.pending_overdue == 1 and report.deleted == []
    metrics = (await (await client.get("/metrics")).read()).decode()
    assert "comments_pending_overdue 1.0" in metrics
    record = await (await client.get(f"/v1/moderation/comments/{pending['id']}", headers=ADMIN)).json()
    assert record["state"] == "pending"


async def test_the_background_job_runs_on_one_worker_at_a_time(client: Client) -> None:
    retention = client.app[RETENTION]
    assert await retention.run_if_due(3600) is not None
    assert await retention.run_if_due(3600) is None  # another worker (or this one) within the interval
