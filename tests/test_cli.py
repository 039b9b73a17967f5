"""`comments-service` as a real command: `run` with an embedded redis-server end to end over HTTP, SIGTERM,
and `token create` against the same data dir; a bad production configuration refuses to start."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from service import cli
from service.embedded import free_port

COMMAND = str(Path(sys.executable).parent / "comments-service")


def _request(url: str, body: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def _environment(data_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMENTS_")}
    env.update(COMMENTS_DATA_DIR=str(data_dir), COMMENTS_PORT=str(port), COMMENTS_WORKERS="1",
               COMMENTS_CAPTCHA_TEST_ANSWER="ABCDE", COMMENTS_MIN_FILL_SECONDS="0",
               COMMENTS_CAPTCHA_POOL_SIZE="2", COMMENTS_LOG_LEVEL="WARNING")
    return env


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_run_serves_end_to_end_with_an_embedded_redis_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = _environment(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([COMMAND, "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                if _request(f"{base}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "not ready within 60 s"
            time.sleep(0.2)
        redis_url = (tmp_path / "redis" / "url").read_text().strip()
        redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
        assert _port_open(redis_port)
        assert (tmp_path / "secret_key").exists()
        redis_dir = tmp_path / "redis"
        assert (redis_dir / "appendonlydir").is_dir() or (redis_dir / "appendonly.aof").is_file()  # 7.x / 6.x

        status, captcha = _request(f"{base}/v1/captchas", {})
        assert status == 201
        status, accepted = _request(f"{base}/v1/articles/bai-viet-1/comments", {
            "name": "Lan", "email": "lan@example.com", "title": "Ý kiến", "body": "Bài viết hay.",
            "captcha_id": captcha["id"], "captcha_answer": "abcde"})
        assert status == 202 and accepted["status"] == "pending"

        created = subprocess.run([COMMAND, "token", "create", "--role", "moderator", "--name", "Lan"], env=env,
                                 capture_output=True, text=True, timeout=30, check=True)
        token = created.stdout.strip()
        assert token and "role=moderator" in created.stderr and token not in created.stderr
        auth = {"Authorization": f"Bearer {token}"}
        status, queue = _request(f"{base}/v1/moderation/queue", headers=auth)
        assert status == 200 and accepted["id"] in json.dumps(queue)
        assert _request(f"{base}/v1/moderation/queue", headers={"Authorization": "Bearer nope"})[0] == 401

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while _port_open(redis_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _port_open(redis_port), "the embedded redis-server outlived the service"
        assert not (tmp_path / "redis" / "url").exists()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


def test_production_without_a_secret_refuses_to_start(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(os.environ):
        if name.startswith("COMMENTS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COMMENTS_ENV", "production")
    assert cli.main(["run"]) == 2
    assert "SECRET_KEY" in capsys.readouterr().err
    monkeypatch.setenv("COMMENTS_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("COMMENTS_CAPTCHA_TEST_ANSWER", "ABCDE")
    assert cli.main(["run"]) == 2
    assert "CAPTCHA_TEST_ANSWER" in capsys.readouterr().err


# -- the command's words, a busy port, stopping ------------------------------------------------------------

def _start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    # A session of its own, like a terminal's job: SIGINT can go to the whole group, as Ctrl-C sends it.
    return subprocess.Popen([COMMAND, "run", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_ready(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 90
    while True:
        assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
        try:
            if _request(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "not ready within 90 s"
        time.sleep(0.2)


def _stop(server: subprocess.Popen[bytes]) -> str:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    output = server.stdout.read().decode() if server.stdout else ""
    if server.stdout is not None:
        server.stdout.close()
    return output


def test_help_shows_usage_and_examples() -> None:
    shown = subprocess.run([COMMAND, "--help"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert shown.startswith("usage: comments-service")
    assert "run" in shown and "token" in shown
    assert 'comments-service token create --role moderator --name "Lan"' in shown
    assert "Only this module reads the environment" not in shown  # the module docstring is for developers


def test_a_busy_port_is_refused_and_the_running_service_keeps_it(tmp_path: Path, redis_server: Any) -> None:
    port = free_port()
    first_env = _environment(tmp_path / "first", port)
    first_env.update(COMMENTS_WORKERS="2", COMMENTS_REDIS_URL=redis_server.url)
    first = _start(first_env)
    try:
        _wait_ready(first, port)
        second_env = _environment(tmp_path / "second", port)
        second = subprocess.run([COMMAND, "run"], env=second_env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1, second.stderr
        assert f"127.0.0.1:{port} is already in use" in second.stderr
        assert "COMMENTS_PORT" in second.stderr and "Traceback" not in second.stderr
        # It stopped before starting anything: no embedded redis-server, no secret written.
        assert not (tmp_path / "second" / "redis").exists() and not (tmp_path / "second" / "secret_key").exists()
        # Every connection still reaches the first service (its two workers share its one socket).
        for _ in range(20):
            assert _request(f"http://127.0.0.1:{port}/readyz")[0] == 200
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0
        _stop(first)


def test_a_port_held_by_another_program_is_refused(tmp_path: Path, redis_server: Any) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = _environment(tmp_path, port)
        env["COMMENTS_REDIS_URL"] = redis_server.url
        refused = subprocess.run([COMMAND, "run"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert "is already in use" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_run_prints_the_next_step_first_and_stops_cleanly(tmp_path: Path, how: str) -> None:
    """As `make run` runs it (embedded Redis, two workers): the first lines say where the demo is and how to
    create a moderator; Ctrl-C (SIGINT to the whole process group) or SIGTERM ends it with 0, no traceback."""
    port = free_port()
    env = _environment(tmp_path, port)
    env["COMMENTS_WORKERS"] = "2"
    server = _start(env)
    try:
        _wait_ready(server, port)
        redis_url = (tmp_path / "redis" / "url").read_text().strip()
        if how == "ctrl-c":
            os.killpg(server.pid, signal.SIGINT)
        else:
            server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
    finally:
        output = _stop(server)
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    first_lines = output.splitlines()[:5]
    assert first_lines[0].startswith(f"comments-service: serving http://127.0.0.1:{port} (2 workers")
    assert f"http://127.0.0.1:{port}/demo/articles/bai-viet-1" in first_lines[1]
    assert any(f"{COMMAND} token create --role moderator" in line for line in first_lines), first_lines
    console = output.splitlines()[5]
    assert f"http://127.0.0.1:{port}/moderation/" in console and "users invite --role admin" in console, console
    redis_port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    assert not _port_open(redis_port), "the embedded redis-server outlived the service"
    assert not _port_open(port)


def test_production_refusal_names_settings_without_their_values(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    for name in list(os.environ):
        if name.startswith("COMMENTS_"):
            monkeypatch.delenv(name)
    token = "admin-Token-Tail-7QX"
    monkeypatch.setenv("COMMENTS_ENV", "production")
    monkeypatch.setenv("COMMENTS_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("COMMENTS_ADMIN_TOKEN", token)
    monkeypatch.setenv("COMMENTS_TRUSTED_PROXIES", "0.0.0.0/0")
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err
    assert "COMMENTS_ADMIN_TOKEN" in err and "COMMENTS_TRUSTED_PROXIES" in err
    assert "COMMENTS_UNSAFE_ALLOW=short_admin_token,broad_trusted_proxies" in err
    for shown in (token, token[-4:], "k" * 8, "0.0.0.0/0", "input_value"):
        assert shown not in err


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_ends_make_run_cleanly(tmp_path: Path) -> None:
    """`make run` in a real pseudo-terminal, then Ctrl-C typed into it: make reports no error (no "Interrupt",
    no "*** Error") and exits 0, the service prints no traceback."""
    port = free_port()
    env = _environment(tmp_path, port)
    env["COMMENTS_WORKERS"] = "2"
    (tmp_path / "Makefile").write_text(f"run:\n\t{COMMAND} run\n")
    pid, terminal = pty.fork()
    if pid == 0:  # the child: a session leader with the pseudo-terminal as its controlling terminal
        os.chdir(tmp_path)
        os.execvpe("make", ["make", "--no-print-directory", "run"], env)
    output = b""
    try:
        deadline = time.monotonic() + 90
        while b"Stop with Ctrl-C" not in output:
            assert time.monotonic() < deadline, output.decode(errors="replace")
            if select.select([terminal], [], [], 1.0)[0]:
                output += os.read(terminal, 65536)
        while True:
            with contextlib.suppress(OSError):
                if _request(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                    break
            assert time.monotonic() < deadline, "not ready within 90 s"
            time.sleep(0.2)
        os.write(terminal, b"\x03")  # the terminal turns it into SIGINT for its foreground process group
        while True:
            if not select.select([terminal], [], [], 60.0)[0]:
                break
            try:
                chunk = os.read(terminal, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                break
            if not chunk:
                break
            output += chunk
        _, status = os.waitpid(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(terminal)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert "Interrupt" not in text and "*** " not in text and "Traceback" not in text, text
    assert not _port_open(port)
