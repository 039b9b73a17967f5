"""The claim hint (`keys.claim_hint`, claim.lua): a partition-wide claim starts where the last one left the queue,
so claims that were never decided cost later claims nothing; and whatever makes a comment below the hint
claimable (a release, a lease that runs out, a comment stored or imported with an older time) is claimed.

What a claim reads is counted by claim.lua itself in its tests-only "count" mode (pending entries walked and
leases swept), not timed."""

from __future__ import annotations

from typing import Any, Final

import pytest
from redis.asyncio import Redis
from support import ADMIN
from test_moderation import submit, token
from test_moderation_filters import store

from service import keys
from service.doctor import doctor
from service.errors import StorageCorrupt
from service.moderation import Moderation
from service.scripts import Scripts

Client = Any
P: Final = 3
BASE: Final = 1_700_000_000_000
LEASE: Final = 600_000


async def claim(scripts: Scripts, now: int, who: str, limit: int, partitions: range = range(P, P + 1),
                lease_ms: int = LEASE) -> tuple[list[str], int]:
    """A partition-wide claim at `now` ms: the ids leased and the entries it read."""
    claim_keys = [key for p in partitions for key in keys.claim_keys(p)]
    ids, reads = await scripts.run("claim", claim_keys, [now, now + lease_ms, who, limit, "", "count"])
    return [i.decode() for i in ids], int(reads)


async def queue(redis: Redis, count: int, partition: int = P, start: int = 0) -> list[str]:
    """`count` pending ids of the partition, one ms apart from BASE + start (claim.lua reads no record)."""
    ids = [f"{partition:02x}{n:024d}" for n in range(start, start + count)]
    await redis.zadd(keys.pending(partition), {i: BASE + start + n for n, i in enumerate(ids)})
    return ids


async def test_claims_after_many_undecided_claims_read_about_their_limit(redis: Redis) -> None:
    """2,000 comments held by 190 undecided claims of 10: the next claim of 10 reads about 10 entries (the
    walk starts at the hint), where a walk from the head (no hint) reads past all 1,900 leased ones."""
    scripts = Scripts(redis)
    ids = await queue(redis, 2_000)
    now = BASE + 10_000
    for n in range(190):
        got, reads = await claim(scripts, now + n, f"m{n}", 10)
        assert got == ids[10 * n:10 * n + 10]
        assert reads <= 11, (n, reads)
    got, reads = await claim(scripts, now + 200, "late", 10)
    assert got == ids[1_900:1_910] and reads <= 11
    # Over every partition at once (a claim on one server), the others empty: the same.
    got, reads = await claim(scripts, now + 201, "all", 10, range(keys.PARTITIONS))
    assert got == ids[1_910:1_920] and reads <= 11
    # Without the hint, the walk reads every leased entry at the head of the queue.
    await redis.delete(keys.claim_hint(P))
    got, reads = await claim(scripts, now + 202, "nohint", 10)
    assert got == ids[1_920:1_930] and reads >= 1_930


async def test_a_released_comment_is_claimed_again(client: Client, redis: Redis) -> None:
    lan, minh = await token(client, "moderator", "Lan"), await token(client, "moderator", "Minh")
    submitted = [(await submit(client, "a1"))["id"] for _ in range(6)]
    response = await client.post("/v1/moderation/claims", json={"limit": 3}, headers=lan)
    assert [c["id"] for c in (await response.json())["comments"]] == submitted[:3]
    response = await client.post("/v1/moderation/claims", json={"limit": 2}, headers=minh)
    assert [c["id"] for c in (await response.json())["comments"]] == submitted[3:5]
    response = await client.post("/v1/moderation/claims/release", json={"ids": [submitted[1]]}, headers=lan)
    assert response.status == 200
    response = await client.post("/v1/moderation/claims", json={"limit": 2}, headers=minh)
    assert [c["id"] for c in (await response.json())["comments"]] == [submitted[1], submitted[5]]
    assert await doctor(redis, repair=False) == []


async def test_a_lease_that_runs_out_is_taken_over_once_swept(redis: Redis) -> None:
    """A's leases run out; the next claim (past their end) takes them over, oldest first, though the hint had
    moved past them; A may renew until then."""
    scripts = Scripts(redis)
    ids = await queue(redis, 8)
    now = BASE + 100
    assert (await claim(scripts, now, "A", 3, lease_ms=1_000))[0] == ids[:3]
    assert (await claim(scripts, now + 10, "B", 2))[0] == ids[3:5]
    assert (await claim(scripts, now + 500, "C", 1))[0] == ids[5:6]  # A's are live yet
    got, reads = await claim(scripts, now + 1_500, "D", 4)
    assert got == [*ids[:3], ids[6]]
    assert reads <= 3 + 8  # the three swept leases, and the entries walked from the oldest of them
    assert await redis.hget(keys.holders(P), ids[0]) == b"D"


async def test_a_lease_a_late_clock_saw_live_is_not_left_behind(redis: Redis) -> None:
    """Workers' clocks differ: a lease that a claim with a clock behind sees as live, but that the sweep of a
    claim with a clock ahead has passed already, keeps the hint at or below it, so it is claimed once it runs
    out."""
    scripts = Scripts(redis)
    ids = await queue(redis, 5)
    assert (await claim(scripts, 1_000, "A", 1, lease_ms=995))[0] == ids[:1]  # runs out at 1,995
    assert (await claim(scripts, 2_000, "W", 0))[0] == []  # swept up to 2,000: the hint is back at ids[0]
    assert (await claim(scripts, 1_990, "B", 1))[0] == ids[1:2]  # 10 ms behind: ids[0] is live for B
    assert (await claim(scripts, 3_000, "C", 2))[0] == [ids[0], ids[2]]


async def test_a_comment_stored_before_the_hint_is_claimable(redis: Redis) -> None:
    """A worker whose clock is behind stores a comment older than the hint: it is claimed first."""
    scripts = Scripts(redis)
    article = next(f"art-{n}" for n in range(10_000) if keys.partition_of_article(f"art-{n}") == P)
    ids = await store(redis, [(article, BASE + 10 + n, f"bình luận {n}") for n in range(5)])
    assert (await claim(scripts, BASE + 1_000, "A", 5))[0] == ids
    assert await redis.hget(keys.claim_hint(P), "from") == str(BASE + 14).encode()
    [late] = await store(redis, [(article, BASE + 5, "muộn")])
    assert await redis.hget(keys.claim_hint(P), "from") == str(BASE + 5).encode()
    assert (await claim(scripts, BASE + 1_001, "B", 5))[0] == [late]
    # (Stored without the search block, as test_moderation_filters does: the doctor reports that, only that.)
    assert {f.kind for f in await doctor(redis, repair=False)} == {"not_in_search_index"}


async def test_doctor_finds_and_repairs_a_hint_that_is_ahead(client: Client, redis: Redis) -> None:
    submitted = [(await submit(client, "a1"))["id"] for _ in range(3)]
    p = keys.partition_of_comment(submitted[0])
    response = await client.post("/v1/moderation/claims", json={"limit": 1}, headers=ADMIN)
    assert [c["id"] for c in (await response.json())["comments"]] == submitted[:1]
    assert await doctor(redis, repair=False) == []
    await redis.hset(keys.claim_hint(p), "from", str(2**45))  # ahead of two unleased comments
    found = await doctor(redis, repair=False)
    assert [(f.kind, f.key, f.id) for f in found] == [("claim_hint_ahead", keys.claim_hint(p), submitted[1])]
    mended = await doctor(redis, repair=True)
    assert [(f.kind, f.mended) for f in mended] == [("claim_hint_ahead", True)]
    assert await redis.exists(keys.claim_hint(p)) == 0
    assert await doctor(redis, repair=False) == []
    response = await client.post("/v1/moderation/claims", json={"limit": 5}, headers=ADMIN)
    assert [c["id"] for c in (await response.json())["comments"]] == submitted[1:]


async def test_a_damaged_hint_changes_nothing(redis: Redis) -> None:
    """A hint of the wrong type: claims, releases and the store answer CORRUPT and write nothing (as
    tests/test_lua_atomicity.py checks through the API)."""
    scripts = Scripts(redis)
    await queue(redis, 3)
    await redis.set(keys.claim_hint(P), "x")
    before = await redis.zrange(keys.leases(P), 0, -1)
    with pytest.raises(StorageCorrupt, match="claim_hint"):
        await scripts.run("claim", keys.claim_keys(P), [BASE, BASE + LEASE, "A", 2, ""])
    with pytest.raises(StorageCorrupt, match="claim_hint"):
        await scripts.run("lease", keys.lease_keys(P), ["release", "A", 0, f"{P:02x}{0:024d}"])
    assert await redis.zrange(keys.leases(P), 0, -1) == before


async def test_the_cluster_planner_reads_from_the_hint_and_takes_the_oldest_over_partitions(redis: Redis) -> None:
    """A claim on a Redis Cluster plans per partition with claim.lua's "plan" mode (scores only, nothing written),
    then leases: run here on one server through the same code. Two partitions interleaved in time, 190 claims of
    10 left undecided in one: the next claim takes the 10 oldest claimable over both, and each plan reads about
    its limit (the walk starts at the hint), not the 1,900 leased entries."""
    scripts = Scripts(redis)
    moderation = Moderation(scripts, b"s" * 32)
    held = await queue(redis, 1_900)
    older = await queue(redis, 5, partition=P + 1, start=1_895)  # 1,895-1,899 ms: as old as the last held ones
    newer = await queue(redis, 10, start=1_900)  # 1,900-1,909 ms, in P
    now = BASE + 10_000
    for n in range(190):
        got, _ = await claim(scripts, now + n, f"m{n}", 10)
        assert got == held[10 * n:10 * n + 10]
    for partition, oldest in ((P, newer[:10]), (P + 1, older)):
        ids_before = await redis.zrange(keys.leases(partition), 0, -1)
        scores, reads = await scripts.run("claim", keys.claim_keys(partition), [now + 200, 0, "", 10, "plan", "count"])
        assert [int(s) for s in scores] == [BASE + int(i[2:]) for i in oldest] and reads <= 11, reads
        assert await redis.zrange(keys.leases(partition), 0, -1) == ids_before  # a plan leases nothing
    claimed = await moderation._claim_partitioned(now + 200, now + 200 + LEASE, "planner", 10)
    assert sorted(claimed) == sorted(older + newer[:5])
