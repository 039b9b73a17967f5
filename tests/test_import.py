"""`comments-service import` (`service.importing`): every format's fixture, built here in the source's own
format, imported into a real Redis and checked through the service itself: moderation, public lists and counts
over HTTP, the doctor; twice changes nothing; an interrupted import completes; XML bombs are refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from import_fixtures import (
    APPROVED,
    ARTICLE,
    ARTICLE_URL,
    LONG_BODY,
    NAME,
    ROOT_URL,
    billion_laughs,
    commento_json,
    disqus_xml,
    external_entity,
    isso_db,
    wordpress_xml,
)
from redis.asyncio import Redis
from redis_dump import dump_redis
from support import RedisServer

from service import keys
from service.doctor import doctor
from service.importing import importer as importer_module
from service.importing.articles import ArticleMap, BadArticleSpec
from service.importing.htmltext import html_to_text
from service.importing.importer import Importer, Options, Report, stable_id
from service.importing.source import FileRefused, Format
from service.models import BODY_MAX, COMMENT_ID_RE
from service.scripts import Scripts
from service.settings import Settings

Client = TestClient[web.Request, web.Application]
ADMIN: Final = {"Authorization": "Bearer test-admin-token"}
COMMAND: Final = str(Path(sys.executable).parent / "comments-service")
SECRET: Final = b"s" * 48


def _file(tmp_path: Path, source_format: Format) -> Path:
    if source_format == "disqus":
        (path := tmp_path / "disqus.xml").write_text(disqus_xml(), encoding="utf-8")
    elif source_format == "wordpress":
        (path := tmp_path / "wordpress.xml").write_text(wordpress_xml(), encoding="utf-8")
    elif source_format == "isso":
        path = isso_db(tmp_path / "comments.db")
    else:
        (path := tmp_path / "commento.json.gz").write_bytes(commento_json())
    return path


async def _import(redis: Redis, path: Path, source_format: Format, **options: Any) -> Report:
    scripts = Scripts(redis)
    await scripts.load()
    return await Importer(scripts, SECRET, frozenset(), Options(source_format, path, **options)).run()


def _id(source_format: str, source_id: str, article: str = ARTICLE) -> str:
    return stable_id(SECRET, source_format, source_id, article)


async def _record(redis: Redis, comment_id: str) -> dict[str, Any]:
    raw: dict[bytes, bytes] = await redis.hgetall(keys.comment(comment_id))  # type: ignore[misc,assignment,unused-ignore]
    record: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    if "d" in record:
        record["d"] = orjson.loads(record["d"])
    return record


# -- every format --------------------------------------------------------------------------------------------

#: Source ids of the scenario per format: Isso has no spam (its fixture leaves post 6 out) and keeps deleted
#: comments with their text emptied (skipped: nothing to import); Commento's ids are 64 hex digits.
def _sid(source_format: str, post: str) -> str:
    return f"{int(post):064x}" if source_format == "commento" else post


@pytest.mark.parametrize("source_format", ["disqus", "wordpress", "isso", "commento"])
async def test_each_format_imports_the_scenario_as_the_service_stores_it(
        source_format: Format, redis: Redis, client: Client, tmp_path: Path) -> None:
    path = _file(tmp_path, source_format)
    report = await _import(redis, path, source_format)
    isso = source_format == "isso"
    expected = {"approved": len(APPROVED), "pending": 1, "rejected": 0 if isso else 1, "spam": 0 if isso else 1}
    assert report.imported == {k: v for k, v in expected.items() if v}, report.summary()
    assert not report.failed
    assert report.skipped.get("article_unmapped:no_match") == 1  # the post on the site's root page
    assert ("/" if isso else ROOT_URL) in report.unmapped_urls  # Isso knows paths only
    if isso:
        assert report.skipped.get("empty_body") == 1  # the deleted comment Isso kept without its text
    if source_format == "wordpress":
        assert report.skipped.get("pingback") == 1

    def sid(post: str) -> str:
        return _id(source_format, _sid(source_format, post))

    # Threads: 2 under 1, 3 under 2; 9 under 10 although it came first; 5's parent was deleted: top-level.
    first, second, third = [await _record(redis, sid(p)) for p in ("1", "2", "3")]
    assert (second["d"]["parent_id"], third["d"]["parent_id"]) == (sid("1"), sid("2"))
    assert (await _record(redis, sid("9")))["d"]["parent_id"] == sid("10")
    assert (await _record(redis, sid("5")))["d"]["parent_id"] is None
    assert report.notes.get("parent_not_published" if not isso else "parent_missing", 0) + report.notes.get(
        "parent_not_published", 0) >= 1
    # Text: NFC, HTML to text with links, Vietnamese kept; a missing email stays missing; long bodies shortened.
    assert first["d"]["name"] == NAME
    assert "Bài viết rất hay & hữu ích." in first["d"]["body"]
    if source_format in ("disqus", "wordpress"):
        assert first["d"]["body"] == "Bài viết rất hay & hữu ích.\n\nCảm ơn tác giả (https://nguon.vn/a)!"
    assert second["d"]["email"] == "" and report.notes["email_missing"] >= 1
    long = await _record(redis, sid("11"))
    assert BODY_MAX - 2 <= len(long["d"]["body"]) <= BODY_MAX and long["d"]["body"].endswith("…")
    assert long["d"]["body"].startswith(LONG_BODY[:100].strip()) and report.notes["body_shortened"] == 1
    assert long["d"]["name"] == "Ẩn danh" and report.notes["name_missing"] >= 1
    # Times kept; privacy like ours: an address only as our keyed hash.
    millis = "123" if source_format == "commento" else "000"  # Commento's times carry nanoseconds
    assert first["t"] == f"1551675967{millis}" and first["d"]["created_at"] == f"2019-03-04T05:06:07.{millis}Z"
    assert first["s"] == "approved" and first["v"] == "2" and first["ap"] == first["t"]
    if source_format in ("disqus", "wordpress"):
        assert first["d"]["ip_hash"] and b"203.0.113" not in b"".join(await dump_redis(redis))
    assert b"2001:db8" not in b"".join(await dump_redis(redis))

    # The doctor finds nothing wrong.
    assert await doctor(redis, repair=False) == []
    # The import ends fully indexed (its catch-up): a word of a text is found through the terms.
    partition = keys.partition_of_article(ARTICLE)
    assert await redis.get(keys.search_done(partition)) == await redis.get(keys.search_seq(partition))
    found = await client.get("/v1/moderation/search", params={"q": "huu ich"}, headers=ADMIN)
    assert sid("1") in [c["id"] for c in (await found.json())["comments"]]

    # The public list and counts over HTTP show the approved comments, nothing else, and no email.
    listed = await (await client.get(f"/v1/articles/{ARTICLE}/comments?limit=50")).json()
    assert listed["total"] == len(APPROVED)
    assert {c["id"] for c in listed["comments"]} == {sid(p) for p in APPROVED}
    assert all("email" not in c for c in listed["comments"])
    counts = await (await client.get(f"/v1/counts?article_id={ARTICLE}")).json()
    assert counts["counts"] == {ARTICLE: len(APPROVED)}
    # Moderators see the imported history and can decide an imported pending comment.
    seen = await (await client.get(f"/v1/moderation/comments/{sid('1')}", headers=ADMIN)).json()
    assert [(h["by"], h["action"], h["to_state"]) for h in seen["history"]] == [("import", "approve", "approved")]
    decided = await client.post(f"/v1/moderation/comments/{sid('7')}/decision", json={"action": "approve"},
                                headers=ADMIN)
    assert decided.status == 200, await decided.text()
    await asyncio.sleep(0.3)  # the public cache's life in the tests' settings
    assert (await (await client.get(f"/v1/counts?article_id={ARTICLE}")).json())["counts"][ARTICLE] == 8
    assert await doctor(redis, repair=False) == []


@pytest.mark.parametrize("source_format", ["disqus", "wordpress", "isso", "commento"])
async def test_importing_twice_changes_nothing(source_format: Format, redis: Redis, tmp_path: Path) -> None:
    path = _file(tmp_path, source_format)
    first = await _import(redis, path, source_format)
    before = sorted(await dump_redis(redis))
    second = await _import(redis, path, source_format)
    assert second.imported == {} and second.already_present == first.imported_total
    assert sorted(await dump_redis(redis)) == before


async def test_an_interrupted_import_runs_again_to_completion(redis: Redis, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = _file(tmp_path, "disqus")
    await _import(redis, path, "disqus")
    whole = sorted(await dump_redis(redis))
    await redis.flushdb()
    monkeypatch.setattr(importer_module, "BATCH", 3)
    real_write: Callable[..., Awaitable[Any]] = importer_module.__dict__["write"]
    calls = 0

    async def dying(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("the import's process was stopped")
        return await real_write(*args)

    monkeypatch.setattr(importer_module, "write", dying)
    with pytest.raises(ConnectionError):
        await _import(redis, path, "disqus")
    stored = await redis.keys(f"{keys.PREFIX}:*:c:*")
    assert len(stored) == 3  # the first batch only
    monkeypatch.setattr(importer_module, "write", real_write)
    again = await _import(redis, path, "disqus")
    assert again.already_present == 3 and not again.failed
    assert sorted(await dump_redis(redis)) == whole
    assert await doctor(redis, repair=False) == []


async def test_options_state_pending_feed_and_dry_run(redis: Redis, tmp_path: Path) -> None:
    path = _file(tmp_path, "disqus")
    dry = await Importer(None, SECRET, frozenset(), Options("disqus", path, dry_run=True)).run()
    assert dry.imported_total == len(APPROVED) + 3 and await redis.dbsize() == 0

    report = await _import(redis, path, "disqus", state="pending")
    assert report.imported == {"pending": len(APPROVED) + 1, "rejected": 1, "spam": 1}
    # Threads are kept: a reply keeps the parent that will be approved; nothing is on the feed.
    assert (await _record(redis, _id("disqus", "2")))["d"]["parent_id"] == _id("disqus", "1")
    p = keys.partition_of_article(ARTICLE)
    assert await redis.zcard(keys.pending(p)) == len(APPROVED) + 1
    assert await redis.zcard(keys.article_pending(ARTICLE)) == len(APPROVED) + 1
    assert await redis.exists(keys.feed(p)) == 0
    assert await doctor(redis, repair=False) == []

    await redis.flushdb()
    await _import(redis, path, "disqus", feed=True)
    events: list[Any] = await redis.xrange(keys.feed(p))  # type: ignore[assignment,unused-ignore]
    assert len(events) == len(APPROVED) and {e[1][b"type"] for e in events} == {b"comment.approved"}
    assert await redis.exists(keys.outbox(p)) == 0  # webhooks are not told of imports


async def test_imported_pending_comments_are_claimable_behind_the_claim_hint(redis: Redis, tmp_path: Path) -> None:
    """Imported comments carry their old times: import.lua lowers the partition's claim hint (`keys.claim_hint`)
    to them, so a claim that had moved past those times takes them, oldest first."""
    p = keys.partition_of_article(ARTICLE)
    now = int(time.time() * 1000)
    await redis.hset(keys.claim_hint(p), mapping={"from": now, "swept": now})  # as after a claim of today
    await _import(redis, _file(tmp_path, "disqus"), "disqus", state="pending")
    pending: list[Any] = await redis.zrange(keys.pending(p), 0, -1, withscores=True)  # type: ignore[assignment,unused-ignore]
    assert pending and await redis.hget(keys.claim_hint(p), "from") == b"%d" % pending[0][1]
    scripts = Scripts(redis)
    await scripts.load()
    claimed = await scripts.run("claim", keys.claim_keys(p), [now + 1, now + 60_000, "Lan", 100, ""])
    assert claimed == [entry[0] for entry in pending]
    assert await doctor(redis, repair=False) == []


# -- safety and mapping --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bomb", [billion_laughs, external_entity])
async def test_xml_bombs_and_external_entities_are_refused_quickly_without_memory(
        bomb: Callable[[], str], redis: Redis, tmp_path: Path) -> None:
    path = tmp_path / "bomb.xml"
    path.write_text(bomb())
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(FileRefused, match="entities"):
            await _import(redis, path, "disqus")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2
    assert peak < 5 * 2**20, peak  # the expansion would be about 3 GB
    assert await redis.dbsize() == 0


def test_article_mapping_modes(tmp_path: Path) -> None:
    assert ArticleMap("path").article(f"{ARTICLE_URL}/?utm=x#c").article == ARTICLE
    assert ArticleMap("url").article(ARTICLE_URL).article == "bao.example.vn:thoi-su:bai-viet-1"
    regex = ArticleMap(r"/(?P<article>bai-viet-\d+)")
    assert regex.article(ARTICLE_URL).article == "bai-viet-1"
    assert regex.article(f"{ARTICLE_URL[:-1]}x").reason == "no_match"
    assert regex.article("https://x.vn/" + "a" * 5000).reason == "url_too_long"  # the regex never sees it
    assert ArticleMap("path").article("https://x.vn/bài-viết").reason == "invalid_article_id"
    assert ArticleMap("path").article("https://x.vn/a\n").article == "a"
    table = tmp_path / "map.csv"
    table.write_text(f"url,article_id\n{ARTICLE_URL}/,bai-1\nhttps://x.vn/b,bad id\n", encoding="utf-8")
    csv_map = ArticleMap(str(table))
    assert csv_map.article(ARTICLE_URL).article == "bai-1"
    assert csv_map.article("https://x.vn/b").reason == "invalid_article_id"
    assert csv_map.article("https://x.vn/c").reason == "no_match"
    with pytest.raises(BadArticleSpec):
        ArticleMap("(unclosed")


def test_html_bodies_become_plain_text() -> None:
    assert html_to_text("<p>Một &amp; hai</p><p>ba<br/>bốn</p>") == "Một & hai\n\nba\nbốn"
    assert html_to_text('<a href="https://a.vn/x">xem</a> <a href="javascript:alert(1)">bấm</a>') == \
        "xem (https://a.vn/x) bấm"
    assert html_to_text("<script>alert(1)</script><style>p{}</style>chữ &lt;b&gt;") == "chữ <b>"
    assert html_to_text("dòng một\ndòng <i>hai</i>", keep_newlines=True) == "dòng một\ndòng hai"


def test_stable_ids_keep_the_partition_convention() -> None:
    comment_id = _id("disqus", "12345")
    assert COMMENT_ID_RE.fullmatch(comment_id)
    assert keys.partition_of_comment(comment_id) == keys.partition_of_article(ARTICLE)
    assert comment_id == _id("disqus", "12345") != _id("wordpress", "12345")


# -- the command ---------------------------------------------------------------------------------------------

def _command(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


def _environment(redis_server: RedisServer, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMENTS_")}
    env.update(COMMENTS_REDIS_URL=redis_server.url, COMMENTS_DATA_DIR=str(tmp_path),
               COMMENTS_SECRET_KEY=SECRET.decode())
    return env


async def test_the_import_command_reports_and_runs_twice(redis_server: RedisServer, redis: Redis,
                                                         settings: Settings, tmp_path: Path) -> None:
    path = _file(tmp_path, "disqus")
    report_path = tmp_path / "report.json"
    command = [COMMAND, "import", str(path), "--format", "disqus", "--articles", "path", "--report",
               str(report_path)]
    env = _environment(redis_server, tmp_path)
    done = await asyncio.to_thread(_command, command, env)
    assert done.returncode == 0, done.stderr
    assert "imported 10 (approved 7, pending 1, rejected 1, spam 1)" in done.stdout
    assert ROOT_URL in done.stdout  # the URL that maps to nothing is named
    report = orjson.loads(report_path.read_bytes())
    assert report["imported"] == 10 and report["skipped"] == {"article_unmapped:no_match": 1}
    assert {"what": "note", "source_id": "5", "reason": "parent_not_published",
            "comment_id": _id("disqus", "5")} in report["details"]
    doctor_run = await asyncio.to_thread(_command, [COMMAND, "doctor"], env)
    assert doctor_run.returncode == 0, doctor_run.stdout
    again = await asyncio.to_thread(_command, command, env)
    assert again.returncode == 0 and "imported 0 (none), already present 10" in again.stdout
    refused = await asyncio.to_thread(_command, [*command[:5], "--articles", "(bad"], env)
    assert refused.returncode == 2 and "regular expression" in refused.stderr
    bomb = tmp_path / "bomb.xml"
    bomb.write_text(billion_laughs())
    bombed = await asyncio.to_thread(_command, [COMMAND, "import", str(bomb), "--format", "disqus"], env)
    assert bombed.returncode == 2 and "entities" in bombed.stderr
