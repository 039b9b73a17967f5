"""Running wrk (the load generator) and reading its report.

wrk is driven with `--latency` so its report carries the latency percentiles; flows it cannot express with a
fixed request use the Lua scripts under `bench/lua/` (replayed request files, extra headers, the claim and
approve loop), which print their own counters as `bench-<name> <n>` lines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Final

THREADS: Final = 2
_UNITS: Final = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY: Final = re.compile(r"^\s+(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_TOTAL: Final = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),", re.MULTILINE)
_NON_2XX: Final = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET: Final = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_COUNTER: Final = re.compile(r"^bench-([a-z-]+) (\d+)$", re.MULTILINE)


class WrkError(RuntimeError):
    """wrk failed or printed something this parser does not understand."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    #: Responses with status >= 400 (wrk counts 3xx as success, so a 304 is not an error).
    bad_status: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def ok_per_second(self) -> float:
        """Successful responses per second: what the service actually got done."""
        return max(0, self.requests - self.bad_status) / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.bad_status + self.socket_errors


def lua_script(name: str) -> str:
    return str(resources.files("bench").joinpath("lua", f"{name}.lua"))


def binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed (Debian: apt-get install wrk)")
    return found


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse(output: str) -> WrkResult:
    total = _TOTAL.search(output)
    percentiles = {int(p): _ms(v, u) for p, v, u in _LATENCY.findall(output)}
    if total is None or 50 not in percentiles or 99 not in percentiles:
        raise WrkError(f"cannot read wrk's report:\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET.search(output)
    return WrkResult(
        requests=int(total.group(1)), seconds=_ms(total.group(2), total.group(3)) / 1000,
        bad_status=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        p50_ms=percentiles[50], p99_ms=percentiles[99],
        counters={name: int(n) for name, n in _COUNTER.findall(output)})


def run(url: str, *, connections: int, seconds: float, script: str | None = None,
        args: tuple[str, ...] = (), timeout_seconds: float = 2.0) -> WrkResult:
    """One bounded wrk run against a loopback URL."""
    if not url.startswith(("http://127.0.0.1:", "http://[::1]:", "http://localhost:")):
        raise WrkError(f"the benchmark drives loopback only, not {url}")
    command = [binary(), f"-t{min(THREADS, connections)}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               f"--timeout={timeout_seconds:g}s", "--latency"]
    if script is not None:
        command += ["-s", lua_script(script)]
    command.append(url)
    if args:
        command += ["--", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip() or done.stdout.strip()}")
    return parse(done.stdout)


def harvest_captchas(base_url: str, prefix: Path, seconds: float, connections: int = 64) -> list[str]:
    """Issue captchas for `seconds` at full speed and return their ids (untimed: preparation for a run)."""
    for old in prefix.parent.glob(prefix.name + ".*"):
        old.unlink()
    run(base_url + "/v1/captchas", connections=connections, seconds=seconds, script="harvest", args=(str(prefix),))
    ids: list[str] = []
    for path in sorted(prefix.parent.glob(prefix.name + ".*")):
        ids.extend(line for line in path.read_text().splitlines() if line)
        path.unlink()
    return ids
