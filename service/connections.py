"""Connections to Redis: one server, a Redis Cluster or a Sentinel-managed master, chosen by URL.

- `redis://`, `rediss://`, `unix://`: one server (redis-py `Redis.from_url`).
- `redis+cluster://host:port,host:port[?password=...]`: a Redis Cluster (`RedisCluster`), seeded by those nodes.
- `redis+sentinel://host:port,host:port/mastername[?password=...]`: the master that the Sentinels name.

Timeouts are short on purpose: a request must turn into a 503 within two seconds when Redis is gone,
not hang. Only connection errors are retried (once, at once): a timed-out write may have been applied.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias, TypedDict
from urllib.parse import parse_qs, urlsplit

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import NoBackoff
from redis.connection import HiredisRespSerializer
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import HIREDIS_AVAILABLE

from service import tasks

RedisClient: TypeAlias = "Redis | RedisCluster"


# -- Redis's failures, typed where replies are read ---------------------------------------------------------
# redis-py gives some refusals a class of their own (OutOfMemoryError, ReadOnlyError) but not others (MISCONF,
# NOREPLICAS), and none when the refusal comes from inside a script ("Error running script ...: -NOREPLICAS
# ..."). The connections below give them one here, so nothing past this module reads an error's text. They stay
# redis-py errors (subclasses), so redis-py's retries and cluster redirections, and code that catches
# `RedisError`, see what they saw before.


class WritesRefused(ResponseError):
    """Redis refuses writes: out of memory, a failed snapshot (MISCONF), no replica to write with (NOREPLICAS),
    a replica (READONLY inside a script). Nothing of the command or script was applied."""


class NoReplicas(WritesRefused):
    """`min-replicas-to-write` is not met: the master lost its replicas (docs/operations.md)."""


class ConnectionReset(RuntimeError):
    """Under uvloop, writing to a connection the peer reset raises RuntimeError ("unable to perform operation on
    <TCPTransport closed=True>") before anything was sent. A RuntimeError still, so redis-py's retry on
    RuntimeError (`create_redis`) and its cluster client treat it as they did."""


#: Redis failures a client can do nothing about but retry: it is away, loading, failing over.
UNREACHABLE: Final = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ReadOnlyError, ClusterDownError,
                      TryAgainError, MasterDownError, ClusterError)
#: Redis is there but refuses to write.
REFUSES_WRITES: Final = (WritesRefused, OutOfMemoryError)
_REFUSALS: Final = ("OOM command", "MISCONF", "NOREPLICAS", "READONLY")


def _typed(exc: ResponseError) -> ResponseError:
    if type(exc) is not ResponseError:  # redis-py typed it already
        return exc
    text = str(exc)
    if "NOREPLICAS" in text:
        return NoReplicas(*exc.args)
    if any(word in text for word in _REFUSALS):
        return WritesRefused(*exc.args)
    return exc


def reply_error(text: str) -> ResponseError:
    """An error reply that came back inside a script's answer (decide.lua catches a failing command, so that the
    other decisions of its run go on), typed as the connections type the replies they read."""
    return _typed(ResponseError(text))


class _HiredisPacking(AbstractConnection):
    """Commands packed by hiredis, in C. redis-py's sync client does this when hiredis is installed; its asyncio
    connections (8.1) always pack in Python, one call per argument, several times slower for a submission's
    script and its 30 arguments (docs/benchmarks.md). The same bytes go on the wire (tests/test_connections.py)."""

    _serializer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        if not HIREDIS_AVAILABLE:  # pragma: no cover - hiredis is a dependency (redis[hiredis])
            return super().pack_command(*args)
        name = args[0]
        if (" " if isinstance(name, str) else b" ") in name:  # "CONFIG GET" goes as two arguments
            args = (*name.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:  # bytearray or memoryview (redis-py's serializer turns them into bytes), or not encodable
            packed: list[bytes] = self._serializer.pack(*args)
            return packed


class _TypedErrors(AbstractConnection):
    """Redis's refusals and uvloop's reset connection as types of their own (see `WritesRefused`)."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except ResponseError as exc:
            typed = _typed(exc)
            if typed is exc:
                raise
            raise typed from None

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        try:
            await super().send_packed_command(*args, **kwargs)
        except RuntimeError as exc:
            if "unable to perform operation on" not in str(exc):
                raise
            raise ConnectionReset(*exc.args) from exc


class _Connection(_TypedErrors, _HiredisPacking, Connection):
    pass


class _SSLConnection(_TypedErrors, _HiredisPacking, SSLConnection):
    pass


class _UnixConnection(_TypedErrors, _HiredisPacking, UnixDomainSocketConnection):
    pass


_CONNECTIONS: dict[str, type[AbstractConnection]] = {
    "redis": _Connection, "rediss": _SSLConnection, "unix": _UnixConnection}


class _MasterConnection(_TypedErrors, _HiredisPacking, SentinelManagedConnection):
    """A connection to the master the Sentinels name, that notices when that server stopped being the master.

    After a failover the old master keeps its clients until the Sentinels demote it, and meanwhile it still
    accepts writes that the new master never sees: acknowledged comments would be lost. With
    `min-replicas-to-write 1` (docs/operations.md) the old master refuses them with NOREPLICAS as soon as its
    replica leaves; this connection then drops and asks the Sentinels again (the command was not executed,
    so the one retry is safe), like redis-py already does for READONLY.
    """

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except NoReplicas as exc:
            # Also inside a script: Redis refuses a script's first write, so nothing of it was applied either.
            if self.connection_pool.is_master:
                await self.disconnect()
                raise RedisConnectionError("the master has no replica: asking the Sentinels again") from exc
            raise


class _ClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        before = tasks.cancels()
        result: list[Any] = await super().execute(raise_on_error, allow_redirections)
        tasks.raise_if_cancelled(before)
        return result


class _Cluster(RedisCluster):
    """`RedisCluster` that does not lose cancellations: redis-py 8.1's asyncio cluster client sometimes returns
    normally from a command a cancellation interrupted, and a background loop cancelled at shutdown then never
    ends (`service.tasks`)."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        before = tasks.cancels()
        result = await super().execute_command(*args, **kwargs)
        tasks.raise_if_cancelled(before)
        return result

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is not supported on a cluster")
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]


def _nodes(netloc: str) -> list[tuple[str, int]]:
    hosts = netloc.rsplit("@", 1)[-1]
    nodes = []
    for part in hosts.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host:
            host, port = port, "6379"
        nodes.append((host.strip("[]"), int(port or 6379)))
    return nodes


def _password(url_netloc: str, query: dict[str, list[str]]) -> tuple[str | None, str | None]:
    username = password = None
    if "@" in url_netloc:
        userinfo = url_netloc.rsplit("@", 1)[0]
        user, _, pw = userinfo.partition(":")
        username, password = (user or None), (pw or None)
    if "password" in query:
        password = query["password"][0]
    if "username" in query:
        username = query["username"][0]
    return username, password


class _Options(TypedDict):
    """What every client gets, whichever the topology."""

    socket_timeout: float
    socket_connect_timeout: float
    retry: Retry
    retry_on_error: list[type[Exception]]
    health_check_interval: int


def create_redis(url: str, *, timeout: float = 1.0, max_connections: int = 256) -> RedisClient:
    retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
    common = _Options(
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 1.0),
        retry=retry,
        # Under uvloop, writing to a connection the peer reset raises RuntimeError ("unable to perform operation
        # on <TCPTransport closed=True>") before anything was sent; redis-py has dropped the connection by
        # then, so one retry on a fresh connection is safe.
        retry_on_error=[RedisConnectionError, RuntimeError],
        health_check_interval=15,
    )
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "redis+cluster":
        username, password = _password(parts.netloc, query)
        # The cluster client retries (after refreshing its slot map) on its own list of errors, a moved slot or
        # a failed-over master among them; twice is enough to follow one failover.
        options: _Options = {**common, "retry": Retry(NoBackoff(), 2)}
        cluster = _Cluster(
            startup_nodes=[ClusterNode(host, port, connection_class=_Connection)
                           for host, port in _nodes(parts.netloc)],
            username=username, password=password, max_connections=max_connections,
            require_full_coverage=True, **options,
        )
        # RedisCluster names its connection class itself; the nodes it discovers are made with these kwargs.
        cluster.nodes_manager.connection_kwargs["connection_class"] = _Connection
        return cluster
    if parts.scheme == "redis+sentinel":
        username, password = _password(parts.netloc, query)
        master = parts.path.strip("/") or "mymaster"
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            _nodes(parts.netloc), sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            username=username, password=password, **common,
        )
        client: Redis = sentinel.master_for(master, connection_pool_class=SentinelConnectionPool,
                                            connection_class=_MasterConnection, max_connections=max_connections)
        return client
    connection_class = _CONNECTIONS.get(parts.scheme, _Connection)
    return Redis.from_url(url, max_connections=max_connections, connection_class=connection_class,
                          **common)
