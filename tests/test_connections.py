"""service.connections: the clients it builds pack commands with hiredis, byte for byte as redis-py would."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import DataError
from support import RedisServer

from service.connections import create_redis

ARGS: list[tuple[Any, ...]] = [
    ("PING",),
    ("SET", "k", "v"),
    ("CONFIG GET", "maxmemory"),  # a command name of two words is sent as two arguments
    ("EVALSHA", "a" * 40, 2, "cm:{g}:k1", b"cm:{p01}:k2", -7, 3.25, 12345678901234567890),
    ("HSET", "h", "body", "Bình luận có dấu, 中文 và emoji 🙂", "raw", b"\x00\xff\r\n"),
    ("SET", "big", "x" * 70_000),  # larger than redis-py's buffer cutoff
    ("SET", bytearray(b"ab"), memoryview(b"cd")),
]


@pytest.mark.parametrize("args", ARGS)
def test_packing_is_byte_for_byte_what_redis_py_sends(args: tuple[Any, ...]) -> None:
    client = create_redis("redis://127.0.0.1:1/0")
    ours = client.connection_pool.make_connection()  # type: ignore[union-attr]
    reference = Connection()
    assert type(ours) is not Connection
    assert b"".join(ours.pack_command(*args)) == b"".join(reference.pack_command(*args))
    commands = [args, ("GET", "k")]
    assert b"".join(ours.pack_commands(commands)) == b"".join(reference.pack_commands(commands))


def test_a_value_redis_py_refuses_is_refused() -> None:
    ours = create_redis("redis://127.0.0.1:1/0").connection_pool.make_connection()  # type: ignore[union-attr]
    with pytest.raises(DataError):
        ours.pack_command("SET", "k", {"not": "encodable"})


async def test_values_survive_a_round_trip_through_a_real_server(redis_server: RedisServer, redis: Redis) -> None:
    client = create_redis(redis_server.url)
    try:
        text = "Bình luận có dấu 🙂 " * 500
        await client.hset("h", mapping={"text": text, "bytes": b"\x00\xff\r\n", "n": 42})
        assert await client.hgetall("h") == {b"text": text.encode(), b"bytes": b"\x00\xff\r\n", b"n": b"42"}
        pipe = client.pipeline(transaction=False)
        pipe.incrbyfloat("f", 1.5)
        pipe.get("f")
        pipe.execute_command("CONFIG GET", "appendonly")
        assert (await pipe.execute())[:2] == [1.5, b"1.5"]
    finally:
        await client.aclose()
