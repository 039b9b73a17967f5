"""Read everything a real Redis holds, to prove what is never stored there (answers, IPs, tokens)."""

from __future__ import annotations

from typing import Any, Final

from redis.asyncio import Redis

from service import keys


def flatten(value: Any) -> list[bytes]:
    if isinstance(value, bytes):
        return [value]
    if isinstance(value, str):
        return [value.encode()]
    if isinstance(value, dict):
        return [b for pair in value.items() for item in pair for b in flatten(item)]
    if isinstance(value, list | tuple | set):
        return [b for item in value for b in flatten(item)]
    return [] if value is None else [str(value).encode()]


_INDEXER_LEASE: Final = keys.search_indexer_lease().encode()
READ_ALL: Final = {"string": ("GET",), "hash": ("HGETALL",), "list": ("LRANGE", 0, -1), "set": ("SMEMBERS",),
                   "zset": ("ZRANGE", 0, -1), "stream": ("XRANGE", "-", "+")}


async def dump_redis(redis: Redis) -> list[bytes]:
    """Every key and every stored value, field or member, whatever its type; less the search indexer's lease (a
    worker's random token, taken and renewed by a background loop whenever it likes: never a request's doing)."""
    out: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        if key == _INDEXER_LEASE:
            continue
        command, *args = READ_ALL[flatten(await redis.type(key))[0].decode()]
        out += [key, *flatten(await redis.execute_command(command, key, *args))]  # type: ignore[no-untyped-call]
    return out
