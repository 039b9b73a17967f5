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


CEILING_LABELS: Final = {"hello": "GET hello", "json": "POST JSON", "redis": "POST+Redis"}


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
            "platform": platform.platform()}


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


def _pick(series: dict[str, Series], scenario: str, concurrency: int) -> Series | None:
    return series.get(f"{scenario}@{concurrency}")


def targets(series: dict[str, Series], ceilings: dict[str, Series], memory_per_comment: float | None,
            concurrency: int) -> list[Target]:
    """The targets of issue #6, judged on the medians at the highest concurrency measured."""
    out: list[Target] = []
    c = concurrency

    def ceiling_ratio(s: Series, name: str) -> float | None:
        ceiling = ceilings.get(f"{name}@{s.concurrency}")
        return s.rate / ceiling.rate if ceiling and ceiling.rate else None

    submit = _pick(series, "submit", c)
    if submit is not None:
        out.append(Target(f"submission >= 3,000/s at c{c}", submit.rate >= 3000, f"{submit.rate:,.0f}/s", ">= 3,000/s"))
        out.append(Target(f"submission p99 < 30 ms at c{c}", submit.p99 < 30, f"{submit.p99:.1f} ms", "< 30 ms"))
        ratio = ceiling_ratio(submit, "redis")
        if ratio is not None:
            out.append(Target("submission >= 30% of POST+Redis", ratio >= 0.30, f"{ratio:.0%}", ">= 30%"))
    for name, wanted in (("list", 0.50), ("not_modified", 0.70)):
        s = _pick(series, name, c)
        ratio = ceiling_ratio(s, "hello") if s is not None else None
        if s is not None and ratio is not None:
            out.append(Target(f"{name} >= {wanted:.0%} of GET hello", ratio >= wanted,
                              f"{ratio:.0%} ({s.rate:,.0f}/s)", f">= {wanted:.0%}"))
    for name, wanted_rate in (("captcha_issue", 5000), ("captcha_image", 3000), ("claim_approve", 2000)):
        s = _pick(series, name, c)
        if s is not None:
            out.append(Target(f"{name} >= {wanted_rate:,}/s", s.rate >= wanted_rate, f"{s.rate:,.0f} {s.unit}",
                              f">= {wanted_rate:,} {s.unit}"))
    if memory_per_comment is not None:
        out.append(Target("Redis < 1.5 KB per pending comment beyond its text", memory_per_comment < 1536,
                          f"{memory_per_comment:,.0f} B", "< 1,536 B"))
    return out


def targets_text(found: Sequence[Target]) -> str:
    return "\n".join(f"{'PASS' if t.passed else 'MISS'}  {t.name}: {t.measured} (wanted {t.wanted})" for t in found)
