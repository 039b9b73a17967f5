"""`python -m bench`: run the benchmark, print the table with ratios and targets, write the JSON.

    python -m bench                      # the full run: 3 runs x 4 s per scenario and concurrency
    python -m bench --quick              # 1 run x 1 s: checks the harness end to end
    python -m bench --scenarios submit,list --concurrency 64
    python -m bench --scenarios console  # the moderation console in Chromium (bench/console_bench.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from bench import console_bench, wrk
from bench.runner import CEILINGS, EXTRAS, GROWTH_SIZES, OPT_IN, SCENARIOS, Options, run

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "latest.json"
#: Not a wrk scenario: a scripted keyboard moderator in the console, on a service of its own.
CONSOLE = "console"


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 run of 1 s each (a smoke test, not a measurement)")
    parser.add_argument("--runs", type=int, help="runs per scenario and concurrency (default 3)")
    parser.add_argument("--seconds", type=int, help="seconds per run (default 4)")
    parser.add_argument("--concurrency", default="16,64", help="comma-separated connection counts (default 16,64)")
    names = ",".join((*SCENARIOS, *EXTRAS, CONSOLE))
    default = ",".join(n for n in (*SCENARIOS, *EXTRAS, CONSOLE) if n not in OPT_IN)
    parser.add_argument("--scenarios", default=default,
                        help=f"comma-separated subset of: {names} (default: all but {', '.join(OPT_IN)})")
    parser.add_argument("--sizing-comments", type=int, default=1_000_000,
                        help="approved comments the sizing scenario stores at most (default 1,000,000)")
    parser.add_argument("--sizing-seconds", type=int, default=1200,
                        help="time the sizing scenario may take at most (default 1200 s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="worker processes of the main run's service and its ceilings (default 1)")
    parser.add_argument("--ceilings", default=",".join(CEILINGS),
                        help=f"comma-separated ceilings the main run measures (default all: {','.join(CEILINGS)})")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the JSON goes")
    args = parser.parse_args(argv)
    scenarios = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    unknown = set(scenarios) - set(SCENARIOS) - set(EXTRAS) - {CONSOLE}
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))} (known: {names})")
    try:
        concurrencies = tuple(sorted({int(c) for c in args.concurrency.split(",") if c.strip()}))
    except ValueError:
        parser.error("--concurrency takes integers, e.g. 16,64")
    if not concurrencies or min(concurrencies) < 1:
        parser.error("--concurrency needs at least one positive number")
    ceilings = tuple(c.strip() for c in args.ceilings.split(",") if c.strip())
    if set(ceilings) - set(CEILINGS):
        parser.error(f"unknown ceilings: {', '.join(sorted(set(ceilings) - set(CEILINGS)))}")
    if args.workers < 1:
        parser.error("--workers needs at least 1")
    runs = args.runs or (1 if args.quick else 3)
    seconds = args.seconds or (1 if args.quick else 4)
    growth_sizes = ((2_000, 200), (4_000, 400)) if args.quick else GROWTH_SIZES
    return Options(runs=runs, seconds=seconds, concurrencies=concurrencies, scenarios=scenarios,
                   output=args.output, memory_comments=300 if args.quick else 20_000, growth_sizes=growth_sizes,
                   sizing_comments=args.sizing_comments, sizing_seconds=args.sizing_seconds, workers=args.workers,
                   ceilings=ceilings)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    console = CONSOLE in options.scenarios
    options = dataclasses.replace(options, scenarios=tuple(s for s in options.scenarios if s != CONSOLE))
    if options.scenarios:
        try:
            wrk.binary()
        except wrk.WrkError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
        run(options)
    if console:
        console_bench.run_alone(options.output.with_name("console.json"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
