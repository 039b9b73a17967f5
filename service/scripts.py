"""The Lua scripts (package files under `service/lua/`), loaded once and called by name.

A script whose first line reads `--! uses: a b` is sent with the files `lua/lib/a.lua` and `lua/lib/b.lua` before
it: those define local functions that several scripts share (the submission's gate and store run as one script
on one server, as two on a Cluster).

Why not redis-py's `register_script`: inside a pipeline it asks `SCRIPT EXISTS` before every execution (an
extra round trip on the hot path) and cannot recover from NOSCRIPT on a Redis Cluster pipeline. Here a
script runs by EVALSHA and is loaded again only when a server says it does not know it (a restart, a
failover, a new cluster node).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Literal, get_args

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from service import keys
from service.connections import RedisClient
from service.errors import StorageCorrupt

ScriptName = Literal["submit", "submit_gate", "submit_store", "claim", "decide", "rate_limit", "set_open",
                     "trim_feed", "job_enqueue", "job_lease", "job_record", "account_accept",
                     "account_reset_issue", "account_reset",
                     "session_start", "session_touch", "lease", "import", "erase", "report", "reports_resolve",
                     "index_batch", "index_read"]
#: Every script, named once (in `ScriptName`); tests/test_scripts.py checks that each lua/*.lua file is named.
NAMES: Final[tuple[ScriptName, ...]] = get_args(ScriptName)
#: ARGV of one decision: decide.lua's header lists them (`moderation.Moderation.decide` builds them).
DECIDE_ARGS: Final = 13
#: The scripts that take several calls in one run (`run_soon(..., together=...)`: the `Coalescer` concatenates
#: their KEYS and ARGV), with the KEYS and ARGV of one call. The script reads them back by these counts, as `NK`
#: and `NA`, from a line put before its text when it is loaded; the keys are counted from their builder, so a key
#: added there is counted here.
LAYOUTS: Final[dict[ScriptName, tuple[int, int]]] = {
    "decide": (len(keys.decide_keys("00", "a", 0)), DECIDE_ARGS),
}
#: Scripts that read their keys by name: a line `local KI = {name = index, ...}` is put before their text (after
#: `NK, NA`), made from the names' tuple in `keys`, whose builder lists the keys in that order.
KEY_NAMES: Final[dict[ScriptName, tuple[str, ...]]] = {"decide": keys.DECIDE_KEYS}
_USES: Final = "--! uses:"
#: How a script that answers no tagged list says that a key it was given is damaged (lua/lib/check.lua).
_CORRUPT: Final = "CORRUPT "

Arg = str | bytes | int | float


def _source(name: ScriptName) -> str:
    lua = resources.files("service").joinpath("lua")
    text = lua.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    layout = [f"local NK, NA = {LAYOUTS[name][0]}, {LAYOUTS[name][1]}"] if name in LAYOUTS else []
    if name in KEY_NAMES:
        layout.append("local KI = {" + ", ".join(f"{key} = {index}" for index, key in
                                                 enumerate(KEY_NAMES[name], start=1)) + "}")
    first = text.partition("\n")[0]
    uses = first[len(_USES):].split() if first.startswith(_USES) else []
    libraries = [lua.joinpath("lib", f"{lib}.lua").read_text(encoding="utf-8") for lib in uses]
    return "\n".join([*layout, *libraries, text])


class Scripts:
    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._one_server = not isinstance(redis, RedisCluster)
        self._source = {name: _source(name) for name in NAMES}
        self._sha = {name: hashlib.sha1(text.encode()).hexdigest() for name, text in self._source.items()}
        self._coalescer = Coalescer(self)

    @property
    def redis(self) -> RedisClient:
        return self._redis

    @property
    def one_server(self) -> bool:
        """True unless this is a Redis Cluster: one script may then touch keys of any slot."""
        return self._one_server

    async def load(self) -> None:
        for text in self._source.values():
            await self._redis.script_load(text)

    async def run(self, name: ScriptName, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            try:
                return await self._redis.evalsha(self._sha[name], len(keys), *keys, *args)
            except NoScriptError:
                await self._redis.script_load(self._source[name])
                return await self._redis.evalsha(self._sha[name], len(keys), *keys, *args)
        except ResponseError as exc:  # a script's "CORRUPT <what>": a domain error, like the tagged answers
            if str(exc).startswith(_CORRUPT):
                raise corrupt(str(exc).removeprefix(_CORRUPT)) from None
            raise

    def batch(self) -> Batch:
        return Batch(self)

    def run_soon(self, name: ScriptName, keys: Sequence[str], args: Sequence[Arg], *,
                 together: Hashable | None = None) -> asyncio.Future[Any]:
        """`run`, sent with the other calls made in this turn of the event loop (see `Coalescer`)."""
        return self._coalescer.script(name, keys, args, together=together)

    def command_soon(self, *args: Arg) -> asyncio.Future[Any]:
        """A plain command, sent with the other calls made in this turn of the event loop."""
        return self._coalescer.command(*args)


class Batch:
    """A non-transactional pipeline of plain commands and script calls: one round trip per Redis node.

    A script call that meets NOSCRIPT is loaded and run again on its own; plain commands are never repeated.
    """

    def __init__(self, scripts: Scripts) -> None:
        self._scripts = scripts
        self._pipe: Any = scripts._redis.pipeline(transaction=False)
        self._calls: list[tuple[ScriptName, Sequence[str], Sequence[Arg]] | None] = []

    def script(self, name: ScriptName, keys: Sequence[str], args: Sequence[Arg]) -> None:
        # Through execute_command: a cluster pipeline refuses its `evalsha` method but routes EVALSHA by its keys.
        self._pipe.execute_command("EVALSHA", self._scripts._sha[name], len(keys), *keys, *args)
        self._calls.append((name, keys, args))

    def script_by_source(self, name: ScriptName, keys: Sequence[str], args: Sequence[Arg]) -> None:
        """EVAL with the script's text: never NOSCRIPT, so the call stays on this pipeline's connection."""
        self._pipe.execute_command("EVAL", self._scripts._source[name], len(keys), *keys, *args)
        self._calls.append(None)

    def command(self, *args: Arg) -> None:
        self._pipe.execute_command(*args)
        self._calls.append(None)

    async def execute(self) -> list[Any]:
        results: list[Any] = await self._pipe.execute(raise_on_error=False)
        for index, result in enumerate(results):
            call = self._calls[index]
            if isinstance(result, NoScriptError) and call is not None:
                results[index] = await self._scripts.run(*call)
        for result in results:
            if isinstance(result, ResponseError) and str(result).startswith(_CORRUPT):
                raise corrupt(str(result).removeprefix(_CORRUPT))
            if isinstance(result, Exception):
                raise result
        return results


_Call = tuple[ScriptName | None, Sequence[str], Sequence[Arg], Hashable | None, "asyncio.Future[Any]"]


@dataclass(slots=True)
class _Unit:
    """One command of a pipeline: a call, or the calls of a script merged into one run (`members`)."""

    name: ScriptName | None
    keys: list[str]
    args: list[Arg]
    members: list[int] | None
    index: int = 0


class Coalescer:
    """Redis calls (script runs and plain commands) made during one turn of the event loop, sent together as
    one pipeline.

    Under load, requests arrive many at a time (one per connection that turned readable) and each call alone
    pays redis-py's cost of a command: a pooled connection, a write to the socket, a read under a timeout;
    more CPU than everything else a decision or a submission does in Python (docs/benchmarks.md). Sent together
    they pay it about once. redis-py has no automatic pipelining, hence this. A lone call still goes out alone,
    one loop turn later. A script that can take several calls at once (decide.lua) goes further: calls given the same
    `together` run as one call of the script, KEYS and ARGV concatenated (each call's counts are the script's
    `LAYOUTS`), and it answers a list, one answer a call; a pipeline of many script calls costs redis-py
    (parsing each reply) and Redis (starting each script) more than the work itself.

    Each call stays what it was (a script step is atomic, as before); only the round trip is shared. An error
    reply fails every call of its pipeline (`Batch.execute`), which suits errors that concern the server (it is
    away) rather than one call; decide.lua answers a decision that fails as that decision's answer instead. The
    sending runs in its own task, so a request cancelled meanwhile (its client went away) neither loses the
    others' answers nor cuts the pipeline short; like a command already sent, its call may still have run.
    """

    def __init__(self, scripts: Scripts) -> None:
        self._scripts = scripts
        self._queued: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()

    def script(self, name: ScriptName, script_keys: Sequence[str], args: Sequence[Arg], *,
               together: Hashable | None = None) -> asyncio.Future[Any]:
        if together is not None and LAYOUTS.get(name) != (len(script_keys), len(args)):
            # A call the script would split wrongly, and with it every call merged after it.
            raise ValueError(f"{name} takes calls together as {LAYOUTS.get(name)} KEYS and ARGV, "
                             f"not {len(script_keys)} and {len(args)}")
        return self._queue((name, script_keys, args, together))

    def command(self, *args: Arg) -> asyncio.Future[Any]:
        return self._queue((None, (), args, None))

    def _queue(self, call: tuple[ScriptName | None, Sequence[str], Sequence[Arg], Hashable | None]
               ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._flush)
        self._queued.append((*call, future))
        return future

    def _flush(self) -> None:
        calls, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(calls))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, calls: list[_Call]) -> None:
        try:
            results = await self._execute(calls)
        except asyncio.CancelledError:  # the service is stopping
            for *_, future in calls:
                future.cancel()
            raise
        except Exception as exc:  # Redis trouble: every call of the pipeline reports it
            for *_, future in calls:
                if not future.done():
                    future.set_exception(exc)
            return
        for (*_, future), result in zip(calls, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _execute(self, calls: list[_Call]) -> list[Any]:
        units: list[_Unit] = []
        merged: dict[tuple[ScriptName, Hashable], _Unit] = {}
        for index, (name, script_keys, args, together, _) in enumerate(calls):
            if name is None or together is None:
                units.append(_Unit(name, list(script_keys), list(args), None, index))
            elif (unit := merged.get((name, together))) is not None:
                unit.keys += script_keys
                unit.args += args
                assert unit.members is not None
                unit.members.append(index)
            else:
                merged[name, together] = unit = _Unit(name, list(script_keys), list(args), [index])
                units.append(unit)
        answers = await self._run(units)
        results: list[Any] = [None] * len(calls)
        for unit, answer in zip(units, answers, strict=True):
            if unit.members is None:
                results[unit.index] = answer
            else:
                for member, one in zip(unit.members, answer, strict=True):
                    results[member] = one
        return results

    async def _run(self, units: list[_Unit]) -> list[Any]:
        if len(units) == 1:
            unit = units[0]
            if unit.name is None:
                return [await self._scripts.redis.execute_command(*unit.args)]
            return [await self._scripts.run(unit.name, unit.keys, unit.args)]
        batch = self._scripts.batch()
        for unit in units:
            if unit.name is None:
                batch.command(*unit.args)
            else:
                batch.script(unit.name, unit.keys, unit.args)
        return await batch.execute()


def corrupt(what: bytes | str) -> StorageCorrupt:
    """A script's answer that a key it reads or writes is damaged (it wrote nothing) as a domain error."""
    return StorageCorrupt("the stored data is damaged ({what}); nothing was changed", params={"what": as_text(what)})


def as_text(value: Any) -> str:
    """A reply as text: redis-py types replies as `bytes | str` (it depends on `decode_responses`); a number
    (an integer reply) as its decimal form."""
    return value.decode() if isinstance(value, bytes) else str(value)


def scored(result: Any) -> list[tuple[bytes, float]]:
    """A WITHSCORES reply as (member, score) pairs, whichever shape this redis-py version and protocol give
    (flat RESP2 list, or pairs)."""
    if not result:
        return []
    if isinstance(result[0], list | tuple):
        return [(member, float(score)) for member, score in result]
    return [(result[i], float(result[i + 1])) for i in range(0, len(result), 2)]
