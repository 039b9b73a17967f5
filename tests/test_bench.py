"""The benchmark harness runs end to end on a tiny configuration: the real service (`comments-service run` with
its embedded Redis) in a subprocess, the ceiling app, wrk with the Lua scripts, the seeding through the API.

It checks that the harness measures what it says (requests got through, the flows did their work), not any
speed: speed is what `make bench` reports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import wrk

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

WRK_REPORT = """Running 1s test @ http://127.0.0.1:8080/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.34us  1.02ms  20.10ms   95.00%
    Req/Sec    10.12k   500.00    11.00k    70.00%
  Latency Distribution
     50%  650.00us
     75%  800.00us
     90%    1.10ms
     99%    2.50ms
  20245 requests in 1.00s, 3.01MB read
  Non-2xx or 3xx responses: 45
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:  20240.11
Transfer/sec:      3.01MB
bench-decisions 1234
"""


def test_wrk_report_is_read() -> None:
    result = wrk.parse(WRK_REPORT)
    assert result.requests == 20245
    assert result.seconds == pytest.approx(1.0)
    assert result.p50_ms == pytest.approx(0.65)
    assert result.p99_ms == pytest.approx(2.5)
    assert result.bad_status == 45
    assert result.errors == 48
    assert result.ok_per_second == pytest.approx(20200)
    assert result.counters == {"decisions": 1234}


def test_unreadable_wrk_report_is_an_error() -> None:
    with pytest.raises(wrk.WrkError):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused")


@pytest.mark.timeout(110)
def test_quick_bench_end_to_end(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    scenarios = "submit,list,not_modified,claim_approve"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--concurrency", "16", "--scenarios", scenarios,
         "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=100, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())

    ceilings = {c["scenario"]: c for c in result["ceilings"]}
    assert all(c["median"] > 0 and c["errors"] == 0 for c in ceilings.values())

    series = {s["scenario"]: s for s in result["scenarios"]}
    assert set(series) == {"submit", "list", "not_modified", "claim_approve"}
    for name, found in series.items():
        assert found["median"] > 0, name
        assert found["errors"] == 0, (name, found)
        assert found["runs"][0]["p99_ms"] >= found["runs"][0]["p50_ms"] > 0, name
    # Every submission carried its own captcha: none was sent twice.
    assert series["submit"]["runs"][0]["notes"]["wraps"] == 0
    # The moderator loop really approved comments, and never ran dry.
    notes = series["claim_approve"]["runs"][0]["notes"]
    assert notes["decisions"] > 0 and notes["empty-claims"] == 0

    assert result["rss_one_worker"]["total_rss_kb"] > 10_000
    # The honest ceilings served the service's own page, 304 and 202, and each scenario is judged against its own.
    assert set(ceilings) == {"hello", "json", "redis", "bare_page", "bare_304", "bare_submit"}
    assert {t["name"].split(" ")[0] for t in result["targets"]} >= {"submission", "list", "not_modified", "submit",
                                                                    "claim_approve"}
    assert "| submit | 16 |" in done.stdout and "bare page" in done.stdout and "Targets:" in done.stdout


@pytest.mark.timeout(300)
def test_memory_and_growth_end_to_end(tmp_path: Path) -> None:
    """Memory on each server, through the API and through the scripts, and growth at two small sizes."""
    output = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenarios", "memory,growth", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())

    servers = result["memory"]["servers"]
    assert servers and result["memory"]["comments"] == 300
    for server in servers:
        for way in ("api", "scripts"):
            found = server[way]
            assert 0 < found["pending"]["beyond_text"] < found["approved"]["beyond_text"], (server["server"], way)
            assert 400 < found["pending"]["text_bytes"] < 520
        # Each kind of key an approved comment keeps was found, and none it no longer keeps (issue 19: the text
        # once, in the record; no history until a second change).
        kinds = set(server["api"]["breakdown"])
        assert {"record", "article:order", "feed", "outbox", "index:ids", "index:bucket"} <= kinds, kinds
        assert not kinds & {"history", "article:public"}, kinds
    prototypes = result["memory"]["prototypes"]["steps"]
    assert len(prototypes) >= 3 and all(step["approved_beyond_text"] > 0 for step in prototypes)
    steps = result["growth"]["steps"]
    assert [s["approved"] for s in steps] == [200, 400] and steps[1]["pending"] > steps[0]["pending"]
    for step in steps:
        for name, found in step["requests"].items():
            assert found["rate"] > 0 and found["p99_ms"] >= found["p50_ms"] > 0, name
            if name != "decision":
                assert found["errors"] == 0, (name, found)
    assert {t["name"].split(" ")[0] for t in result["targets"]} == {"Redis"}
    assert "Growth:" in done.stdout and "| record |" in done.stdout
