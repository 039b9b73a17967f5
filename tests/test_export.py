"""`comments-service export` (`service.exporting`) and its restore (`import --format json`): data the service
made through its API (every state, a retraction, a closed article) and imported data, exported, restored into an
empty Redis and exported again give the same bytes and the same stored data."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from import_fixtures import ARTICLE, disqus_xml
from redis.asyncio import Redis
from support import RedisServer

from service import keys, search
from service.doctor import doctor
from service.exporting import export
from service.importing.importer import Importer, Options, Report
from service.scripts import Scripts

Client = TestClient[web.Request, web.Application]
ADMIN: Final = {"Authorization": "Bearer test-admin-token"}
COMMAND: Final = str(Path(sys.executable).parent / "comments-service")
SECRET: Final = b"s" * 48
OWN: Final = "bai-viet-42"
#: Keys that an export does not carry (events, stats) or that only say when caches must be renewed.
#: Keys an export does not carry: streams, stats, the gate, people and hooks, and the running indexer's lease.
_NOT_EXPORTED: Final = (":feed", ":outbox", ":stats:", ":lat:", "{g}", "{auth}", "{hooks}", "{acct}", "{search}")


async def _submit(client: Client, article: str, body: str) -> str:
    captcha_id = (await (await client.post("/v1/captchas")).json())["id"]
    form = {"name": "Phạm Thu", "email": "thu@example.vn", "title": "Ý kiến", "body": body,
            "captcha_id": captcha_id, "captcha_answer": "ABCDE"}
    response = await client.post(f"/v1/articles/{article}/comments", json=form)
    assert response.status == 202, await response.text()
    comment_id: str = (await response.json())["id"]
    return comment_id


async def _decide(client: Client, comment_id: str, action: str) -> None:
    path = f"/v1/moderation/comments/{comment_id}/" + ("retract" if action == "retract" else "decision")
    response = await client.post(path, json={} if action == "retract" else {"action": action}, headers=ADMIN)
    assert response.status == 200, await response.text()


async def _seed(client: Client, redis: Redis, tmp_path: Path) -> None:
    """Comments in every state through the API, a closed article, and an imported Disqus file."""
    ids = [await _submit(client, OWN, f"Bình luận thứ {n}.") for n in range(6)]
    for comment_id, action in zip(ids, ("approve", "approve", "reject", "spam", "approve"), strict=False):
        await _decide(client, comment_id, action)
    await _decide(client, ids[4], "retract")
    response = await client.post("/v1/moderation/articles/bai-viet-dong/close", headers=ADMIN)
    assert response.status == 200
    (path := tmp_path / "disqus.xml").write_text(disqus_xml(), encoding="utf-8")
    await _run(redis, path, "disqus")


async def _run(redis: Redis, path: Path, source_format: Any) -> Report:
    scripts = Scripts(redis)
    await scripts.load()
    return await Importer(scripts, SECRET, frozenset(), Options(source_format, path)).run()


def _value(raw: Any) -> Any:
    if isinstance(raw, bytes):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
        return parsed if isinstance(parsed, dict | list) else raw
    if isinstance(raw, dict):
        # An article's cache version; a record's number in the search index (`search_view` compares that).
        return {k: _value(v) for k, v in raw.items() if k not in (b"ver", b"n")}
    if isinstance(raw, list):
        return [_value(v) for v in raw]
    return raw


async def _stored(redis: Redis) -> dict[bytes, Any]:
    """Every comment and article key with its contents (JSON parsed: a restore may order an object's keys
    differently), less what an export does not carry."""
    out: dict[bytes, Any] = {}
    async for key in redis.scan_iter(count=1000):
        if any(part.encode() in key for part in _NOT_EXPORTED) or _SEARCH_INDEX.search(key):
            continue
        found: bytes = await redis.type(key)  # type: ignore[assignment,unused-ignore]
        kind = found.decode()
        if kind == "hash":
            out[key] = _value(await redis.hgetall(key))  # type: ignore[misc,unused-ignore]
        elif kind == "list":
            out[key] = _value(await redis.lrange(key, 0, -1))  # type: ignore[misc,unused-ignore]
        elif kind == "zset":
            out[key] = await redis.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = kind
    out[b"search"] = await search_view(redis)
    return out


#: The search index's keys (`keys.search_seq`...): a restore numbers comments anew, so they are compared by what
#: they say (`search_view`), not byte for byte.
_SEARCH_INDEX: Final = re.compile(rb"^cm:\{p[0-9a-f]{2}\}:(n|n:[0-9]+|n:done|[wei]:.*|b:[0-9a-f]+)$")


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else b""


async def search_view(redis: Redis) -> dict[str, list[str]]:
    """Every search term (its field: `w:<word>`, `e:<digest>`...) of every partition -> the ids it finds."""
    out: dict[str, list[str]] = {}
    for p in range(keys.PARTITIONS):
        tag = keys.search_seq(p)[:-2]
        slots: dict[int, str] = {}
        async for chunk_key in redis.scan_iter(f"{tag}:n:[0-9]*"):
            chunk = int(_bytes(chunk_key).decode().rsplit(":", 1)[1])
            raw = _bytes(await redis.get(chunk_key))
            for offset in range(0, len(raw), keys.SEARCH_SLOT):
                found = search.slot(raw[offset:offset + keys.SEARCH_SLOT])
                if found is not None:
                    slots[chunk * keys.SEARCH_CHUNK + offset // keys.SEARCH_SLOT + 1] = found[0]
        terms: dict[str, list[int]] = {}
        for code in keys.SEARCH_TERM_KINDS:
            async for key in redis.scan_iter(f"{tag}:{code}:*"):
                raw = _bytes(await redis.get(key))
                terms[keys.search_field(_bytes(key).decode())] = (search.bitmap_ns(raw) if search.is_bitmap(raw)
                                                          else search.decode_ns(raw))
        async for bucket in redis.scan_iter(f"{tag}:b:*"):
            for name, value in (await redis.hgetall(bucket)).items():  # type: ignore[misc,unused-ignore]
                terms[_bytes(name).decode()] = search.decode_ns(_bytes(value))
        for name, ns in terms.items():
            out[f"{p}:{name}"] = sorted(slots[n] for n in ns)
        out[f"{p}:every"] = sorted(slots.values())
    return out


async def test_export_restore_export_gives_the_same_file_and_data(client: Client, redis: Redis,
                                                                  tmp_path: Path) -> None:
    await _seed(client, redis, tmp_path)
    first = tmp_path / "first.json"
    done = await export(redis, first)
    assert done.comments == 6 + 10 and done.articles >= 2
    before = await _stored(redis)

    document = orjson.loads(first.read_bytes())  # one JSON document, whatever the streaming layout
    assert (document["format"], document["version"]) == ("comments-service-export", 1)
    states = {c["record"]["s"] for c in document["comments"]}
    assert states == {"pending", "approved", "rejected", "spam", "retracted"}
    assert {"id": "bai-viet-dong", "open": False, "sequence": 0} in document["articles"]
    retracted = next(c for c in document["comments"] if c["record"]["s"] == "retracted")
    assert [h["action"] for h in retracted["history"]] == ["approve", "retract"]

    await redis.flushdb()
    restored = await _run(redis, first, "json")
    assert restored.imported_total == 16 and not restored.failed and not restored.skipped
    assert await _stored(redis) == before
    assert await doctor(redis, repair=False) == []
    second = tmp_path / "second.json"
    await export(redis, second)
    assert second.read_bytes() == first.read_bytes()

    again = await _run(redis, first, "json")  # restoring twice adds nothing
    assert again.imported_total == 0 and again.already_present == 16
    # The service goes on from the restored data: a new approval comes after the restored ones, the closed
    # article stays closed.
    listed = await (await client.get(f"/v1/articles/{OWN}/comments")).json()
    assert listed["total"] == 2
    newer = await _submit(client, OWN, "Sau khi khôi phục.")
    await _decide(client, newer, "approve")
    order: list[bytes] = await redis.zrange(keys.article_order(OWN), 0, -1)  # type: ignore[assignment,unused-ignore]
    assert order[-1].decode() == newer
    assert (await redis.hget(keys.article("bai-viet-dong"), "closed")) == b"1"
    assert (await (await client.get(f"/v1/counts?article_id={ARTICLE}")).json())["counts"][ARTICLE] == 7


async def test_the_json_restore_reads_any_layout_and_refuses_a_cut_file(redis: Redis, client: Client,
                                                                        tmp_path: Path) -> None:
    await _seed(client, redis, tmp_path)
    exported = tmp_path / "export.json"
    await export(redis, exported)
    before = await _stored(redis)
    pretty = tmp_path / "pretty.json"
    pretty.write_bytes(orjson.dumps(orjson.loads(exported.read_bytes()), option=orjson.OPT_INDENT_2))
    await redis.flushdb()
    assert (await _run(redis, pretty, "json")).imported_total == 16
    assert await _stored(redis) == before
    cut = tmp_path / "cut.json"
    cut.write_bytes(exported.read_bytes()[: len(exported.read_bytes()) // 2].rsplit(b"\n", 1)[0] + b"\n")
    from service.importing.source import FileRefused

    with pytest.raises(FileRefused):
        await _run(redis, cut, "json")


def _command(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


async def test_the_export_and_restore_commands(redis_server: RedisServer, redis: Redis, client: Client,
                                               tmp_path: Path) -> None:
    await _seed(client, redis, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMENTS_")}
    env.update(COMMENTS_REDIS_URL=redis_server.url, COMMENTS_DATA_DIR=str(tmp_path),
               COMMENTS_SECRET_KEY=SECRET.decode())
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    done = await asyncio.to_thread(_command, [COMMAND, "export", str(first)], env)
    assert done.returncode == 0 and "exported 16 comments" in done.stderr, done.stderr
    await redis.flushdb()
    restored = await asyncio.to_thread(_command, [COMMAND, "import", str(first), "--format", "json"], env)
    assert restored.returncode == 0 and "imported 16" in restored.stdout, restored.stderr
    refused = await asyncio.to_thread(_command, [COMMAND, "import", str(first), "--format", "json", "--state",
                                                 "pending"], env)
    assert refused.returncode == 2
    assert (await asyncio.to_thread(_command, [COMMAND, "export", str(second)], env)).returncode == 0
    assert second.read_bytes() == first.read_bytes()
