"""The compact search index (lua/lib/terms.lua, `service.search`): a term's n's move from its bucket to its own
string to a bitmap as it grows; readers find them in any form; erasure takes a comment out of every form."""

from __future__ import annotations

import hashlib
from typing import Final

import orjson
from redis.asyncio import Redis

from service import keys, search
from service.doctor import doctor
from service.indexer import Indexer
from service.scripts import Scripts
from service.submissions import OUTBOX_MAXLEN, new_comment_id

ARTICLE: Final = "bai-chi-muc"
P: Final = keys.partition_of_article(ARTICLE)


async def _store(scripts: Scripts, serial: int, words: list[str]) -> str:
    comment_id = new_comment_id(ARTICLE, 1_700_000_000_000 + serial)
    digest, ip_hash = f"{serial % 3:024x}", f"{serial:024x}"
    record = orjson.dumps({"name": "Lan", "email": f"r{serial % 3}@example.vn", "title": "", "body": " ".join(words),
                           "parent_id": None, "ip_hash": ip_hash, "email_hash": digest, "avatar": "",
                           "created_at": "2023-11-14T22:13:20Z", "risk": []})
    answer = await scripts.run("submit_store", keys.submit_keys(comment_id, ARTICLE, indexed=True),
                               [comment_id, ARTICLE, 1_700_000_000_000 + serial, record, "",
                                hashlib.sha256(record).hexdigest(), OUTBOX_MAXLEN, ""])
    assert answer == [b"ok"], answer
    return comment_id


async def _ids(scripts: Scripts, term: str) -> list[str]:
    index = search.Index(scripts)
    source = await index.term(term)
    ns = await index.all_ns(source)
    slots = await index.slots(P, ns)
    return [slots[n][0] for n in ns if n in slots]


async def test_terms_grow_through_their_forms_and_erasure_leaves_every_one(redis: Redis) -> None:
    scripts = Scripts(redis)
    ids = [await _store(scripts, serial, ["duong", f"rieng{serial}"] + (["hiem"] if serial % 10 == 0 else []))
           for serial in range(120)]
    # Batches of 16 (the forms move on within a batch and between batches).
    assert await Indexer(scripts, batch=16).catch_up() == 120
    common, rare, sender = keys.word_index(P, "duong"), keys.word_index(P, "hiem"), keys.by_email(P, f"{1:024x}")
    # "duong" is in every comment, sender 1 in one of 3: bitmaps; "hiem" in 12 of 120: still in its bucket.
    assert search.is_bitmap(await redis.getrange(common, 0, 0))  # type: ignore[arg-type,unused-ignore]
    assert search.is_bitmap(await redis.getrange(sender, 0, 0))  # type: ignore[arg-type,unused-ignore]
    assert not await redis.exists(rare) and await redis.hget(keys.search_bucket(rare), keys.search_field(rare))
    assert await _ids(scripts, common) == ids[::-1]
    assert await _ids(scripts, rare) == ids[::10][::-1]
    assert await _ids(scripts, sender) == ids[1::3][::-1]
    assert int(await redis.get(keys.search_seq(P)) or 0) == 120
    # Paging a bitmap and a string from a place in the middle (a cursor's).
    for term, expected in ((common, ids[::-1]), (sender, ids[1::3][::-1])):
        source = await search.Index(scripts).term(term)
        first, place = await source.below(search.TOP, 7)
        rest, _ = await source.below(place, 1000)
        numbers = [int(await redis.hget(keys.comment(i), "n") or 0) for i in expected]
        assert first + rest == numbers
    # An erasure (delete) takes comment 30 out of its word, sender and address terms, in every form.
    erased = ids[30]
    row = await redis.hmget(keys.comment(erased), "v", "n")
    words = search.index_words("Lan", "", "duong rieng30 hiem")
    tombstone = orjson.dumps({"name": "", "email": "", "title": "", "body": "", "parent_id": None, "ip_hash": "",
                              "email_hash": "", "avatar": "", "created_at": "2023-11-14T22:13:20Z", "risk": []})
    answer = await scripts.run("erase", keys.erase_keys(erased, ARTICLE, f"{0:024x}", f"{30:024x}", words),
                               [erased, "delete", row[0] or b"", 1, "test", OUTBOX_MAXLEN, tombstone, 0])
    assert answer[0] == b"ok"
    assert erased not in await _ids(scripts, common) and erased not in await _ids(scripts, rare)
    assert erased not in await _ids(scripts, keys.by_email(P, f"{0:024x}"))
    assert not await redis.hget(keys.search_bucket(keys.by_ip(P, f"{30:024x}")),
                                keys.search_field(keys.by_ip(P, f"{30:024x}")))
    assert [f.kind for f in await doctor(redis, repair=False)] == []


async def test_a_damaged_term_is_found_and_mended(redis: Redis) -> None:
    scripts = Scripts(redis)
    ids = [await _store(scripts, serial, ["duong"]) for serial in range(40)]
    await Indexer(scripts).catch_up()
    common = keys.word_index(P, "duong")
    await redis.set(common, search.encode_ns([5, 3, 1, 999]))  # unsorted, and an n no comment has
    found = await doctor(redis, repair=True)
    assert [(f.kind, f.key, f.mended) for f in found] == [
        ("search_term_mismatch", keys.search_bucket(common), True)]
    assert "duong" not in found[0].line()
    assert await _ids(scripts, common) == ids[::-1] and await doctor(redis, repair=False) == []


async def test_a_string_of_ns_pages_from_any_place(redis: Redis) -> None:
    """A mid term's own string (3-byte n's): a place found by bisection (probes), pages from the end."""
    ns = list(range(7, 7 + 3 * 5000, 3))
    await redis.set("cm:{p00}:w:giua", search.encode_ns(ns))
    source = await search.Index(Scripts(redis)).term("cm:{p00}:w:giua")
    assert isinstance(source, search.Postings) and source.size() == 5000
    seen, place = [], search.TOP
    while place:
        page, place = await source.below(place, 777)
        seen += page
    assert seen == ns[::-1]
    again = await search.Index(Scripts(redis)).term("cm:{p00}:w:giua")
    assert await again.below(ns[1234] + 1, 3) == ([ns[1234], ns[1233], ns[1232]], ns[1232])
    assert await again.below(ns[0], 3) == ([], 0)
