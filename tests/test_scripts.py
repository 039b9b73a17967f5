"""service/scripts.py: every script named once, the decide layout shared by Python and Lua, the Coalescer's
merged calls (one answer a call, a failing call alone in its failure, one run per `together`), and the reload
after NOSCRIPT, alone and inside a Batch. Against a real redis-server."""

from __future__ import annotations

import asyncio
import time
from importlib import resources
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from service import keys, scripts
from service.models import iso
from service.scripts import DECIDE_ARGS, LAYOUTS, NAMES, Scripts

ARTICLE = "bai-viet-1"


def _comment_id(partition: int, n: int) -> str:
    return f"{partition:02x}{n:024x}"


def _decide_call(comment_id: str, action: str = "approve") -> tuple[list[str], list[Any]]:
    now = int(time.time() * 1000)
    args: list[Any] = [comment_id, action, "lan", "", "", now, iso(now), f"d-{comment_id}", 1000, 3600]
    # Arguments past the tenth concern an undo only (its window, whether the moderator is an admin).
    args += [""] * (DECIDE_ARGS - len(args))
    return keys.decide_keys(comment_id, ARTICLE, now // 3_600_000), args


async def _store_pending(redis: Redis, comment_id: str) -> None:
    """A pending record with the fields decide.lua reads (keys.py's field table)."""
    record: dict[str, Any] = {"name": "Lan", "email": "lan@example.com", "title": "Ý kiến", "body": "Hay.",
                              "parent_id": None, "avatar": "", "created_at": iso(1), "risk": []}
    await redis.hset(keys.comment(comment_id), mapping={
        "d": orjson.dumps(record), "a": ARTICLE, "t": "1", "s": "pending", "v": "1", "f": "fp"})


async def _evalsha_calls(redis: Redis) -> int:
    stats: dict[str, Any] = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


# -- names and layout -------------------------------------------------------------------------------------------

def test_every_lua_file_is_named_and_every_name_is_a_file() -> None:
    files = {entry.name.removesuffix(".lua") for entry in resources.files("service").joinpath("lua").iterdir()
             if entry.name.endswith(".lua")}
    assert set(NAMES) == files
    assert len(NAMES) == len(set(NAMES))


def test_the_decide_layout_is_counted_from_the_key_builder_and_given_to_the_lua() -> None:
    assert LAYOUTS["decide"] == (len(keys.decide_keys(_comment_id(3, 1), ARTICLE, 0)), DECIDE_ARGS)
    lua = resources.files("service").joinpath("lua", "decide.lua").read_text(encoding="utf-8")
    assert "local NK" not in lua, "decide.lua takes its layout from scripts.py, not a literal of its own"
    source = scripts._source("decide")
    assert source.partition("\n")[0] == f"local NK, NA = {LAYOUTS['decide'][0]}, {DECIDE_ARGS}"


async def test_a_call_of_the_wrong_shape_is_refused_before_it_is_merged(redis: Redis) -> None:
    script_keys, args = _decide_call(_comment_id(0, 1))
    runner = Scripts(redis)
    with pytest.raises(ValueError, match="decide"):
        runner.run_soon("decide", script_keys[:-1], args, together=0)
    with pytest.raises(ValueError, match="decide"):
        runner.run_soon("decide", script_keys, [*args, "extra"], together=0)
    with pytest.raises(ValueError, match="claim"):  # a script that cannot take calls together
        runner.run_soon("claim", script_keys, args, together=0)


# -- the Coalescer --------------------------------------------------------------------------------------------

async def test_decisions_of_one_turn_run_as_one_call_each_with_its_own_answer(redis: Redis) -> None:
    approved, missing, damaged = _comment_id(0, 1), _comment_id(0, 2), _comment_id(0, 3)
    await _store_pending(redis, approved)
    await redis.set(keys.comment(damaged), "not a hash")  # this call fails; the others must not
    runner = Scripts(redis)
    await runner.load()
    await redis.config_resetstat()
    answers = await asyncio.gather(*(runner.run_soon("decide", *_decide_call(i), together=0)
                                     for i in (approved, missing, damaged)))
    assert await _evalsha_calls(redis) == 1
    assert answers[0][0] == b"ok" and answers[0][3] == b"approved"
    assert answers[1] == [b"missing"]
    assert answers[2][0] == b"corrupt"
    assert await redis.hget(keys.comment(approved), "s") == b"approved"
    assert await redis.get(keys.comment(damaged)) == b"not a hash"


async def test_calls_given_different_together_values_run_apart(redis: Redis) -> None:
    # On a Cluster, `together` is the partition: one run of the script per slot, in one pipeline.
    ids = {partition: [_comment_id(partition, n) for n in range(3)] for partition in (1, 2)}
    for partition_ids in ids.values():
        await _store_pending(redis, partition_ids[0])
    runner = Scripts(redis)
    await runner.load()
    await redis.config_resetstat()
    calls = [(partition, i) for partition, partition_ids in ids.items() for i in partition_ids]
    answers = await asyncio.gather(*(runner.run_soon("decide", *_decide_call(i, "reject"), together=partition)
                                     for partition, i in calls))
    assert await _evalsha_calls(redis) == 2
    assert [answer[0] for answer in answers] == [b"ok", b"missing", b"missing"] * 2
    assert [answer[3] for answer in answers if answer[0] == b"ok"] == [b"rejected", b"rejected"]


async def test_plain_commands_and_scripts_of_one_turn_answer_in_order(redis: Redis) -> None:
    runner = Scripts(redis)
    await redis.set("cm:test:a", "1")
    answers = await asyncio.gather(
        runner.command_soon("GET", "cm:test:a"),
        runner.run_soon("decide", *_decide_call(_comment_id(4, 1)), together=0),
        runner.command_soon("INCR", "cm:test:a"),
        runner.run_soon("rate_limit", [keys.rate_limit("ip", "x", 60)], [60_000]),
    )
    assert list(answers[:3]) == [b"1", [b"missing"], 2]
    assert answers[3][0] == 1


async def test_a_lone_call_goes_out_alone_and_answers_as_a_list(redis: Redis) -> None:
    runner = Scripts(redis)
    await redis.config_resetstat()
    assert await runner.run_soon("decide", *_decide_call(_comment_id(5, 1)), together=0) == [b"missing"]
    assert await _evalsha_calls(redis) == 1


# -- NOSCRIPT --------------------------------------------------------------------------------------------------

async def test_a_script_the_server_forgot_is_loaded_again(redis: Redis) -> None:
    runner = Scripts(redis)
    await runner.load()
    await redis.script_flush()
    assert await runner.run("decide", *_decide_call(_comment_id(6, 1))) == [[b"missing"]]
    assert (await redis.script_exists(runner._sha["decide"]))[0]


async def test_a_script_the_server_forgot_is_loaded_again_inside_a_batch(redis: Redis) -> None:
    runner = Scripts(redis)
    await runner.load()
    await redis.script_flush()
    await redis.set("cm:test:b", "7")
    batch = runner.batch()
    batch.command("GET", "cm:test:b")
    batch.script("decide", *_decide_call(_comment_id(7, 1)))
    batch.command("INCR", "cm:test:b")
    assert await batch.execute() == [b"7", [[b"missing"]], 8]
    # The plain commands ran once: a script's reload does not repeat them.
    assert await redis.get("cm:test:b") == b"8"


async def test_merged_calls_after_a_flush_are_loaded_again(redis: Redis) -> None:
    runner = Scripts(redis)
    await runner.load()
    await redis.script_flush()
    answers = await asyncio.gather(*(runner.run_soon("decide", *_decide_call(_comment_id(partition, 1)),
                                                     together=partition) for partition in (8, 9)))
    assert answers == [[b"missing"], [b"missing"]]
