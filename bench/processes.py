"""The processes under test: the service started as `make run` would, and the ceiling app; their memory.

Both listen on loopback ports chosen here. The service gets a fresh data dir, so its embedded redis-server
starts empty; the ceiling app talks to that same Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from service.embedded import free_port

ADMIN_TOKEN: Final = "bench-admin-token-0123456789abcdef"
TEST_ANSWER: Final = "ABCDE"


class StartError(RuntimeError):
    """A process did not come up; the message carries the tail of its output."""


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StartError(f"{url}: exited with {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise StartError(f"{url}: not ready after {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def _stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only what we started
            process.wait(timeout=10)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces: the fields after it are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcessMemory:
    pid: int
    name: str
    rss_kb: int
    peak_rss_kb: int


def memory_of(pid: int) -> ProcessMemory | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return ProcessMemory(pid=pid, name=cmdline.strip()[:120] or fields.get("Name", "?").strip(),
                         rss_kb=int(fields.get("VmRSS", "0 kB").split()[0]),
                         peak_rss_kb=int(fields.get("VmHWM", "0 kB").split()[0]))


class Service:
    """`comments-service run` in a subprocess: embedded Redis, captcha test answer, rate limits off."""

    def __init__(self, workdir: Path, workers: int, redis_url: str | None = None) -> None:
        self.workdir = workdir
        self.workers = workers
        #: A redis-server of the bench's own (else the service starts its embedded one under its data dir).
        self.external_redis_url = redis_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.data_dir = workdir / f"service-{workers}w-{self.port}"
        self.log = self.data_dir.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMMENTS_")}
        env.update({
            "COMMENTS_HOST": "127.0.0.1", "COMMENTS_PORT": str(self.port), "COMMENTS_DATA_DIR": str(self.data_dir),
            "COMMENTS_CAPTCHA_TEST_ANSWER": TEST_ANSWER, "COMMENTS_RATE_LIMIT_ENABLED": "false",
            "COMMENTS_MIN_FILL_SECONDS": "0", "COMMENTS_ADMIN_TOKEN": ADMIN_TOKEN,
            "COMMENTS_WORKERS": str(self.workers), "COMMENTS_LOG_LEVEL": "WARNING",
        })
        if self.external_redis_url is not None:
            env["COMMENTS_REDIS_URL"] = self.external_redis_url
        return env

    def start(self) -> None:
        self.data_dir.mkdir(parents=True)
        command = [str(Path(sys.executable).with_name("comments-service")), "run"]
        if not Path(command[0]).exists():
            command = [sys.executable, "-m", "service", "run"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        _wait_for(self.base_url + "/readyz", self.process, self.log)

    @property
    def redis_url(self) -> str:
        if self.external_redis_url is not None:
            return self.external_redis_url
        return (self.data_dir / "redis" / "url").read_text().strip()

    def memory(self) -> list[ProcessMemory]:
        """The service's processes (the main one, its workers, their captcha render processes), not Redis."""
        assert self.process is not None
        pids = [self.process.pid, *descendants(self.process.pid)]
        found = [m for m in map(memory_of, pids) if m is not None]
        return [m for m in found if "redis-server" not in m.name]

    def redis_memory(self) -> ProcessMemory | None:
        assert self.process is not None
        for pid in descendants(self.process.pid):
            found = memory_of(pid)
            if found is not None and "redis-server" in found.name:
                return found
        return None

    def settle(self, *, idle_share: float = 0.05, window: float = 0.5, timeout: float = 20.0) -> float:
        """Wait until the service's processes (workers, captcha renderers, Redis) use less than `idle_share` of a
        CPU over `window` seconds, at most `timeout`; returns the seconds waited.

        What a scenario's preparation set going in the background (the captcha pictures rendered again after a
        harvest of captchas drained the pool) then runs before the timer starts, not during the next timed run,
        where it took the CPU from the requests being measured (and from the ceiling measured after it)."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            pids = [self.process.pid, *descendants(self.process.pid)]
            before = sum(map(cpu_seconds, pids))
            time.sleep(window)
            if sum(map(cpu_seconds, pids)) - before < idle_share * window:
                break
        return time.monotonic() - started

    def cpu_seconds(self) -> float:
        """CPU time used so far by the service's processes (main, workers, render processes, its Redis)."""
        if self.process is None:
            return 0.0
        return sum(map(cpu_seconds, [self.process.pid, *descendants(self.process.pid)]))

    def worker_count(self) -> int:
        """Worker processes `comments-service run` starts: COMMENTS_WORKERS, 0 meaning one per core."""
        return self.workers or os.cpu_count() or 1

    def log_tail(self) -> str:
        return _tail(self.log)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


class Ceiling:
    """The bare aiohttp app of `bench.ceiling` in its own processes: `workers` of them on one socket bound by
    their supervisor (as `comments-service run` does), or each on its own with SO_REUSEPORT."""

    def __init__(self, workdir: Path, redis_url: str, capture: Path | None = None, workers: int = 1,
                 reuseport: bool = False) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.redis_url = redis_url
        self.capture = capture
        self.workers = workers
        self.reuseport = reuseport
        self.log = workdir / f"ceiling-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "bench.ceiling", "--port", str(self.port), "--redis-url", self.redis_url,
                   "--workers", str(self.workers)]
        if self.capture is not None:
            command += ["--capture", str(self.capture)]
        if self.reuseport:
            command.append("--reuseport")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            cwd=Path(__file__).parent.parent)
        _wait_for(self.base_url + "/hello", self.process, self.log)
        # Every worker up: with several, the first answer comes from one of them.
        time.sleep(0.5 * self.workers)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
