"""Prometheus metrics. One registry per application (tests build many apps in one process).

With several worker processes, `comments-service run` sets PROMETHEUS_MULTIPROC_DIR before anything imports
prometheus_client; each worker then writes its samples there and `/metrics` in any worker aggregates them.
"""

from __future__ import annotations

import asyncio
import math
import os
from bisect import bisect_left
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector


class _Counter(Counter):
    """prometheus_client's `labels()` checks, converts and locks on every call (docs/benchmarks.md); handlers count
    by a few fixed label values on every request, so each child is kept in a dict after the first call."""

    def labels(self, *labelvalues: object, **labelkwargs: object) -> _Counter:
        if labelkwargs:
            return super().labels(*labelvalues, **labelkwargs)
        children: dict[tuple[object, ...], _Counter] = self.__dict__.setdefault("_children_by_values", {})
        try:
            child = children.get(labelvalues)
        except TypeError:  # an unhashable label value: prometheus_client takes its str()
            return super().labels(*labelvalues)
        if child is None:
            child = super().labels(*labelvalues)
            if len(children) < 1_000:
                children[labelvalues] = child
        return child


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The histogram's upper bounds as prometheus_client keeps them (+Inf last): an observation counts in the first
#: bucket whose bound is at least its value, which is what `bisect_left` finds.
_UPPER_BOUNDS: Final = (*LATENCY_BUCKETS, math.inf)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("comments_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("comments_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=r)
        self.captchas = _Counter("comments_captchas_total", "Captchas issued, solved and failed",
                                ["outcome"], registry=r)
        self.captcha_renders = _Counter("comments_captcha_renders_total", "Captcha renders by kind (image, audio)",
                                        ["kind"], registry=r)
        self.captcha_refusals = _Counter(
            "comments_captcha_refusals_total",
            "Captcha requests refused by reason (issue_rate, image_queue, audio_queue)", ["reason"], registry=r)
        self.captcha_render_seconds = Histogram(
            "comments_captcha_render_seconds", "Time a captcha render takes in the render pool, by kind", ["kind"],
            buckets=LATENCY_BUCKETS, registry=r)
        self.submissions = _Counter("comments_submissions_total", "Submissions accepted or refused by reason",
                                   ["outcome"], registry=r)
        self.decisions = _Counter("comments_decisions_total", "Moderation decisions by action", ["action"],
                                 registry=r)
        self.time_to_decision = Histogram(
            "comments_time_to_decision_seconds", "Time from submission to decision",
            buckets=(60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 3 * 86400), registry=r)
        self.webhook_deliveries = _Counter("comments_webhook_deliveries_total", "Webhook deliveries by outcome",
                                          ["event", "outcome"], registry=r)
        self.outbox_entries = _Counter(
            "comments_outbox_entries_total",
            "Outbox entries by consumer group and outcome (handled, failed: retried later, dead: given up)",
            ["group", "outcome"], registry=r)
        self.outbox_lag = Gauge("comments_outbox_lag_seconds",
                                "Age of the oldest outbox entry a consumer group has not handled yet (0: caught up)",
                                ["group"], registry=r, multiprocess_mode="mostrecent")
        self.search_index_lag = Gauge("comments_search_index_lag",
                                      "Comments stored whose search terms are not written yet (`service.indexer`; "
                                      "searches read them from the records meanwhile)", registry=r,
                                      multiprocess_mode="mostrecent")
        self.jobs = _Counter("comments_jobs_total", "Job attempts by queue and outcome (delivered, retrying, failed)",
                             ["queue", "outcome"], registry=r)
        self.mail = _Counter("comments_mail_total",
                             "Emails by kind and outcome (sent; failed: an attempt failed, retried later; "
                             "suppressed: the address is on the suppression list; limited: over its address's "
                             "limit, dropped)", ["kind", "outcome"], registry=r)
        self.mail_lag = Gauge("comments_mail_lag_seconds",
                              "How overdue the most overdue email is (0: every email due has been attempted)",
                              registry=r, multiprocess_mode="mostrecent")
        self.redis_errors = _Counter("comments_redis_errors_total", "Redis errors seen by requests", ["kind"],
                                    registry=r)
        # Each worker refreshes these when it is scraped: the freshest reading is the truth ("max" would let a
        # worker's stale reading from a longer queue win for good).
        self.queue_depth = Gauge("comments_queue_depth", "Pending comments", registry=r,
                                 multiprocess_mode="mostrecent")
        self.oldest_pending = Gauge("comments_oldest_pending_age_seconds", "Age of the oldest pending comment",
                                    registry=r, multiprocess_mode="mostrecent")
        # A reader's data, reports and retention (service.privacy, service.reports, service.retention).
        self.erasures = _Counter("comments_privacy_erasures_total", "Comments erased on request, by mode",
                                 ["mode"], registry=r)
        self.reports = _Counter("comments_reports_total",
                                "Readers' reports by outcome (counted, repeated: not counted again, limited)",
                                ["outcome"], registry=r)
        self.report_resolutions = _Counter("comments_report_resolutions_total",
                                           "Reported comments resolved, by action (keep, retract, takedown)",
                                           ["action"], registry=r)
        self.time_to_report_decision = Histogram(
            "comments_report_time_to_decision_seconds", "Time from a comment's first open report to a decision",
            buckets=(60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 3 * 86400), registry=r)
        self.reports_open = Gauge("comments_reports_open", "Comments with open reports", registry=r,
                                  multiprocess_mode="mostrecent")
        self.reports_overdue = Gauge("comments_reports_overdue",
                                     "Comments whose first open report waited longer than COMMENTS_REPORT_ALERT_HOURS "
                                     "(alert when above 0)", registry=r, multiprocess_mode="mostrecent")
        self.reports_oldest = Gauge("comments_reports_oldest_waiting_seconds",
                                    "How long the oldest open report has waited", registry=r,
                                    multiprocess_mode="mostrecent")
        self.pending_overdue = Gauge("comments_pending_overdue",
                                     "Pending comments older than COMMENTS_RETENTION_PENDING_DAYS (never deleted)",
                                     registry=r, multiprocess_mode="mostrecent")
        self.retention_removed = _Counter("comments_retention_removed_total",
                                          "What retention removed: deleted comments, dropped IP hashes",
                                          ["what"], registry=r)

        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        #: Requests observed in this turn of the event loop, by (method, route, status): count, sum of seconds
        #: and a count per latency bucket; written to the metrics once per turn (`flush`).
        self._pending: dict[tuple[str, str, int], list[Any]] = {}
        self._flush_armed = False

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count and time one request.

        Counted here and written to prometheus_client once per turn of the event loop: with several workers each
        write is an mmap'ed file's (a lock, a getpid, a struct pack), three per request (the counter, the
        histogram's sum and bucket), more than the rest of a 304's middleware work (docs/benchmarks.md). Under
        load a turn handles many requests, so they share the writes; alone a request is written one turn later.
        A scrape of this worker sees them all (`render` writes what is pending first); another worker's scrape,
        with several workers, may miss the requests of the turn this one is in.
        """
        key = (method, route, status)
        tally = self._pending.get(key)
        if tally is None:
            tally = self._pending[key] = [0, 0.0, [0] * len(_UPPER_BOUNDS)]
        tally[0] += 1
        tally[1] += seconds
        tally[2][bisect_left(_UPPER_BOUNDS, seconds)] += 1
        if not self._flush_armed:
            self._arm_flush()

    def _arm_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script, a test): written at once
            self.flush()
            return
        self._flush_armed = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write the requests observed since the last flush to the counter and the histogram."""
        self._flush_armed = False
        pending, self._pending = self._pending, {}
        for key, (count, seconds, buckets) in pending.items():
            children = self._request_children.get(key)
            if children is None:
                method, route, status = key
                children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
                if len(self._request_children) < 10_000:
                    self._request_children[key] = children
            counter, histogram = children
            counter.inc(count)
            # What `Histogram.observe` does for one observation (its sum, then the first bucket whose bound is at
            # least the value), for many at once; tests/test_metrics.py checks both agree.
            histogram._sum.inc(seconds)
            for index, observed in enumerate(buckets):
                if observed:
                    histogram._buckets[index].inc(observed)

    def render(self) -> bytes:
        self.flush()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
