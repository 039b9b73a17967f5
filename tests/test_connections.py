"""service.connections: the clients it builds pack commands with hiredis, byte for byte as redis-py would."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection
from redis.exceptions import DataError, OutOfMemoryError, ResponseError
from support import RedisServer

from service.connections import NoReplicas, WritesRefused, create_redis, reply_error

ARGS: list[tuple[Any, ...]] = [
    ("PING",),
    ("SET", "k", "v"),
    ("CONFIG GET", "maxmemory"),  # a command name of two words is sent as two arguments
    ("EVALSHA", "a" * 40, 2, "cm:{g}:k1", b"cm:{p01}:k2", -7, 3.25, 12345678901234567890),
    ("HSET", "h", "body", "Bình luận có dấu, 中文 và emoji 🙂", "raw", b"\x00\xff\r\n"),
    ("SET", "big", "x" * 70_000),  # larger than redis-py's buffer cutoff
    ("SET", bytearray(b"ab"), memoryview(b"cd")),
]


def _one_server(url: str) -> Redis:
    client = create_redis(url)
    assert isinstance(client, Redis)
    return client


def _connection_of(client: Redis) -> AbstractConnection:
    """A connection as the client's pool makes one (`make_connection`, untyped in redis-py)."""
    pool = client.connection_pool
    return pool.connection_class(**pool.connection_kwargs)


@pytest.mark.parametrize("args", ARGS)
def test_packing_is_byte_for_byte_what_redis_py_sends(args: tuple[Any, ...]) -> None:
    ours = _connection_of(_one_server("redis://127.0.0.1:1/0"))
    reference = Connection()
    assert type(ours) is not Connection
    assert b"".join(ours.pack_command(*args)) == b"".join(reference.pack_command(*args))
    commands = [args, ("GET", "k")]
    assert b"".join(ours.pack_commands(commands)) == b"".join(reference.pack_commands(commands))


def test_a_value_redis_py_refuses_is_refused() -> None:
    ours = _connection_of(_one_server("redis://127.0.0.1:1/0"))
    refused: Any = {"not": "encodable"}  # what the annotations forbid, sent all the same
    with pytest.raises(DataError):
        ours.pack_command("SET", "k", refused)


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


@pytest.mark.parametrize(("reply", "kind"), [
    ("NOREPLICAS Not enough good replicas to write.", NoReplicas),
    ("Error running script (call to f_0): @user_script:1: -NOREPLICAS Not enough good replicas", NoReplicas),
    ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist", WritesRefused),
    ("@user_script: 166: -OOM command not allowed when used memory > 'maxmemory'.", WritesRefused),
    ("@user_script:3: -READONLY You can't write against a read only replica.", WritesRefused),
    ("WRONGTYPE Operation against a key holding the wrong kind of value", ResponseError),
])
def test_refusals_are_typed_where_replies_are_read(reply: str, kind: type[ResponseError]) -> None:
    typed = reply_error(reply)
    assert type(typed) is kind and str(typed) == reply


async def test_a_refusal_of_writes_arrives_typed(redis_server: RedisServer) -> None:
    client = _one_server(redis_server.url)
    await client.config_set("maxmemory", "1")
    try:
        with pytest.raises(OutOfMemoryError):  # typed by redis-py itself: kept as it is
            await client.set("cm:test:oom", "x")
        with pytest.raises(WritesRefused):  # inside a script redis-py gives no type: the connection does
            await client.eval("return redis.call('SET', KEYS[1], 'x')", 1, "cm:test:oom")
    finally:
        await client.config_set("maxmemory", "0")
        await client.aclose()
