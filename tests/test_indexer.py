"""The search indexer (`service.indexer`, lua/index_batch.lua): a comment is found the moment it is stored (read
from its record while it is above the watermark) and after it is indexed; erasure before, during and after
indexing leaves no terms; several indexers at once; privacy exact with the indexer stopped; the doctor's lag and
repair; a bounded tail says so."""

from __future__ import annotations

import asyncio
import random
from typing import Any, Final

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from support import ADMIN, submit_comment

from service import indexer, keys, search
from service.app import BACKGROUND
from service.appkeys import METRICS, SCRIPTS
from service.doctor import Doctor, doctor
from service.errors import StorageCorrupt
from service.indexer import Indexer, plan_batch
from service.scripts import Scripts, as_text
from service.submissions import OUTBOX_MAXLEN, new_comment_id
from service.tasks import stop

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]
ARTICLE: Final = "bai-chi-muc-sau"
P: Final = keys.partition_of_article(ARTICLE)


async def quiet(client: Client) -> Client:
    """The app without its background tasks, its indexer among them: nothing is indexed unless a test says so."""
    background: list[asyncio.Task[None]] = client.app[BACKGROUND]
    await stop(background)
    return client


async def search_ids(client: Client, **params: str) -> Json:
    response = await client.get("/v1/moderation/search", params={"limit": "100", **params}, headers=ADMIN)
    assert response.status == 200, await response.text()
    body: Json = await response.json()
    return body


async def found(client: Client, **params: str) -> list[str]:
    return [c["id"] for c in (await search_ids(client, **params))["comments"]]


async def watermark(redis: Redis, partition: int = P) -> tuple[int, int]:
    done, last = await redis.mget(keys.search_done(partition), keys.search_seq(partition))
    return int(done or 0), int(last or 0)


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


async def terms_holding(redis: Redis, n: int, partition: int = P) -> list[str]:
    """Every term (own key or bucket field) of the partition that holds comment n."""
    holding = []
    async for key in redis.scan_iter(match=f"cm:{{p{partition:02x}}}:*", count=1000):
        name = key.decode()
        code = name.split(":", 2)[2].split(":")[0]
        if code in keys.SEARCH_TERM_KINDS:
            raw = _bytes(await redis.get(name) or b"")
            ns = search.bitmap_ns(raw) if search.is_bitmap(raw) else search.decode_ns(raw)
            if n in ns:
                holding.append(name)
        elif code == "b" and await redis.type(name) == b"hash":
            for field, value in (await redis.hgetall(name)).items():
                if n in search.decode_ns(_bytes(value)):
                    holding.append(as_text(field))
    return holding


async def number(redis: Redis, comment_id: str) -> int:
    return int(await redis.hget(keys.comment(comment_id), "n") or 0)


async def test_a_comment_is_found_when_stored_and_after_it_is_indexed(client: Client, redis: Redis) -> None:
    client = await quiet(client)
    first = (await submit_comment(client, ARTICLE, email="lan@example.vn", body="Con đường làng quê"))["id"]
    second = (await submit_comment(client, ARTICLE, email="minh@example.vn", body="Đường phố đông"))["id"]
    assert await watermark(redis) == (0, 2)
    assert not await terms_holding(redis, 1)  # the store wrote no term
    for _ in range(2):
        assert await found(client, q="duong") == [second, first]
        assert await found(client, q="lang que") == [first]
        assert await found(client, email="lan@example.vn") == [first]
        assert (await search_ids(client, q="duong"))["complete"] is True
        author = await (await client.get(f"/v1/moderation/comments/{second}/author", headers=ADMIN)).json()
        assert author["by_email"]["total"] == 0
        assert await Indexer(client.app[SCRIPTS]).catch_up() in (2, 0)
        assert await watermark(redis) == (2, 2)
        assert await terms_holding(redis, 1)
    assert await doctor(redis, repair=False) == []


async def test_a_tail_longer_than_readers_read_is_reported_incomplete(client: Client, redis: Redis,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    client = await quiet(client)
    ids = [(await submit_comment(client, ARTICLE, body=f"Con đường số {i}"))["id"] for i in range(4)]
    monkeypatch.setattr(search, "TAIL_MAX", 3)
    page = await search_ids(client, q="duong")
    assert [c["id"] for c in page["comments"]] == ids[:0:-1] and page["complete"] is False
    await Indexer(client.app[SCRIPTS]).catch_up()
    page = await search_ids(client, q="duong")
    assert [c["id"] for c in page["comments"]] == ids[::-1] and page["complete"] is True


async def erase(client: Client, comment_id: str, mode: str = "delete") -> None:
    response = await client.post("/v1/privacy/erasures", headers=ADMIN, json={
        "comment_ids": [comment_id], "mode": mode, "requested_by": "test"})
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("mode", ["delete", "anonymise"])
async def test_erasure_before_indexing_leaves_no_terms(client: Client, redis: Redis, mode: str) -> None:
    client = await quiet(client)
    gone = (await submit_comment(client, ARTICLE, email="lan@example.vn", body="Nước sông Hồng"))["id"]
    kept = (await submit_comment(client, ARTICLE, email="lan@example.vn", body="Nước biển"))["id"]
    await erase(client, gone, mode)
    await Indexer(client.app[SCRIPTS]).catch_up()
    holding = await terms_holding(redis, await number(redis, gone))
    if mode == "delete":
        assert holding == []
    else:  # the text stays findable (words only: the sender's and address's terms went with them)
        assert holding and all(h.split(":")[-2] == "w" for h in holding)
    assert await found(client, email="lan@example.vn") == [kept]
    assert await found(client, q="nuoc") == ([kept] if mode == "delete" else [kept, gone])
    assert await doctor(redis, repair=False) == []


async def test_an_erasure_during_a_batch_refuses_it_and_the_batch_is_read_again(client: Client,
                                                                                 redis: Redis) -> None:
    client = await quiet(client)
    scripts: Scripts = client.app[SCRIPTS]
    gone = (await submit_comment(client, ARTICLE, email="lan@example.vn", body="Nước sông Hồng"))["id"]
    kept = (await submit_comment(client, ARTICLE, email="minh@example.vn", body="Nước biển"))["id"]
    # The indexer's reads, then an erasure, then its script: refused, nothing written.
    slots = await search.Index(scripts).slots(P, [1, 2])
    rows = [await redis.hmget(keys.comment(i), "d", "er", "n") for i, _ in slots.values()]
    script_keys, args = plan_batch(P, 0, 2, slots, rows)
    await erase(client, gone)
    before = {key: await redis.dump(key) for key in script_keys}
    assert (await scripts.run("index_batch", script_keys, args))[0] == b"changed"
    assert {key: await redis.dump(key) for key in script_keys} == before
    # Read again: the erased comment has no terms, the other all of its own.
    assert await Indexer(scripts).catch_up() == 2
    assert await terms_holding(redis, await number(redis, gone)) == []
    record = await redis.hget(keys.comment(kept), "d")
    assert sorted(await terms_holding(redis, await number(redis, kept))) == sorted(  # rare: bucket fields
        keys.search_field(term) for term in search.record_terms(P, record) or [])
    assert await found(client, q="nuoc") == [kept]


async def test_erasure_after_indexing_leaves_no_terms(client: Client, redis: Redis) -> None:
    client = await quiet(client)
    gone = (await submit_comment(client, ARTICLE, email="lan@example.vn", body="Nước sông Hồng"))["id"]
    await Indexer(client.app[SCRIPTS]).catch_up()
    assert await terms_holding(redis, 1)
    await erase(client, gone)
    assert await terms_holding(redis, 1) == []
    assert await found(client, q="nuoc") == []
    assert await doctor(redis, repair=False) == []


async def store(scripts: Scripts, count: int, partitions: int = 1) -> list[str]:
    """`count` comments through the store script, as a submission stores them (no gate), over articles of
    `partitions` partitions."""
    articles = [ARTICLE, *[f"bai-{i}" for i in range(200)]]
    chosen: dict[int, str] = {}
    for article in articles:
        chosen.setdefault(keys.partition_of_article(article), article)
        if len(chosen) == partitions:
            break
    batch = scripts.batch()
    ids = []
    for serial in range(count):
        article = list(chosen.values())[serial % partitions]
        comment_id = new_comment_id(article, 1_700_000_000_000 + serial)
        words = ["thanhpho", f"rieng{serial}", *(["vua"] if serial % 5 == 0 else [])]
        record = orjson.dumps({"name": "Lan", "email": "", "title": "", "body": " ".join(words), "parent_id": None,
                               "ip_hash": f"{serial % 7:024x}", "email_hash": f"{serial % 3:024x}", "avatar": "",
                               "created_at": "2023-11-14T22:13:20Z", "risk": []})
        batch.script("submit_store", keys.submit_keys(comment_id, article, indexed=True),
                     [comment_id, article, 1_700_000_000_000 + serial, record, "", "f", OUTBOX_MAXLEN, ""])
        ids.append(comment_id)
    assert all(answer[0] == b"ok" for answer in await batch.execute())
    return ids


async def test_several_indexers_at_once_index_each_comment_once(redis: Redis) -> None:
    scripts = Scripts(redis)
    await store(scripts, 600, partitions=3)
    counts = await asyncio.gather(*(Indexer(scripts, batch=32).catch_up() for _ in range(4)))
    assert sum(counts) == 600  # each n covered by exactly one of them
    assert all(done == last for done, last in [await watermark(redis, p) for p in range(keys.PARTITIONS)])
    assert await doctor(redis, repair=False) == []  # every term holds exactly its records' n's, once


async def test_the_background_indexer_catches_up_and_reports_its_lag(client: Client, redis: Redis) -> None:
    comment_id = (await submit_comment(client, ARTICLE, body="Con đường"))["id"]
    deadline = asyncio.get_running_loop().time() + 20
    while (await watermark(redis))[0] < await number(redis, comment_id):
        assert asyncio.get_running_loop().time() < deadline, "the background indexer did not index the comment"
        await asyncio.sleep(0.05)
    assert await terms_holding(redis, await number(redis, comment_id))
    while client.app[METRICS].search_index_lag._value.get() != 0:  # set before each round
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)


async def test_privacy_by_email_is_exact_with_the_indexer_stopped(client: Client, redis: Redis) -> None:
    client = await quiet(client)
    mine = [(await submit_comment(client, ARTICLE, email="hoa@example.vn", body=f"Ý kiến {i}"))["id"]
            for i in range(3)]
    await submit_comment(client, ARTICLE, email="khac@example.vn", body="Ý kiến khác")
    response = await client.get("/v1/privacy/export", params={"email": "hoa@example.vn"}, headers=ADMIN)
    assert sorted(c["id"] for c in (await response.json())["comments"]) == sorted(mine)
    assert await watermark(redis) == (4, 4)  # the export ran the indexer first
    response = await client.post("/v1/privacy/erasures", headers=ADMIN, json={
        "email": "hoa@example.vn", "mode": "delete", "requested_by": "test"})
    assert sorted((await response.json())["erased"]) == sorted(mine)
    for comment_id in mine:
        assert await terms_holding(redis, await number(redis, comment_id)) == []


async def test_the_doctor_reports_the_lag_and_a_repair_indexes(redis: Redis) -> None:
    scripts = Scripts(redis)
    await store(scripts, 50)
    examined = Doctor(redis, repair=False)
    assert await examined.examine() == [] and examined.lag[P] == 50
    repaired = Doctor(redis, repair=True)
    assert await repaired.examine() == [] and repaired.lag[P] == 0
    assert await watermark(redis) == (50, 50)
    # A watermark past the last n (a lost counter) is found and set back.
    await redis.set(keys.search_done(P), 70)
    findings = await doctor(redis, repair=True)
    assert [(f.kind, f.key) for f in findings] == [("search_done_ahead", keys.search_done(P))]
    assert await watermark(redis) == (50, 50) and await doctor(redis, repair=False) == []
    # A record the index lost (no number): a repair numbers it and the indexer writes its terms.
    lost = (await store(scripts, 1))[0]
    await redis.hdel(keys.comment(lost), "n")
    findings = await doctor(redis, repair=True)
    assert "not_in_search_index" in {f.kind for f in findings}
    assert await terms_holding(redis, await number(redis, lost))
    assert await doctor(redis, repair=False) == []


@pytest.mark.parametrize("before", [0, 40])
async def test_an_indexer_running_during_the_doctor_is_not_taken_for_damage(redis: Redis, before: int,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The doctor on a live service: an indexer writes batches between its scan of the keys and its check of the
    terms (new bucket keys the scan did not list, and, with 40 indexed before, common terms grown from their
    bucket into keys of their own). Nothing is reported."""
    scripts = Scripts(redis)
    await store(scripts, before)
    await Indexer(scripts).catch_up([P])
    await store(scripts, 300)
    check = Doctor._search_indexes

    async def indexed_meanwhile(self: Doctor, part: Any, ids: list[str]) -> None:
        if part.number == P:
            await Indexer(scripts).catch_up([P])
        await check(self, part, ids)

    monkeypatch.setattr(Doctor, "_search_indexes", indexed_meanwhile)
    examined = Doctor(redis, repair=False)
    assert await examined.examine() == []
    assert await watermark(redis) == (before + 300, before + 300)


async def test_a_damaged_term_refuses_the_batch_and_writes_nothing(redis: Redis) -> None:
    scripts = Scripts(redis)
    await store(scripts, 10)
    common = keys.word_index(P, "thanhpho")
    await redis.rpush(keys.search_bucket(common), "seeded by the test")
    with pytest.raises(StorageCorrupt):
        await Indexer(scripts).catch_up([P])
    assert await watermark(redis) == (0, 10)
    assert await terms_holding(redis, 1) == []


async def test_the_idle_background_loops_leave_the_global_random_alone(client: Client) -> None:
    """The indexer's idle waits are jittered from a generator of the service's own: property tests draw on another
    thread while the app runs, and Hypothesis fails a test whose draw saw the global `random` move."""
    state = random.getstate()
    await asyncio.sleep(1.0)  # about five idle rounds of the indexer (0.2 s each), and the job queues' polls
    assert random.getstate() == state


async def test_the_read_script_gives_each_record_as_hmget_does(redis: Redis) -> None:
    """lua/index_read.lua: a batch's records in one call, the same values as an HMGET d er n of each (absent fields
    and records as None); a record of the wrong type refuses the read as a damaged key."""
    scripts = Scripts(redis)
    ids = await store(scripts, 3)
    await redis.hset(keys.comment(ids[1]), "er", "strip_ip")
    record_keys = [keys.comment(i) for i in ids] + [keys.comment(new_comment_id(ARTICLE))]
    raw = await scripts.run("index_read", record_keys, ())
    assert [raw[i:i + 3] for i in range(0, len(raw), 3)] == [
        await redis.hmget(key, "d", "er", "n") for key in record_keys]
    assert raw[-3:] == [None, None, None]
    await redis.rpush(record_keys[-1], "not a record")
    with pytest.raises(StorageCorrupt):
        await scripts.run("index_read", record_keys, ())


async def test_one_indexer_holds_the_lease_and_another_takes_over_when_it_is_given_up(redis: Redis) -> None:
    scripts = Scripts(redis)
    first, second = Indexer(scripts), Indexer(scripts)
    assert await first.hold_lease() and not await second.hold_lease()
    assert await first.hold_lease()  # still its own
    assert 0 < await redis.pttl(keys.search_indexer_lease()) <= indexer.LEASE_MS
    await first.release_lease()
    assert not first.holding and await second.hold_lease() and not await first.hold_lease()
    await first.release_lease()  # not its own: left alone
    assert await redis.exists(keys.search_indexer_lease())


async def test_a_holder_whose_lease_ran_out_and_was_taken_steps_down(redis: Redis,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexer, "LEASE_RENEW_SECONDS", 0.0)
    scripts = Scripts(redis)
    first, second = Indexer(scripts), Indexer(scripts)
    assert await first.hold_lease()
    await redis.delete(keys.search_indexer_lease())  # ran out
    assert await second.hold_lease()
    assert not await first.hold_lease()  # sees the other's token
    assert await second.hold_lease()


async def test_only_the_worker_holding_the_lease_indexes(redis: Redis) -> None:
    """Two workers' background indexers: one indexes everything, the other never gets to (its batches are not read
    twice); once the first stops, the second takes over."""
    scripts = Scripts(redis)
    first, second = Indexer(scripts, interval_seconds=0.01), Indexer(scripts, interval_seconds=0.01)
    tasks = [asyncio.create_task(first.run())]
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not first.holding:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        tasks.append(asyncio.create_task(second.run()))
        await store(scripts, 40)
        while (await watermark(redis))[0] < 40:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        assert first.holding and not second.holding
        await stop(tasks[:1])
        await first.release_lease()
        await store(scripts, 10)
        deadline = asyncio.get_running_loop().time() + 10
        while (await watermark(redis))[0] < 50:
            assert asyncio.get_running_loop().time() < deadline, "the second indexer did not take over"
            await asyncio.sleep(0.05)
        assert second.holding
    finally:
        await stop(tasks)
    assert await doctor(redis, repair=False) == []


async def test_a_busy_worker_indexes_only_partitions_far_behind(redis: Redis) -> None:
    """While its worker serves more than `BUSY_READS_PER_SECOND`, the background indexer leaves a partition fewer
    than `BUSY_LAG` behind to the tail (found through its records meanwhile) and indexes it once the worker is
    quiet."""
    reads = [0]
    scripts = Scripts(redis)
    busy = Indexer(scripts, activity=lambda: reads[0])
    assert not busy.busy()  # nothing read yet
    reads[0] += 10**9  # far more than BUSY_READS_PER_SECOND in any time this test takes
    assert busy.busy()
    assert not busy.busy()  # nothing read since the last look
    await store(scripts, 10)
    assert await busy.step(least=indexer.BUSY_LAG) == 0
    assert await watermark(redis) == (0, 10)
    assert await busy.step() == 10
    assert await watermark(redis) == (10, 10)
    assert not Indexer(scripts).busy()  # no activity given: never busy


async def test_a_busy_worker_still_indexes_what_waited_too_long(redis: Redis) -> None:
    """Under a sustained load (not a burst) the tail stays what `busy_wait_seconds` brings: a partition behind
    by fewer than `BUSY_LAG` is indexed once it has waited that long, however busy the worker stays."""
    scripts = Scripts(redis)
    busy = Indexer(scripts, busy_wait_seconds=0.3)
    await store(scripts, 10)
    assert await busy.step(least=indexer.BUSY_LAG) == 0  # first seen behind now
    assert await watermark(redis) == (0, 10)
    await asyncio.sleep(0.4)
    assert await busy.step(least=indexer.BUSY_LAG) == 10
    assert await watermark(redis) == (10, 10)
    # Caught up, the partition's wait starts again with its next comments.
    await store(scripts, 5)
    assert await busy.step(least=indexer.BUSY_LAG) == 0
    assert await watermark(redis) == (10, 15)


async def test_a_busy_background_indexer_waits_and_indexes_when_the_worker_is_quiet(redis: Redis) -> None:
    reads = [0]
    scripts = Scripts(redis)
    background = Indexer(scripts, interval_seconds=0.01, activity=lambda: reads[0])
    task = asyncio.create_task(background.run())
    try:
        await store(scripts, 10)
        deadline = asyncio.get_running_loop().time() + 10
        while not background.holding:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        for _ in range(20):  # busy: the ten comments wait
            reads[0] += 10**9
            await asyncio.sleep(0.02)
            assert (await watermark(redis))[0] in (0, 10)  # indexed before the first look, or not at all
        while (await watermark(redis))[0] < 10:  # quiet: indexed
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
    finally:
        await stop([task])
