"""The application factory: `create_app(settings)` builds everything, starts nothing at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service import captcha_audio, captcha_render, server
from service.accounts import Accounts
from service.api import (
    accounts,
    admin,
    console,
    feed,
    mail,
    middleware,
    moderation,
    ops,
    privacy,
    problems,
    public,
    reports,
    webhooks,
    widget,
)
from service.appkeys import (
    ACCOUNTS,
    CAPTCHAS,
    FEED,
    LIVE,
    MAIL,
    METRICS,
    MODERATION,
    PRIVACY,
    PUBLICATION,
    REDIS,
    RENDER_POOL,
    REPORTS,
    RETENTION,
    SCRIPTS,
    SETTINGS,
    SUBMISSIONS,
    TAKEDOWNS,
    TOKENS,
    WEBHOOKS,
)
from service.captcha import Captchas
from service.connections import create_redis
from service.feed import Feed
from service.indexer import Indexer
from service.live import Live
from service.mail.mailer import Mail
from service.metrics import Metrics
from service.moderation import Moderation
from service.privacy import Privacy
from service.publication import Publication
from service.reports import Reports
from service.retention import Retention
from service.scripts import Scripts
from service.settings import Settings
from service.submissions import Submissions
from service.takedowns import Takedowns
from service.tasks import stop
from service.tokens import Tokens
from service.webhooks import Webhooks

log = logging.getLogger(__name__)
BACKGROUND = web.AppKey("background", list[asyncio.Task[None]])
#: What startup may meet and go on from: Redis not reachable yet (requests answer 503 until it is).
REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def render_processes(settings: Settings) -> int:
    if settings.captcha_render_processes:
        return settings.captcha_render_processes
    workers = settings.workers or os.cpu_count() or 1
    return max(1, (os.cpu_count() or 1) // max(1, workers))


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.redis_url is None:
        raise RuntimeError("COMMENTS_REDIS_URL is not set (comments-service run starts an embedded Redis)")
    redis = create_redis(settings.redis_url, timeout=settings.redis_timeout_seconds)
    app[REDIS] = redis
    scripts = Scripts(redis)
    app[SCRIPTS] = scripts
    try:
        await scripts.load()
    except REDIS_UNREACHABLE as exc:  # anything else (a script Redis refuses, say) must fail the start
        log.warning("Redis unreachable at start (%s); the scripts load on first use", exc)
    yield
    await redis.aclose()


def _init_render_process() -> None:
    """Render processes yield the CPU to the workers serving requests: pictures are rendered ahead of demand,
    so rendering can wait a moment, a reader's request should not. They leave Ctrl-C to their owner, which
    shuts the pool down (a terminal sends SIGINT to the whole process group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(10)
    captcha_render.warm_up()
    captcha_audio.warm_up()


def start_render_pool(processes: int) -> ProcessPoolExecutor:
    """The processes that render captcha pictures and audio (started on first use)."""
    # spawn, not fork: the parent has an event loop and threads that a forked child must not inherit.
    return ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_render_process)


async def render_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    if RENDER_POOL in app:  # the caller's (`create_app`'s `render_pool`): it stays theirs, running
        yield
        return
    pool = app[RENDER_POOL] = start_render_pool(render_processes(app[SETTINGS]))
    yield
    # Wait for the render processes to exit (they are idle by now), so none outlives its worker.
    await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


async def domain_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    scripts = app[SCRIPTS]
    captchas = Captchas(app[RENDER_POOL], secret=settings.secret, ttl=settings.captcha_ttl_seconds,
                        min_fill_seconds=settings.min_fill_seconds, test_answer=settings.captcha_test_answer,
                        pool_size=settings.captcha_pool_size, render_processes=render_processes(settings),
                        scripts=scripts, metrics=app[METRICS],
                        issue_limit=settings.rate_limit_captcha if settings.rate_limit_enabled else None)
    app[CAPTCHAS] = captchas
    app[SUBMISSIONS] = Submissions(settings, scripts, captchas)
    app[TOKENS] = Tokens(app[REDIS], settings.admin_token.get_secret_value() if settings.admin_token else None)
    app[MODERATION] = Moderation(scripts, settings.secret, undo_lease_seconds=settings.lease_seconds_default)
    app[LIVE] = Live(app[MODERATION])
    app[PUBLICATION] = Publication(scripts, cache_seconds=settings.public_cache_seconds)
    app[FEED] = Feed(scripts, retention_seconds=settings.feed_retention_seconds)
    hooks = Webhooks(app[REDIS], scripts, settings, metrics=app[METRICS])
    hooks.on_delivery = lambda event, outcome: app[METRICS].webhook_deliveries.labels(event, outcome).inc()
    app[WEBHOOKS] = hooks
    try:
        await hooks.start()
    except REDIS_UNREACHABLE as exc:  # the dispatcher creates the consumer groups on its first read then
        log.warning("Redis unreachable at start (%s); webhooks start when it is back", exc)
    jobs: list[Coroutine[Any, Any, None]] = [captchas.keep_pool_filled(), app[FEED].run_janitor(), hooks.run(),
                                             app[LIVE].run()]
    tasks = [asyncio.create_task(job) for job in jobs]
    app[BACKGROUND] = tasks
    yield
    await stop(tasks)


async def indexer_ctx(app: web.Application) -> AsyncIterator[None]:
    """The search indexer (`service.indexer`): every worker runs one, and the one holding the lease indexes; its
    task joins the app's background tasks. Stopping gives the lease up."""
    indexer = Indexer(app[SCRIPTS], metrics=app[METRICS], activity=lambda: server.ACTIVITY.reads)
    task = asyncio.create_task(indexer.run())
    app[BACKGROUND].append(task)
    yield
    await stop([task])
    with contextlib.suppress(*REDIS_UNREACHABLE):
        await indexer.release_lease()


async def accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    """People's accounts and sessions, with the threads that hash their passwords."""
    settings = app[SETTINGS]
    people = Accounts(app[REDIS], app[SCRIPTS], idle_seconds=settings.session_idle_seconds,
                      lifetime_seconds=settings.session_lifetime_seconds,
                      admin_totp_required=settings.admin_totp_required,
                      limit_account=settings.signin_limit_account, limit_client=settings.signin_limit_client)
    app[ACCOUNTS] = people
    await people.start()
    yield
    await asyncio.to_thread(people.close)


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """Email (`service.mail`): built always (its link routes answer 404 when it is off), run only when it is on.
    After the accounts: moderators' notification settings live on them."""
    mail = Mail(app[REDIS], app[SCRIPTS], app[SETTINGS], app[ACCOUNTS], app[MODERATION], metrics=app[METRICS])
    app[MAIL] = mail
    try:
        await mail.start()
    except REDIS_UNREACHABLE as exc:  # the consumer creates its group on its first read then
        log.warning("Redis unreachable at start (%s); email starts when it is back", exc)
    task = asyncio.create_task(mail.run())
    yield
    await stop([task])


async def privacy_ctx(app: web.Application) -> AsyncIterator[None]:
    """A reader's data (`service.privacy`), readers' reports, takedowns, and retention, whose background job
    runs on one worker at a time (a Redis lock: `service.retention`)."""
    settings = app[SETTINGS]
    scripts = app[SCRIPTS]
    privacy_data = Privacy(scripts, settings.secret)
    reported = Reports(scripts, app[MODERATION], settings.secret, limit=settings.rate_limit_report,
                       alert_hours=settings.report_alert_hours)
    retention = Retention(scripts, privacy_data, rejected_days=settings.retention_rejected_days,
                          ip_days=settings.retention_ip_days, pending_days=settings.retention_pending_days)
    app[PRIVACY] = privacy_data
    app[REPORTS] = reported
    app[RETENTION] = retention
    app[TAKEDOWNS] = Takedowns(scripts, app[MODERATION], reported)
    interval = settings.retention_interval_seconds
    background = [asyncio.create_task(retention.run_forever(interval))] if interval else []
    yield
    await stop(background)


def create_app(settings: Settings, *, render_pool: Executor | None = None) -> web.Application:
    """The service's app. `render_pool`: an executor for the captcha pictures and audio that the caller owns and
    shares between apps, left running at cleanup (the test suite shares one: a render process costs about a
    second of CPU to start); by default the app starts its own render processes and stops them at cleanup."""
    settings = settings.with_secret_key()
    app = web.Application(client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    if render_pool is not None:
        app[RENDER_POOL] = render_pool
    app.cleanup_ctx.extend([redis_ctx, render_pool_ctx, domain_ctx, indexer_ctx, accounts_ctx, mail_ctx,
                            privacy_ctx])
    for module in (public, moderation, feed, admin, accounts, webhooks, ops, widget, console, mail, privacy, reports,
                   problems):
        module.setup_routes(app)
    middleware.install(app)  # after every route: wraps each handler (request ids, problems, logs, metrics, CORS)
    if settings.captcha_test_answer:
        log.warning("COMMENTS_CAPTCHA_TEST_ANSWER is set: every captcha's answer is the test answer. "
                    "Never use this outside tests.")
    return app
