"""The benchmark run: ceilings, then each scenario at each concurrency, then memory, then all workers.

Every timed part is a wrk run of fixed duration against loopback; everything a run consumes (captchas, pending
comments) is made before its timer starts. Scenario names (for `--scenarios`): see `SCENARIOS`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
from redis import Redis

from bench import growth, import_bench, memory, redis_server, report, wrk
from bench.api import Api, bounded, submission_line
from bench.processes import ADMIN_TOKEN, Ceiling, Service
from bench.report import Run, Series
from service import keys

LIST_ARTICLE: Final = "bench-list"
LIST_SIZE: Final = 100
COUNT_ARTICLES: Final = tuple(f"bench-s{i}" for i in range(50))
#: Fewer than the service's pre-render pool (256 per worker), so every picture fetched was rendered ahead.
IMAGE_CAPTCHAS: Final = 200
#: How long the bench waits, after a submit run, for the search indexer to catch up (it reports what is left).
INDEX_CATCH_UP_TIMEOUT: Final = 60.0

#: name -> (ceiling it is compared with, unit). The list page, its 304 and the submission are compared with the
#: bare app serving the same bytes and headers (`bench.ceiling`), the others with the nearest generic shape.
SCENARIOS: Final[dict[str, tuple[str, str]]] = {
    "captcha_issue": ("redis", "req/s"),
    "captcha_image": ("redis", "req/s"),
    "submit": ("bare_submit", "req/s"),
    "list": ("bare_page", "req/s"),
    "not_modified": ("bare_304", "req/s"),
    "counts": ("hello", "req/s"),
    "claim_approve": ("redis", "decisions/s"),
    "feed": ("redis", "req/s"),
}
#: The ceilings of the main run, in the order they are measured (`--ceilings`).
CEILINGS: Final = ("hello", "json", "redis", "bare_page", "bare_304", "bare_submit")
EXTRAS: Final = ("memory", "workers", "import", "growth", "sizing")
#: (pending, approved in one article) at each step of the growth scenario.
GROWTH_SIZES: Final = ((20_000, 2_000), (100_000, 10_000), (200_000, 20_000))
#: Left out unless named: a million approved comments take many minutes (`bench.memory.measure_sizing`).
OPT_IN: Final = ("sizing",)


@dataclass(frozen=True, slots=True)
class Options:
    runs: int
    seconds: int
    concurrencies: tuple[int, ...]
    scenarios: tuple[str, ...]
    output: Path
    #: Comments the memory scenario stores on each server.
    memory_comments: int = 20_000
    growth_sizes: tuple[tuple[int, int], ...] = GROWTH_SIZES
    sizing_comments: int = 1_000_000
    sizing_seconds: int = 1200
    #: Worker processes of the main run's service and of its ceilings (the `workers` scenario adds all cores).
    workers: int = 1
    #: The ceilings the main run measures (`CEILINGS`); fewer when only some matter (an A/B of one scenario).
    ceilings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Prepared:
    etag: str
    feed_token: str
    #: The service's list page, 304 and 202 (`Bench._prepare`), served by the bare app.
    capture: Path
    #: One submission's JSON, as the replay sends it.
    submission_body: str


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
        for service in self.services:  # the background work of the last preparation done before the timer starts
            service.settle()
        serving = next((s for s in self.services if load.url.startswith(s.base_url)), None)
        cpu_before = serving.cpu_seconds() if serving is not None else 0.0
        result = wrk.run(load.url, connections=series.concurrency, seconds=self.options.seconds,
                         script=load.script, args=load.args)
        cpu_timed = serving.cpu_seconds() if serving is not None else 0.0
        rate = result.ok_per_second
        if series.scenario == "claim_approve":
            rate = result.counters.get("decisions", 0) / result.seconds
        notes = dict(result.counters)
        if series.scenario == "submit":
            notes |= self._index_catch_up(load.url)
            if serving is not None and result.ok_per_second:
                # CPU of the service's processes (workers, Redis, renderers) per 202: while the timer ran, and with
                # the indexer's catch-up after it (less noisy than the rate on a shared machine).
                accepted = result.ok_per_second * result.seconds
                notes["cpu_us_timed"] = round((cpu_timed - cpu_before) / accepted * 1e6)
                notes["cpu_us_with_catch_up"] = round((serving.cpu_seconds() - cpu_before) / accepted * 1e6)
        run = Run(rate=rate, requests_per_second=result.requests / result.seconds, p50_ms=result.p50_ms,
                  p99_ms=result.p99_ms, requests=result.requests, errors=result.errors, seconds=result.seconds,
                  notes=notes)
        series.runs.append(run)
        if series.scenario in self.seen_rate:
            self.seen_rate[series.scenario] = max(self.seen_rate[series.scenario], rate)
        extra = f" {notes}" if notes else ""
        _log(f"  {series.key:<22} {rate:>10,.0f} {series.unit:<12} p50 {result.p50_ms:6.2f} ms  "
             f"p99 {result.p99_ms:6.2f} ms  errors {result.errors}{extra}")
        return run

    def _index_catch_up(self, url: str) -> dict[str, int]:
        """The search index's lag when a submit run's timer stopped (comments stored, their terms not written yet
        by the indexer, `service.indexer`) and the milliseconds until it was 0: the indexing the submissions
        caused, which runs in the same workers, is part of their cost (docs/benchmarks.md)."""
        service = next((s for s in self.services if url.startswith(s.base_url)), None)
        if service is None:
            return {}
        redis = Redis.from_url(service.redis_url)
        try:
            started = time.monotonic()
            lag = first = search_index_lag(redis)
            while lag and time.monotonic() - started < INDEX_CATCH_UP_TIMEOUT:
                time.sleep(0.02)
                lag = search_index_lag(redis)
            return {"index_lag": first, "index_catch_up_ms": round((time.monotonic() - started) * 1000),
                    "index_lag_left": lag}
        finally:
            redis.close()

    def measure(self, name: str, ceiling: str | None, unit: str, prepare: Callable[[int], Load],
                store: dict[str, Series], concurrencies: tuple[int, ...] | None = None) -> None:
        for concurrency in concurrencies or self.options.concurrencies:
            series = store.setdefault(f"{name}@{concurrency}", Series(name, concurrency, unit, ceiling))
            for _ in range(self.options.runs):
                self._time(series, prepare(concurrency))

    # -- ceilings -------------------------------------------------------------------------------------------

    def measure_ceilings(self, redis_url: str, capture: Path) -> None:
        workers = self.options.workers
        wanted = self.options.ceilings or CEILINGS
        _log(f"ceilings: a bare aiohttp app, {workers} worker process(es) (as the service's runs here)")
        ceiling = Ceiling(self.workdir, redis_url, capture, workers)
        ceiling.start()
        try:
            url = ceiling.base_url
            wrk.run(url + "/hello", connections=64, seconds=1)  # warm up
            generic = {"hello": Load(url + "/hello"), "json": Load(url + "/json", "request", ("POST", '{"n":1}')),
                       "redis": Load(url + "/redis", "request", ("POST", '{"n":1}'))}
            for name, load in generic.items():
                if name in wanted:
                    self.measure(name, None, "req/s", _fixed(load), self.ceilings)
            self._measure_bare(url, self.ceilings, self.options.concurrencies,
                               tuple(n for n in ("bare_page", "bare_304", "bare_submit") if n in wanted))
        finally:
            ceiling.stop()

    def _measure_bare(self, url: str, store: dict[str, Series], concurrencies: tuple[int, ...],
                      names: tuple[str, ...] = ("bare_page", "bare_304", "bare_submit")) -> None:
        """The bare app serving the service's own list page, 304 and 202 (`bench.ceiling`)."""
        etag, submission = self.prepared.etag, self.prepared.submission_body
        loads = {"bare_page": lambda c: Load(url + "/page"),
                 "bare_304": lambda c: Load(url + "/not-modified", "request", ("GET", "", f"If-None-Match: {etag}")),
                 "bare_submit": lambda c: Load(url + "/submit", "request", ("POST", submission))}
        for name in names:
            self.measure(name, None, "req/s", loads[name], store, concurrencies)

    # -- what the ceilings serve ----------------------------------------------------------------------------

    async def _prepare(self, service: Service) -> Prepared:
        """The list's article (100 approved comments), its ETag, a feed token, and the service's list page, 304
        and 202 as they went over the wire (written for the bare app to serve)."""
        etag, feed_token = await self._seed_list(service)
        list_path = f"/v1/articles/{LIST_ARTICLE}/comments?limit={LIST_SIZE}"
        async with aiohttp.ClientSession() as session:
            async with session.get(service.base_url + list_path) as response:
                page = (response.status, list(response.headers.items()), await response.read())
            async with session.get(service.base_url + list_path, headers={"If-None-Match": etag}) as response:
                not_modified = (response.status, list(response.headers.items()), await response.read())
            async with Api(service.base_url) as api:
                captcha_id = await api.captcha()
            self.serial += 1
            line = submission_line(COUNT_ARTICLES[0], captcha_id, self.serial)
            _, path, body, key = line.split("\t")
            async with session.post(service.base_url + path, data=body.encode(), headers={
                    "Content-Type": "application/json", "Idempotency-Key": key}) as response:
                accepted = (response.status, list(response.headers.items()), await response.read())
        if (page[0], not_modified[0], accepted[0]) != (200, 304, 202):
            raise RuntimeError(f"capturing the responses: {page[0]}, {not_modified[0]}, {accepted[0]}")
        capture = self.workdir / f"capture-{service.port}.json"
        capture.write_text(json.dumps({name: {"status": status, "headers": headers,
                                              "body": base64.b64encode(raw).decode()}
                                       for name, (status, headers, raw) in (
                                           ("page", page), ("not_modified", not_modified), ("submit", accepted))}))
        return Prepared(etag=etag, feed_token=feed_token, capture=capture, submission_body=body)

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
        etag, feed_token = self.prepared.etag, self.prepared.feed_token
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

    def measure_memory(self) -> dict[str, Any]:
        """Per comment, pending and approved, on each server: through the API, and through the scripts alone
        (`bench.memory`)."""
        count = self.options.memory_comments
        found: dict[str, Any] = {"comments": count, "servers": []}
        for label, binary in redis_server.servers():
            _log(f"memory: {count:,} comments on the {label} redis-server")
            with redis_server.running(label, binary, self.workdir) as server:
                service = Service(self.workdir, 1, server.url)
                self.services.append(service)
                service.start()
                try:
                    http = self._memory_through_api(service, server, count)
                finally:
                    service.stop()
            with redis_server.running(label, binary, self.workdir) as server:
                seeded = memory.measure_seeded(server, count, _log)
            found["servers"].append({"server": label, "version": server.version, "allocator": server.allocator,
                                     "api": http, "scripts": seeded})
        label, binary = redis_server.servers()[0]
        _log(f"memory: prototype layouts on the {label} redis-server")
        found["prototypes"] = memory.measure_prototypes(label, binary, self.workdir, count, _log)
        return found

    def _memory_through_api(self, service: Service, server: redis_server.Server, count: int) -> dict[str, Any]:
        redis = Redis.from_url(server.url)
        try:
            before = redis_server.used_memory(redis)
            texts, count = self._submit_at_least(service, count, memory.MEMORY_ARTICLES)
            # Pending counts the search index: its terms are written by the service's indexer just after the store.
            memory.wait_indexed(redis)
            with_gate = redis_server.used_memory(redis)
            # The gate's keys (captcha markers, repeat counters, idempotency) all expire within a day.
            for key in list(redis.scan_iter(match="cm:{g}:*", count=1000)):
                redis.unlink(key)
            pending = redis_server.used_memory(redis)
            approved_count = asyncio.run(self._approve_all(service, memory.MEMORY_ARTICLES))
            if approved_count != count:
                raise RuntimeError(f"approved {approved_count} of {count} memory comments")
            approved = redis_server.used_memory(redis)
            found: dict[str, Any] = {"comments": count, "text_bytes": texts,
                     "pending_with_gate": memory.per_comment(with_gate - before, count, texts),
                     "pending": memory.per_comment(pending - before, count, texts),
                     "approved": memory.per_comment(approved - before, count, texts),
                     "breakdown": memory.breakdown(redis, count)}
        finally:
            redis.close()
        _log(f"  {server.label} (API): {found['pending']['beyond_text']:,.0f} B pending "
             f"({found['pending_with_gate']['beyond_text']:,.0f} B with the gate's keys), "
             f"{found['approved']['beyond_text']:,.0f} B approved beyond {texts:,.0f} B of text")
        return found

    def _submit_at_least(self, service: Service, count: int, articles: tuple[str, ...]) -> tuple[float, int]:
        """Submit until the queue holds `count` (untimed, wrk replay, about 457 bytes of text each); returns the
        mean text bytes of the submissions made and how many the queue holds (a few more when requests still in
        flight as wrk stopped were counted missing)."""
        texts: list[int] = []
        depth = asyncio.run(self._queue_depth(service))
        while depth < count:
            missing = count - depth
            ids = self._captchas(service, missing)[:missing]
            path = self.workdir / "memory-submissions.txt"
            lines = []
            for index, captcha_id in enumerate(ids):
                self.serial += 1
                lines.append(submission_line(articles[index % len(articles)], captcha_id, self.serial, long=True))
                texts.append(memory.text_bytes(self.serial))
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            seconds = max(1, math.ceil(missing / self.seen_rate["submit"]))
            wrk.run(service.base_url, connections=64, seconds=seconds, script="replay",
                    args=(str(path), str(wrk.THREADS)))
            depth = self._settled_depth(service)
        return sum(texts) / len(texts), depth

    def _settled_depth(self, service: Service) -> int:
        """The queue's depth once the requests wrk left in flight are done."""
        depth = asyncio.run(self._queue_depth(service))
        while True:
            time.sleep(1.0)
            again = asyncio.run(self._queue_depth(service))
            if again == depth:
                return depth
            depth = again

    @staticmethod
    async def _approve_all(service: Service, articles: tuple[str, ...]) -> int:
        async with Api(service.base_url) as api:
            return sum(await bounded(articles, api.approve_by_filter, 4))

    def measure_growth(self) -> dict[str, Any]:
        return growth.measure(self.workdir, self.options.growth_sizes, self.options.seconds, _log, self.services)

    def measure_sizing(self) -> dict[str, Any]:
        label, binary = redis_server.servers()[0]
        _log(f"sizing: up to {self.options.sizing_comments:,} approved comments on the {label} redis-server, "
             f"at most {self.options.sizing_seconds:,} s")
        return memory.measure_sizing(label, binary, self.workdir, self.options.sizing_comments,
                                     self.options.sizing_seconds, _log)

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
        if any(name in wanted for name in (*SCENARIOS, "workers", "import")):
            service = self.run_service(self.options.workers)
            try:
                self.prepared = asyncio.run(self._prepare(service))
                self.measure_ceilings(service.redis_url, self.prepared.capture)
                self.run_scenarios(service)
                if "import" in wanted:  # 100,000 Disqus posts through `comments-service import` (bench/import_bench.py)
                    self.result["import"] = import_bench.measure(self.workdir, service.redis_url)
                self.result["rss_one_worker"] = self._rss(service)
            finally:
                service.stop()
            if "workers" in wanted:
                self.compare_workers()
        if "memory" in wanted:
            self.result["memory"] = self.measure_memory()
        if "growth" in wanted:
            self.result["growth"] = self.measure_growth()
        if "sizing" in wanted:
            self.result["sizing"] = self.measure_sizing()
        self.result["seconds"] = time.monotonic() - started
        return self.finish()

    def compare_workers(self) -> None:
        """Submission, list and 304 with every core's worker against one worker (at the top concurrency), each
        against the bare app with as many workers on one shared socket; and the bare list page with a socket
        per worker (SO_REUSEPORT), to show what the shared socket costs."""
        top = max(self.options.concurrencies)
        one = {name: self.series.get(f"{name}@{top}") for name in ("submit", "list", "not_modified")}
        service = self.run_service(0)
        all_workers: dict[str, Series] = {}
        self.workers_ceilings: dict[str, Series] = {}
        try:
            url = service.base_url
            list_path = f"/v1/articles/{LIST_ARTICLE}/comments?limit={LIST_SIZE}"
            self.prepared = asyncio.run(self._prepare(service))
            etag = self.prepared.etag
            workers = service.worker_count()
            self.result["workers_count"] = workers
            for reuseport in (False, True):
                _log(f"ceilings: the bare app, {workers} workers, "
                     f"{'a socket each (SO_REUSEPORT)' if reuseport else 'one shared socket'}")
                ceiling = Ceiling(self.workdir, service.redis_url, self.prepared.capture, workers, reuseport)
                ceiling.start()
                try:
                    if reuseport:
                        page = Load(ceiling.base_url + "/page")
                        self.measure("bare_page_reuseport", None, "req/s", lambda c: page,  # noqa: B023 - used here
                                     self.workers_ceilings, (top,))
                    else:
                        self._measure_bare(ceiling.base_url, self.workers_ceilings, (top,))
                finally:
                    ceiling.stop()
            _log("all workers: submit, list, not_modified")
            self.measure("submit", "bare_submit", "req/s", lambda c: self._submit_load(service), all_workers, (top,))
            self.measure("list", "bare_page", "req/s", lambda c: Load(url + list_path), all_workers, (top,))
            self.measure("not_modified", "bare_304", "req/s",
                         lambda c: Load(url + list_path, "request", ("GET", "", f"If-None-Match: {etag}")),
                         all_workers, (top,))
            self.result["rss_all_workers"] = self._rss(service)
        finally:
            service.stop()
        self.result["workers"] = {}
        for name, single in one.items():
            self.result["workers"][name] = {"one_worker": single.summary() if single else None,
                                            "all_workers": all_workers[f"{name}@{top}"].summary()}
        self.result["workers_ceilings"] = [s.summary() for s in self.workers_ceilings.values()]
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
        workers = None
        if getattr(self, "workers_series", None):
            workers = (self.workers_series, self.workers_ceilings, int(self.result.get("workers_count", 0)))
        found = report.targets(self.series, self.ceilings, self.result.get("memory"), top, workers)
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
                 f"on the same CPUs; {o.runs} run(s) x {o.seconds} s per scenario and concurrency; "
                 f"load average {m.get('load_average', '?')} at the start.\n"]
        if self.ceilings:
            processes = f"{o.workers} worker process{'es' if o.workers > 1 else ''}"
            parts += [f"Ceilings (bare aiohttp, {processes}):", report.table(list(self.ceilings.values()), {}),
                      "", f"Service ({processes}):", report.table(series_list(self.series), self.ceilings)]
            parts += report.index_lag_lines(series_list(self.series))
        if getattr(self, "workers_series", None):
            count = self.result.get("workers_count")
            parts += ["", f"Ceilings (bare aiohttp, {count} workers; one shared socket unless named):",
                      report.table(list(self.workers_ceilings.values()), {}),
                      "", f"Service (all workers, COMMENTS_WORKERS=0: {count}):",
                      report.table(list(self.workers_series.values()), self.workers_ceilings)]
            parts += report.index_lag_lines(list(self.workers_series.values()))
        memory_found = self.result.get("memory")
        if memory_found:
            parts += ["", f"Redis per comment beyond its text, {memory_found['comments']:,} comments:",
                      report.memory_table(memory_found), "", "Where an approved comment's bytes are "
                      f"({memory_found['servers'][0]['server']}, through the API):",
                      report.breakdown_table(memory_found), "",
                      f"Prototype layouts ({memory_found['prototypes']['server']}, approved comments stored "
                      "through the scripts; each step after the ones above it):",
                      report.prototypes_table(memory_found["prototypes"])]
        growth_found = self.result.get("growth")
        if growth_found:
            parts += ["", f"Growth: p50 / p99 ms at c{growth_found['concurrency']}, one worker:",
                      growth.table(growth_found)]
        sizing = self.result.get("sizing")
        if sizing and sizing["points"]:
            last = sizing["points"][-1]
            grew = last["used_memory_delta"] / 2**20
            parts += ["", f"Sizing ({sizing['server']} {sizing['version']}): {last['comments']:,} approved comments "
                          f"stored in {last['seconds']:,.0f} s: used_memory grew {grew:,.0f} MiB, "
                          f"{last['bytes_per_comment']:,.0f} B per comment ({last['beyond_text']:,.0f} B beyond "
                          f"its text); target {sizing['target']:,}"]
        for label, key in (("one worker", "rss_one_worker"), ("all workers", "rss_all_workers")):
            rss = self.result.get(key)
            if rss:
                parts.append(f"Service RSS ({label}): {rss['total_rss_kb'] / 1024:,.1f} MiB in "
                             f"{len(rss['processes'])} processes (main, workers, captcha renderers)")
        if self.result.get("import"):
            parts += ["", f"Import: {import_bench.describe(self.result['import'])}"]
        parts += ["", "Targets:", report.targets_text(found)]
        return "\n".join(parts)


def _fixed(load: Load) -> Callable[[int], Load]:
    """The same load at every concurrency."""
    return lambda concurrency: load


def search_index_lag(redis: Redis) -> int:
    """Comments stored and not yet indexed, over every partition (as `Indexer.lag` counts them)."""
    names = [name for p in range(keys.PARTITIONS) for name in (keys.search_done(p), keys.search_seq(p))]
    values = [int(v or 0) for v in redis.mget(names)]
    return sum(max(0, last - done) for done, last in zip(values[::2], values[1::2], strict=True))


def series_list(series: dict[str, Series]) -> list[Series]:
    return list(series.values())


def run(options: Options) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="comments-bench-") as workdir:
        bench = Bench(options, Path(workdir))
        try:
            return bench.main()
        except Exception:
            bench.tell_logs()
            raise
