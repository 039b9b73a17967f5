"""Routes for operators: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from service import openapi
from service.api.common import json_response
from service.api.docs import operation
from service.appkeys import METRICS, MODERATION, REDIS, REPORTS, RETENTION
from service.errors import Unavailable
from service.models import Health
from service.scripts import as_text


async def redis_problems(app: web.Application) -> list[str]:
    """What makes this Redis unsafe for comments: no AOF means acknowledged comments can be lost in a crash,
    an eviction policy means Redis may silently drop them when full."""
    redis = app[REDIS]
    problems = []
    infos: list[dict[str, Any]]
    configs: list[dict[Any, Any]]
    if isinstance(redis, RedisCluster):
        # Every node: a replica promoted in a failover must be as safe as the master it replaces.
        infos = list((await redis.info("persistence", target_nodes=RedisCluster.ALL_NODES)).values())
        per_node: dict[Any, Any] = await redis.config_get("maxmemory-policy", target_nodes=RedisCluster.ALL_NODES)
        configs = list(per_node.values())
    else:
        infos = [await redis.info("persistence")]
        configs = [await redis.config_get("maxmemory-policy")]
    if not all(int(info.get("aof_enabled", 0)) == 1 for info in infos):
        problems.append("appendonly is off: acknowledged comments could be lost in a crash")
    policies = {as_text(value) for config in configs for key, value in config.items() if "policy" in as_text(key)}
    if policies != {"noeviction"}:
        problems.append("maxmemory-policy is not noeviction: Redis could silently drop comments when full")
    return problems


@operation(summary="The process is alive", tag="ops", responses={200: Health})
async def healthz(request: web.Request) -> web.Response:
    return json_response(Health(status="ok"), headers={"Cache-Control": "no-store"})


@operation(summary="Redis is reachable and configured safely", tag="ops", responses={200: Health}, errors=(503,))
async def readyz(request: web.Request) -> web.Response:
    problems = await redis_problems(request.app)
    if problems:
        raise Unavailable("Redis is not safe for comments: {problems}", params={"problems": "; ".join(problems)},
                          retry_after=5)
    return json_response(Health(status="ready"), headers={"Cache-Control": "no-store"})


@operation(summary="Prometheus metrics", tag="ops", responses={200: "text"}, media={200: "text/plain"})
async def metrics(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    try:  # the queue's state at scrape time; the request counters need no Redis
        depth, oldest = await request.app[MODERATION].queue_health()
        metrics.queue_depth.set(depth)
        metrics.oldest_pending.set(oldest or 0.0)
        opened, overdue, waiting = await request.app[REPORTS].health()
        metrics.reports_open.set(opened)
        metrics.reports_overdue.set(overdue)
        metrics.reports_oldest.set(waiting or 0.0)
        metrics.pending_overdue.set(await request.app[RETENTION].pending_overdue_count())
    except RedisError:
        metrics.redis_errors.labels("metrics").inc()
    return web.Response(body=metrics.render(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


@operation(summary="This document", tag="ops", responses={200: "json"}, media={200: "application/json"})
async def openapi_json(request: web.Request) -> web.Response:
    return json_response(openapi.document(request.app))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi_json)
