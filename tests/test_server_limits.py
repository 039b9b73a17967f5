"""Connection time limits (`service.server`) against a real `comments-service run`, spoken to over raw
sockets: a request head must arrive within COMMENTS_HTTP_HEAD_TIMEOUT_SECONDS (2 s here), an idle kept-alive
connection is closed after COMMENTS_HTTP_KEEPALIVE_TIMEOUT_SECONDS (40 s here; 8 s on a second server, whose idle
connection a test waits out); and the security headers.

No assertion measures time: each test checks whether the server closed the connection, waiting as long as a
loaded machine needs. aiohttp's own keep-alive timer also closes a connection whose head is incomplete when it
fires, so the dripped heads last 30 s, less than the keep-alive limit: only the head deadline can cut them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.embedded import free_port

COMMAND = str(Path(sys.executable).parent / "comments-service")
HEAD_TIMEOUT = 2
KEEPALIVE_TIMEOUT = 40
#: The keep-alive limit of the server whose idle connection is waited out: past the head timeout with room.
SHORT_KEEPALIVE_TIMEOUT = 8
#: Far beyond both timeouts: a connection still open after this was not cut.
PATIENCE = 60.0


@contextlib.contextmanager
def serving(redis_url: str, data_dir: Path, keepalive_timeout: int) -> Iterator[int]:
    """A `comments-service run` (one worker) with the head timeout and this keep-alive timeout; its port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMENTS_")}
    env.update(COMMENTS_DATA_DIR=str(data_dir), COMMENTS_PORT=str(port),
               COMMENTS_WORKERS="1", COMMENTS_REDIS_URL=redis_url, COMMENTS_CAPTCHA_POOL_SIZE="2",
               COMMENTS_LOG_LEVEL="WARNING", COMMENTS_HTTP_HEAD_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
               COMMENTS_HTTP_KEEPALIVE_TIMEOUT_SECONDS=str(keepalive_timeout))
    server = subprocess.Popen([COMMAND, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "not ready within 90 s"
            time.sleep(0.2)
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


@pytest.fixture(scope="module")
def port(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with serving(redis_server.url, tmp_path_factory.mktemp("limits"), KEEPALIVE_TIMEOUT) as port:
        yield port


@pytest.fixture(scope="module")
def short_keepalive_port(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A server whose keep-alive limit is SHORT_KEEPALIVE_TIMEOUT, for the test that waits it out."""
    with serving(redis_server.url, tmp_path_factory.mktemp("keepalive"), SHORT_KEEPALIVE_TIMEOUT) as port:
        yield port


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Wait (up to PATIENCE) for the server to close: end of stream or a reset. False if it stays open."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def read_response(sock: socket.socket) -> bytes:
    """One response to a GET /healthz (small, with Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return head


def drip(sock: socket.socket, lines: list[bytes]) -> int:
    """Send one header line a second; how many went out before the server closed the connection."""
    sent = 0
    try:
        for line in lines:
            sock.sendall(line)
            sent += 1
            time.sleep(1)
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


SLOW_HEAD = [b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n"] + [b"X-Slow-%d: a\r\n" % i for i in range(28)]


def test_a_head_dripped_a_line_a_second_is_cut(port: int) -> None:
    with connect(port) as sock:
        sent = drip(sock, SLOW_HEAD)
        # The whole head would take 30 s, within the keep-alive limit; the head deadline cuts it.
        assert sent < len(SLOW_HEAD)
        assert closed_by_server(sock)


def test_a_connection_that_never_sends_is_cut(port: int) -> None:
    with connect(port) as sock:
        assert closed_by_server(sock)


def test_an_idle_kept_alive_connection_outlives_the_head_timeout_then_is_closed(short_keepalive_port: int) -> None:
    with connect(short_keepalive_port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        # Idle for longer than the head timeout (2 s) but within keep-alive (8 s here): still usable.
        time.sleep(HEAD_TIMEOUT + 1)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        # Then, left idle, it is closed by the keep-alive limit.
        assert closed_by_server(sock)


def test_the_next_head_on_a_kept_alive_connection_has_the_same_deadline(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        sent = drip(sock, SLOW_HEAD)
        assert sent < len(SLOW_HEAD)
        assert closed_by_server(sock)


def test_a_whole_head_in_pieces_within_the_deadline_is_served(port: int) -> None:
    with connect(port) as sock:
        for piece in (b"GET /hea", b"lthz HTTP/1.1\r\nHo", b"st: 127.0.0.1\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(0.05)
        assert read_response(sock).startswith(b"HTTP/1.1 200")


def test_json_is_nosniff_and_html_has_a_content_security_policy(port: int) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Content-Security-Policy" not in response.headers
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/demo/articles/bai-viet-1", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/html")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "default-src 'none'" in policy
