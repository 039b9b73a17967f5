"""Growth: does a request cost the same with 200,000 pending comments and an article of 20,000 approved ones as
with a tenth of that? Latency (median, p99) of each moderator and reader request at several data sizes.

The service runs as in the other scenarios (one worker, embedded Redis); the data is stored through its own
scripts (`bench.seed`: HTTP would take many minutes to store it), step by step up to the largest size, and at
each size every request is timed with wrk at a moderate concurrency (the latency is the point, not the rate):

* queue: the first page of the whole queue (`GET /v1/moderation/queue?limit=50`), and a page from its middle
  (by cursor);
* filtered queue: the first page of one article's pending (its own index, `aq:`);
* claim: `POST /v1/moderation/claims` of 10 (the leases live on; the queue is large enough);
* decision: approving comments one by one (ids taken from the queue before the timer starts);
* list: an article's first page of 100 and a deep page (a cursor near its end), and counts of 50 articles.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from redis import Redis

from bench import wrk
from bench.processes import ADMIN_TOKEN, Service
from bench.redis_server import used_memory
from bench.seed import Seeder
from service import keys

#: The article with many approved comments; the pending ones are spread over `PENDING_ARTICLES`.
BIG: Final = "growth-big"
PENDING_ARTICLES: Final = tuple(f"growth-a{i}" for i in range(100))
CONCURRENCY: Final = 16
AUTH: Final = f"Authorization: Bearer {ADMIN_TOKEN}"


def _loads(service: Service, redis: Redis, approved: int, ids_file: Path, decisions: int) -> dict[str, tuple[
        str, str | None, tuple[str, ...]]]:
    """name -> (url, wrk script, its args) at the current size."""
    url = service.base_url
    middle = _queue_middle(redis)
    pending_ids = _pending_ids(redis, decisions)
    ids_file.write_text("".join(f"{i}\n" for i in pending_ids))
    deep = max(0, approved - 150)
    counts = "&".join(f"article_id={a}" for a in (BIG, *PENDING_ARTICLES[:49]))
    return {
        "queue": (url + "/v1/moderation/queue?limit=50", "request", ("GET", "", AUTH)),
        "queue (middle)": (url + f"/v1/moderation/queue?limit=50&cursor={middle}", "request", ("GET", "", AUTH)),
        "queue of an article": (url + f"/v1/moderation/queue?limit=50&article_id={PENDING_ARTICLES[7]}", "request",
                                ("GET", "", AUTH)),
        "claim 10": (url + "/v1/moderation/claims", "request", ("POST", '{"limit":10}', AUTH)),
        "decision": (url + "/v1/moderation/comments", "decide_each", (ADMIN_TOKEN, str(ids_file))),
        "list (first page)": (url + f"/v1/articles/{BIG}/comments?limit=100", None, ()),
        "list (deep page)": (url + f"/v1/articles/{BIG}/comments?limit=100&cursor={deep}", None, ()),
        "counts (50)": (url + f"/v1/counts?{counts}", None, ()),
    }


def _queue_middle(redis: Redis) -> str:
    """A queue cursor (`<submitted ms>:<id>`) from the middle of one partition's pending comments."""
    for partition in range(keys.PARTITIONS):
        size = int(redis.zcard(keys.pending(partition)))
        if size:
            found: Any = redis.zrange(keys.pending(partition), size // 2, size // 2,
                                                            withscores=True)
            member, score = found[0]
            return f"{int(score)}:{member.decode()}"
    raise RuntimeError("the queue is empty")


def _pending_ids(redis: Redis, wanted: int) -> list[str]:
    """Pending ids to approve, each partition's newest first (the claims take the oldest: these are not leased),
    as many as wanted: articles spread unevenly over the partitions, so a partition gives what the others lack."""
    found: list[str] = []
    for partition in range(keys.PARTITIONS):
        missing = wanted - len(found)
        if missing <= 0:
            break
        members: Any = redis.zrevrange(keys.pending(partition), 0, missing - 1)
        found += [m.decode() for m in members]
    return found


def measure(workdir: Path, sizes: tuple[tuple[int, int], ...], seconds: int, log: Callable[[str], None],
            services: list[Service]) -> dict[str, Any]:
    service = Service(workdir, 1)
    services.append(service)
    log(f"growth: comments-service run on {service.base_url}")
    service.start()
    steps: list[dict[str, Any]] = []
    try:
        redis = Redis.from_url(service.redis_url)
        seeder = Seeder(redis)
        pending_stored = approved_stored = 0
        for pending, approved in sizes:
            started = time.monotonic()
            if approved > approved_stored:
                big = seeder.submit((BIG,), approved - approved_stored, first_serial=10_000_000 + approved_stored)
                seeder.approve(big)
                approved_stored = approved
            if pending > pending_stored:
                seeder.submit(PENDING_ARTICLES, pending - pending_stored, first_serial=pending_stored)
                pending_stored = pending
            depth = sum(int(redis.zcard(keys.pending(p))) for p in range(keys.PARTITIONS))
            log(f"  growth: {depth:,} pending, {approved:,} approved in one article "
                f"(stored in {time.monotonic() - started:,.0f} s)")
            step: dict[str, Any] = {"pending": depth, "approved": approved, "used_memory": used_memory(redis),
                                    "requests": {}}
            ids_file = workdir / "growth-ids.txt"
            # Enough ids for the fastest decisions seen here, and at most half the queue.
            decisions = min(depth // 2, 2500 * seconds)
            for name, (url, script, args) in _loads(service, redis, approved, ids_file, decisions).items():
                if script != "decide_each":  # its ids are spent once
                    wrk.run(url, connections=CONCURRENCY, seconds=1, script=script, args=args)  # warm the caches
                result = wrk.run(url, connections=CONCURRENCY, seconds=seconds, script=script, args=args)
                # A decision repeated after its thread ran out of ids answers 409: counted among the errors.
                errors = result.errors
                step["requests"][name] = {"rate": result.ok_per_second, "p50_ms": result.p50_ms,
                                          "p99_ms": result.p99_ms, "errors": errors}
                log(f"    {name:<20} {result.ok_per_second:>8,.0f}/s  p50 {result.p50_ms:6.2f} ms  "
                    f"p99 {result.p99_ms:6.2f} ms  errors {errors}")
            # Approving took comments out of the queue: put the size back for the next step.
            pending_stored = sum(int(redis.zcard(keys.pending(p))) for p in range(keys.PARTITIONS))
            steps.append(step)
        redis.close()
    finally:
        service.stop()
    return {"concurrency": CONCURRENCY, "seconds": seconds, "steps": steps}


def table(found: dict[str, Any]) -> str:
    """One row per request, p50 / p99 in ms at each size."""
    steps = found["steps"]
    head = "| request | " + " | ".join(f"{s['pending']:,} pending, {s['approved']:,} approved" for s in steps) + " |"
    lines = [head, "|---|" + "---:|" * len(steps)]
    for name in steps[0]["requests"] if steps else ():
        cells = []
        for s in steps:
            r = s["requests"].get(name)
            cells.append(f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}" + (f" ({r['errors']} errors)" if r["errors"] else "")
                         if r else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
