"""The benchmark run: ceilings, then each scenario at each concurrency, then memory, then all workers.

Every timed part is a wrk run of fixed duration against loopback; everything a run consumes (captchas, pending
comments) is made before its timer starts. Scenario names (for `--scenarios`): see `SCENARIOS`.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from redis import Redis

from bench import import_bench, report, wrk
from bench.api import Api, submission_line, text_bytes
from bench.processes import ADMIN_TOKEN, Ceiling, Service
from bench.report import Run, Series

LIST_ARTICLE: Final = "bench-list"
LIST_SIZE: Final = 100
COUNT_ARTICLES: Final = tuple(f"bench-s{i}" for i in range(50))
#: Fewer than the service's pre-render pool (256 per worker), so every picture fetched was rendered ahead.
IMAGE_CAPTCHAS: Final = 200

#: name -> (ceiling it is compared with, unit)
SCENARIOS: Final[dict[str, tuple[str, str]]] = {
    "captcha_issue": ("redis", "req/s"),
    "captcha_image": ("redis", "req/s"),
    "submit": ("redis", "req/s"),
    "list": ("hello", "req/s"),
    "not_modified": ("hello", "req/s"),
    "counts": ("hello", "req/s"),
    "claim_approve": ("redis", "decisions/s"),
    "feed": ("redis", "req/s"),
}
EXTRAS: Final = ("memory", "workers", "import")


@dataclass(frozen=True, slots=True)
class Options:
    runs: int
    seconds: int
    concurrencies: tuple[int, ...]
    scenarios: tuple[str, ...]
    output: Path
    memory_comments: int


@dataclass(frozen=True, slots=True)
class Load:
    """What one timed wrk run sends."""

    url: str
    script: str | None = None
    args: tuple[str, ...] = ()


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Bench:
    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.series: dict[str, Series] = {}
        self.ceilings: dict[str, Series] = {}
        self.serial = 0
        self.services: list[Service] = []
        #: Best rates seen so far, to size what the next run consumes.
        self.seen_rate: dict[str, float] = {"submit": 2000.0, "claim_approve": 2000.0, "captcha_issue": 4000.0}
        self.result: dict[str, Any] = {"machine": report.machine(), "options": {
            "runs": options.runs, "seconds": options.seconds, "concurrencies": list(options.concurrencies),
            "scenarios": list(options.scenarios), "wrk_threads": wrk.THREADS}}

    # -- timing ---------------------------------------------------------------------------------------------

    def _time(self, series: Series, load: Load) -> Run:
        result = wrk.run(load.url, connections=series.concurrency, seconds=self.options.seconds,
                         script=load.script, args=load.args)
        rate = result.ok_per_second
        if series.scenario == "claim_approve":
            rate = result.counters.get("decisions", 0) / result.seconds
        run = Run(rate=rate, requests_per_second=result.requests / result.seconds, p50_ms=result.p50_ms,
                  p99_ms=result.p99_ms, requests=result.requests, errors=result.errors, seconds=result.seconds,
                  notes=result.counters)
        series.runs.append(run)
        if series.scenario in self.seen_rate:
            self.seen_rate[series.scenario] = max(self.seen_rate[series.scenario], rate)
        extra = f" {result.counters}" if result.counters else ""
        _log(f"  {series.key:<22} {rate:>10,.0f} {series.unit:<12} p50 {result.p50_ms:6.2f} ms  "
             f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}{extra}")
        return run

    def measure(self, name: str, ceiling: str | None, unit: str, prepare: Callable[[int], Load],
                store: dict[str, Series], concurrencies: tuple[int, ...] | None = None) -> None:
        for concurrency in concurrencies or self.options.concurrencies:
            series = store.setdefault(f"{name}@{concurrency}", Series(name, concurrency, unit, ceiling))
            for _ in range(self.options.runs):
                self._time(series, prepare(concurrency))

    # -- ceilings -------------------------------------------------------------------------------------------

    def measure_ceilings(self, redis_url: str) -> None:
        _log("ceilings: a bare aiohttp app, one process")
        ceiling = Ceiling(self.workdir, redis_url)
        ceiling.start()
        try:
            url = ceiling.base_url
            wrk.run(url + "/hello", connections=64, seconds=1)  # warm up
            self.measure("hello", None, "req/s", lambda c: Load(url + "/hello"), self.ceilings)
            self.measure("json", None, "req/s", lambda c: Load(url + "/json", "request", ("POST", '{"n":1}')),
                         self.ceilings)
            self.measure("redis", None, "req/s", lambda c: Load(url + "/redis", "request", ("POST", '{"n":1}')),
                         self.ceilings)
        finally:
            ceiling.stop()

    # -- preparation ----------------------------------------------------------------------------------------

    def _captchas(self, service: Service, wanted: int) -> list[str]:
        """At least `wanted` fresh captcha ids, issued through the API with wrk (untimed)."""
        ids: list[str] = []
        prefix = self.workdir / "captchas"
        while len(ids) < wanted:
            seconds = max(1, math.ceil((wanted - len(ids)) * 1.1 / self.seen_rate["captcha_issue"]))
            got = wrk.harvest_captchas(service.base_url, prefix, seconds)
            if not got:
                raise RuntimeError("issuing captchas for the run failed")
            self.seen_rate["captcha_issue"] = max(1000.0, len(got) / seconds)
            ids += got
        return ids

    def _submission_file(self, service: Service, count: int, articles: tuple[str, ...]) -> Path:
        ids = self._captchas(service, count)
        path = self.workdir / "submissions.txt"
        lines = []
        for index, captcha_id in enumerate(ids):
            self.serial += 1
            lines.append(submission_line(articles[index % len(articles)], captcha_id, self.serial))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def _submit_load(self, service: Service) -> Load:
        count = int(self.seen_rate["submit"] * self.options.seconds * 1.25) + 200
        path = self._submission_file(service, count, COUNT_ARTICLES)
        return Load(service.base_url + "/v1/articles/x/comments", "replay", (str(path), str(wrk.THREADS)))

    def _ensure_pending(self, service: Service, wanted: int) -> None:
        """Top the moderation queue up to `wanted` pending comments (untimed, through the API with wrk)."""
        depth = asyncio.run(self._queue_depth(service))
        while depth < wanted:
            missing = wanted - depth
            path = self._submission_file(service, missing, COUNT_ARTICLES)
            seconds = max(1, math.ceil(missing / self.seen_rate["submit"]))
            wrk.run(service.base_url, connections=64, seconds=seconds, script="replay",
                    args=(str(path), str(wrk.THREADS)))
            depth = asyncio.run(self._queue_depth(service))

    @staticmethod
    async def _queue_depth(service: Service) -> int:
        async with Api(service.base_url) as api:
            return await api.queue_depth()

    @staticmethod
    async def _seed_list(service: Service) -> tuple[str, str]:
        """An article with 100 approved comments (submitted and approved through the API); its list's ETag and
        a feed token."""
        async with Api(service.base_url) as api:
            await api.submit_many(LIST_ARTICLE, range(LIST_SIZE))
            approved = await api.approve_article(LIST_ARTICLE)
            if approved != LIST_SIZE:
                raise RuntimeError(f"approved {approved} comments of {LIST_ARTICLE}, wanted {LIST_SIZE}")
            path = f"/v1/articles/{LIST_ARTICLE}/comments?limit={LIST_SIZE}"
            etag = await api.etag(path)
            feed_token = await api.token("feed", "bench")
            return etag, feed_token

    @staticmethod
    async def _issue(service: Service, count: int) -> list[str]:
        async with Api(service.base_url) as api:
            return [await api.captcha() for _ in range(count)]

    def _image_load(self, service: Service) -> Load:
        time.sleep(0.5)  # let the pre-render pool refill after the previous run drained it
        ids = asyncio.run(self._issue(service, IMAGE_CAPTCHAS))
        path = self.workdir / "images.txt"
        path.write_text("".join(f"/v1/captchas/{i}.png\n" for i in ids))
        return Load(service.base_url + "/v1/captchas", "cycle_get", (str(path), str(wrk.THREADS)))

    # -- the scenarios --------------------------------------------------------------------------------------

    def run_scenarios(self, service: Service) -> None:
        wanted = self.options.scenarios
        url = service.base_url
        list_path = f"/v1/articles/{LIST_ARTICLE}/comments?limit={LIST_SIZE}"
        etag, feed_token = asyncio.run(self._seed_list(service))
        wrk.run(url + list_path, connections=64, seconds=1)  # warm up
        loads: dict[str, Callable[[int], Load]] = {
            "captcha_issue": lambda c: Load(url + "/v1/captchas", "request", ("POST", "")),
            "captcha_image": lambda c: self._image_load(service),
            "submit": lambda c: self._submit_load(service),
            "list": lambda c: Load(url + list_path),
            "not_modified": lambda c: Load(url + list_path, "request", ("GET", "", f"If-None-Match: {etag}")),
            "counts": lambda c: Load(url + "/v1/counts?" + "&".join(f"article_id={a}" for a in COUNT_ARTICLES)),
            "claim_approve": lambda c: self._claim_load(service),
            "feed": lambda c: Load(url + "/v1/feed?limit=100", "request",
                                   ("GET", "", f"Authorization: Bearer {feed_token}")),
        }
        for name, (ceiling, unit) in SCENARIOS.items():
            if name in wanted:
                _log(f"scenario {name}")
                self.measure(name, ceiling, unit, loads[name], self.series)

    def _claim_load(self, service: Service) -> Load:
        expected = self.seen_rate["claim_approve"] * self.options.seconds
        self._ensure_pending(service, int(expected * 1.5) + 1000)
        return Load(service.base_url, "claim_approve", (ADMIN_TOKEN, "10"))

    # -- memory ---------------------------------------------------------------------------------------------

    def measure_redis_memory(self, service: Service) -> dict[str, Any]:
        """used_memory grows by this much per pending comment (record, queue entries, outbox event, repeat
        counter, its captcha's single-use marker), less the text its author wrote."""
        count = self.options.memory_comments
        redis = Redis.from_url(service.redis_url)
        try:
            before = int(redis.info("memory")["used_memory"])
            start = self.serial
            self.serial += count
            forms = asyncio.run(self._submit_memory_comments(service, range(start, start + count)))
            after = int(redis.info("memory")["used_memory"])
        finally:
            redis.close()
        text = sum(text_bytes(f) for f in forms) / count
        per_comment = (after - before) / count
        found = {"comments": count, "used_memory_delta_bytes": after - before, "bytes_per_comment": per_comment,
                 "text_bytes_per_comment": text, "beyond_text_bytes": per_comment - text}
        _log(f"redis memory: {per_comment:,.0f} B per pending comment, {text:,.0f} B of it text, "
             f"{per_comment - text:,.0f} B beyond")
        return found

    @staticmethod
    async def _submit_memory_comments(service: Service, serials: range) -> list[dict[str, str]]:
        async with Api(service.base_url) as api:
            # Issuing a captcha stores nothing; each submission leaves its captcha's single-use marker (until the
            # captcha would have expired), counted here as part of the comment.
            return await api.submit_many("bench-memory", serials)

    # -- the whole run --------------------------------------------------------------------------------------

    def run_service(self, workers: int) -> Service:
        service = Service(self.workdir, workers)
        self.services.append(service)
        _log(f"starting comments-service run (COMMENTS_WORKERS={workers}) on {service.base_url}")
        service.start()
        return service

    def tell_logs(self) -> None:
        """After a failure: the service's own output, before the temporary directory goes."""
        for service in self.services:
            _log(f"--- {service.log.name} (last lines) ---\n{service.log_tail()}")

    def main(self) -> dict[str, Any]:
        wanted = self.options.scenarios
        started = time.monotonic()
        service = self.run_service(1)
        try:
            self.measure_ceilings(service.redis_url)
            self.run_scenarios(service)
            if "memory" in wanted:
                self.result["redis_memory"] = self.measure_redis_memory(service)
            if "import" in wanted:  # 100,000 Disqus posts through `comments-service import` (bench/import_bench.py)
                self.result["import"] = import_bench.measure(self.workdir, service.redis_url)
            self.result["rss_one_worker"] = self._rss(service)
        finally:
            service.stop()
        if "workers" in wanted:
            self.compare_workers()
        self.result["seconds"] = time.monotonic() - started
        return self.finish()

    def compare_workers(self) -> None:
        """Submission and list throughput with every core's worker against one worker (at the top concurrency)."""
        top = max(self.options.concurrencies)
        one = {name: self.series.get(f"{name}@{top}") for name in ("submit", "list")}
        service = self.run_service(0)
        all_workers: dict[str, Series] = {}
        try:
            url = service.base_url
            list_path = f"/v1/articles/{LIST_ARTICLE}/comments?limit={LIST_SIZE}"
            asyncio.run(self._seed_list(service))
            _log("all workers: submit, list")
            self.measure("submit", "redis", "req/s", lambda c: self._submit_load(service), all_workers, (top,))
            self.measure("list", "hello", "req/s", lambda c: Load(url + list_path), all_workers, (top,))
            self.result["rss_all_workers"] = self._rss(service)
        finally:
            service.stop()
        self.result["workers"] = {}
        for name, single in one.items():
            self.result["workers"][name] = {"one_worker": single.summary() if single else None,
                                            "all_workers": all_workers[f"{name}@{top}"].summary()}
        self.workers_series = all_workers

    def _rss(self, service: Service) -> dict[str, Any]:
        processes = service.memory()
        redis = service.redis_memory()
        total = sum(p.rss_kb for p in processes)
        _log(f"service RSS: {total / 1024:,.1f} MiB in {len(processes)} processes"
             + (f"; redis-server {redis.rss_kb / 1024:,.1f} MiB" if redis else ""))
        return {"total_rss_kb": total, "processes": [asdict(p) for p in processes],
                "redis_rss_kb": redis.rss_kb if redis else None}

    def finish(self) -> dict[str, Any]:
        series = list(self.series.values())
        top = max(self.options.concurrencies)
        memory = self.result.get("redis_memory", {}).get("beyond_text_bytes")
        found = report.targets(self.series, self.ceilings, memory, top)
        self.result["ceilings"] = [s.summary() for s in self.ceilings.values()]
        self.result["scenarios"] = [s.summary() for s in series]
        self.result["targets"] = [asdict(t) for t in found]
        print(self.render(found))
        self.options.output.parent.mkdir(parents=True, exist_ok=True)
        self.options.output.write_text(json.dumps(self.result, indent=2) + "\n")
        _log(f"wrote {self.options.output}")
        return self.result

    def render(self, found: list[report.Target]) -> str:
        m = self.result["machine"]
        o = self.options
        parts = [f"\nMachine: {m['nproc']} CPUs, {m['cpu']}, Python {m['python']}; wrk -t{wrk.THREADS} "
                 f"on the same CPUs; {o.runs} run(s) x {o.seconds} s per scenario and concurrency.\n",
                 "Ceilings (bare aiohttp, one process):",
                 report.table(list(self.ceilings.values()), {}), "",
                 "Service (one worker process):",
                 report.table(list(self.series.values()), self.ceilings)]
        if getattr(self, "workers_series", None):
            parts += ["", "Service (all workers, COMMENTS_WORKERS=0):",
                      report.table(list(self.workers_series.values()), self.ceilings)]
        if self.result.get("import"):
            parts += ["", f"Import: {import_bench.describe(self.result['import'])}"]
        memory = self.result.get("redis_memory")
        if memory:
            parts += ["", f"Redis: {memory['bytes_per_comment']:,.0f} B per pending comment "
                          f"({memory['text_bytes_per_comment']:,.0f} B of text, "
                          f"{memory['beyond_text_bytes']:,.0f} B beyond) over {memory['comments']} comments"]
        for label, key in (("one worker", "rss_one_worker"), ("all workers", "rss_all_workers")):
            rss = self.result.get(key)
            if rss:
                parts.append(f"Service RSS ({label}): {rss['total_rss_kb'] / 1024:,.1f} MiB in "
                             f"{len(rss['processes'])} processes (main, workers, captcha renderers)")
        parts += ["", "Targets:", report.targets_text(found)]
        return "\n".join(parts)


def run(options: Options) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="comments-bench-") as workdir:
        bench = Bench(options, Path(workdir))
        try:
            return bench.main()
        except Exception:
            bench.tell_logs()
            raise
