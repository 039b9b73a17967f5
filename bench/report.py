"""Results: runs grouped into series (one scenario at one concurrency), the table, the targets, the JSON."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class Run:
    #: Successful responses per second (decisions per second for claim + approve).
    rate: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    seconds: float
    notes: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Series:
    scenario: str
    concurrency: int
    unit: str
    ceiling: str | None
    runs: list[Run] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.scenario}@{self.concurrency}"

    def median(self, metric: Callable[[Run], float]) -> float:
        return statistics.median(metric(r) for r in self.runs) if self.runs else 0.0

    @property
    def rate(self) -> float:
        return self.median(lambda r: r.rate)

    @property
    def p50(self) -> float:
        return self.median(lambda r: r.p50_ms)

    @property
    def p99(self) -> float:
        return self.median(lambda r: r.p99_ms)

    def summary(self) -> dict[str, Any]:
        rates = [r.rate for r in self.runs] or [0.0]
        return {"scenario": self.scenario, "concurrency": self.concurrency, "unit": self.unit,
                "ceiling": self.ceiling, "median": self.rate, "min": min(rates), "max": max(rates),
                "p50_ms": self.p50, "p99_ms": self.p99,
                "requests_per_second": self.median(lambda r: r.requests_per_second),
                "errors": sum(r.errors for r in self.runs), "runs": [asdict(r) for r in self.runs]}


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    passed: bool
    measured: str
    wanted: str


CEILING_LABELS: Final = {"hello": "GET hello", "json": "POST JSON", "redis": "POST+Redis", "bare_page": "bare page",
                          "bare_304": "bare 304", "bare_submit": "bare submit"}


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform(), "load_average": " ".join(f"{v:.2f}" for v in os.getloadavg())}


def _fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def table(series: Sequence[Series], ceilings: dict[str, Series]) -> str:
    """A Markdown table: the same text goes to the terminal and into docs/benchmarks.md."""
    lines = ["| scenario | c | median/s | min/s | max/s | p50 ms | p99 ms | ceiling | ratio | errors |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for s in series:
        rates = [r.rate for r in s.runs] or [0.0]
        ceiling = ceilings.get(f"{s.ceiling}@{s.concurrency}") if s.ceiling else None
        ratio = f"{s.rate / ceiling.rate:.0%}" if ceiling and ceiling.rate else "-"
        label = CEILING_LABELS.get(s.ceiling or "", "-")
        unit = "" if s.unit == "req/s" else f" ({s.unit})"
        lines.append(f"| {s.scenario}{unit} | {s.concurrency} | {_fmt_rate(s.rate)} | {_fmt_rate(min(rates))} | "
                     f"{_fmt_rate(max(rates))} | {s.p50:.2f} | {s.p99:.2f} | {label} | {ratio} | "
                     f"{sum(r.errors for r in s.runs)} |")
    return "\n".join(lines)


def index_lag_lines(series: Sequence[Series]) -> list[str]:
    """For the submit runs: the search index's lag when the timer stopped and the time the indexer took to catch
    up (`Bench._index_catch_up`): the indexing the submissions caused runs in the same workers after the timer."""
    lines = []
    for s in series:
        runs = [r for r in s.runs if "index_lag" in r.notes]
        if s.scenario != "submit" or not runs:
            continue
        lags = ", ".join(f"{r.notes['index_lag']:,}" for r in runs)
        catch_up = ", ".join(f"{r.notes['index_catch_up_ms'] / 1000:.2f}" for r in runs)
        left = sum(r.notes.get("index_lag_left", 0) for r in runs)
        # The accepted submissions over the timer and the catch-up together: the rate with the indexing counted.
        whole = statistics.median(r.rate * r.seconds / (r.seconds + r.notes["index_catch_up_ms"] / 1000)
                                  for r in runs)
        cpu = ""
        if all("cpu_us_timed" in r.notes for r in runs):
            cpu = (f"; the service's CPU per submission (median): "
                   f"{statistics.median(r.notes['cpu_us_timed'] for r in runs):,.0f} µs while timed, "
                   f"{statistics.median(r.notes['cpu_us_with_catch_up'] for r in runs):,.0f} µs with the catch-up")
        lines.append(f"Search index after submit at c{s.concurrency} (each run): {lags} comments not indexed when "
                     f"the timer stopped, caught up in {catch_up} s; {whole:,.0f}/s (median) counting the "
                     "catch-up" + (f"; {left:,} still behind" if left else "") + cpu)
    return lines


def _pick(series: dict[str, Series], scenario: str, concurrency: int) -> Series | None:
    return series.get(f"{scenario}@{concurrency}")


#: Issue 19: each response against the bare app serving the same bytes and headers with as many workers.
RATIO_TARGETS: Final = (("list", "bare_page", 0.80), ("not_modified", "bare_304", 0.85),
                        ("submit", "bare_submit", 0.50))
#: Issue 19: Redis bytes per comment beyond its text.
MEMORY_TARGETS: Final = (("pending", 1024), ("approved", 1536))


def targets(series: dict[str, Series], ceilings: dict[str, Series], memory: dict[str, Any] | None,
            concurrency: int, workers: tuple[dict[str, Series], dict[str, Series], int] | None = None) -> list[Target]:
    """The targets of issues 6 and 19, judged on the medians at the highest concurrency measured."""
    out: list[Target] = []
    c = concurrency

    def ceiling_ratio(s: Series, name: str, store: dict[str, Series]) -> float | None:
        ceiling = store.get(f"{name}@{s.concurrency}")
        return s.rate / ceiling.rate if ceiling and ceiling.rate else None

    submit = _pick(series, "submit", c)
    if submit is not None:
        out.append(Target(f"submission >= 3,000/s at c{c}", submit.rate >= 3000, f"{submit.rate:,.0f}/s", ">= 3,000/s"))
        out.append(Target(f"submission p99 < 30 ms at c{c}", submit.p99 < 30, f"{submit.p99:.1f} ms", "< 30 ms"))
    runs = [("1 worker", series, ceilings)]
    if workers is not None:
        runs.append((f"{workers[2]} workers", workers[0], workers[1]))
    for label, store, bare in runs:
        for name, ceiling, wanted in RATIO_TARGETS:
            s = _pick(store, name, c)
            ratio = ceiling_ratio(s, ceiling, bare) if s is not None else None
            if s is not None and ratio is not None:
                out.append(Target(f"{name} >= {wanted:.0%} of the bare app ({label}, c{c})", ratio >= wanted,
                                  f"{ratio:.0%} ({s.rate:,.0f}/s)", f">= {wanted:.0%}"))
    for name, wanted_rate in (("captcha_issue", 5000), ("captcha_image", 3000), ("claim_approve", 2000)):
        s = _pick(series, name, c)
        if s is not None:
            out.append(Target(f"{name} >= {wanted_rate:,}/s", s.rate >= wanted_rate, f"{s.rate:,.0f} {s.unit}",
                              f">= {wanted_rate:,} {s.unit}"))
    for server in (memory or {}).get("servers", []):
        for state, wanted_bytes in MEMORY_TARGETS:
            beyond = server["api"][state]["beyond_text"]
            out.append(Target(f"Redis <= {wanted_bytes:,} B per {state} comment beyond its text ({server['server']} "
                              f"{server['version']}, {server['allocator']})", beyond <= wanted_bytes,
                              f"{beyond:,.0f} B", f"<= {wanted_bytes:,} B"))
    return out


def memory_table(memory: dict[str, Any]) -> str:
    """Bytes per comment beyond its text, per server and way of storing."""
    lines = ["| server | stored through | pending | pending with the gate's keys | approved | text |",
             "|---|---|---:|---:|---:|---:|"]
    for server in memory["servers"]:
        name = f"{server['server']} {server['version']} ({server['allocator']})"
        api, seeded = server["api"], server["scripts"]
        lines.append(f"| {name} | API | {api['pending']['beyond_text']:,.0f} B | "
                     f"{api['pending_with_gate']['beyond_text']:,.0f} B | {api['approved']['beyond_text']:,.0f} B | "
                     f"{api['text_bytes']:,.0f} B |")
        lines.append(f"| {name} | scripts | {seeded['pending']['beyond_text']:,.0f} B | - | "
                     f"{seeded['approved']['beyond_text']:,.0f} B | {seeded['pending']['text_bytes']:,.0f} B |")
    return "\n".join(lines)


def breakdown_table(memory: dict[str, Any], top: int = 14) -> str:
    """Where an approved comment's bytes are, by kind of key (the first server, through the API)."""
    server = memory["servers"][0]
    lines = ["| key kind | bytes per approved comment | keys |", "|---|---:|---:|"]
    for name, found in list(server["api"]["breakdown"].items())[:top]:
        lines.append(f"| {name} | {found['bytes_per_comment']:,.0f} | {found['keys']:,} |")
    return "\n".join(lines)


def prototypes_table(prototypes: dict[str, Any]) -> str:
    lines = ["| layout | pending beyond text | approved beyond text |", "|---|---:|---:|"]
    for step in prototypes["steps"]:
        pending = step.get("pending_beyond_text")
        lines.append(f"| {step['step']} | {'-' if pending is None else f'{pending:,.0f} B'} | "
                     f"{step['approved_beyond_text']:,.0f} B |")
    return "\n".join(lines)


def targets_text(found: Sequence[Target]) -> str:
    return "\n".join(f"{'PASS' if t.passed else 'MISS'}  {t.name}: {t.measured} (wanted {t.wanted})" for t in found)
