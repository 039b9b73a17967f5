"""Loopback harness for the fault tests: a TCP proxy of our own that can delay and drop connections, and the
service run the way production runs it (`comments-service run` in a subprocess) against a given Redis.

The proxy sits between the service and Redis: `drop_all()` resets every open connection (as a dying load
balancer or a flapping network does), `delay` holds each chunk back, and `refuse` makes new connections fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from support import ADMIN_TOKEN, TEST_ANSWER

from service.embedded import free_port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; faults are switched on and off while it runs."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        #: Seconds each chunk waits before it is forwarded, both ways.
        self.delay = 0.0
        #: New connections are closed at once instead of being forwarded.
        self.refuse = False
        self.connections_dropped = 0
        self.connections_accepted = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def close(self) -> None:
        self.drop_all(count=False)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def drop_all(self, *, count: bool = True) -> int:
        """Reset every forwarded connection (RST, not FIN: the peer sees a broken connection)."""
        dropped = 0
        for client, upstream in list(self._pipes):
            for writer in (client, upstream):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            dropped += 1
        self._pipes.clear()
        if count:
            self.connections_dropped += dropped
        return dropped

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections_accepted += 1
        pair = (writer, up_writer)
        self._pipes.add(pair)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._pipes.discard(pair)
            for w in pair:
                w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                if writer.is_closing():
                    return
                writer.write(chunk)
                await writer.drain()
        writer.transport.abort()


class ServedService:
    """`comments-service run` as a subprocess on a free loopback port, one worker, against `redis_url`."""

    def __init__(self, redis_url: str, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "COMMENTS_REDIS_URL": redis_url, "COMMENTS_PORT": str(self.port), "COMMENTS_HOST": "127.0.0.1",
            "COMMENTS_WORKERS": "1", "COMMENTS_DATA_DIR": str(data_dir), "COMMENTS_SECRET_KEY": "s" * 48,
            "COMMENTS_ADMIN_TOKEN": ADMIN_TOKEN, "COMMENTS_RATE_LIMIT_ENABLED": "false",
            "COMMENTS_MIN_FILL_SECONDS": "0", "COMMENTS_CAPTCHA_TEST_ANSWER": TEST_ANSWER,
            "COMMENTS_CAPTCHA_RENDER_PROCESSES": "1", "COMMENTS_CAPTCHA_POOL_SIZE": "4",
            "COMMENTS_PUBLIC_CACHE_SECONDS": "0", "COMMENTS_LOG_LEVEL": "ERROR",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "service.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "service", "run"], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited ({self.process.returncode}): {self.log.read_text()}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError("the service did not start listening")

    def kill(self) -> None:
        """SIGKILL the whole process group (the server and its captcha render processes)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
