"""The `comments-service` command: `run` serves the API; `token` manages access tokens; `doctor` checks
(and with `--repair` mends) the stored data.

Only this module reads the environment (through `Settings()`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import signal
import sys
from collections.abc import Iterator

from service.settings import Settings


def _serve(settings: Settings, reuse_port: bool) -> None:
    """One worker process: the aiohttp app on the shared port (SO_REUSEPORT spreads connections)."""
    from aiohttp import web

    from service import logs
    from service.app import create_app

    logs.configure(settings.log_level)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(create_app(settings), host=settings.host, port=settings.port, reuse_port=reuse_port,
                shutdown_timeout=10, access_log=None, print=None, handler_cancellation=True,
                # A counts query for 100 articles, percent-encoded, is longer than aiohttp's 8 KiB default line.
                max_line_size=65536, max_field_size=16384)


def _worker(settings: Settings) -> None:
    _serve(settings, reuse_port=True)


@contextlib.contextmanager
def _redis_url(settings: Settings) -> Iterator[str]:
    """COMMENTS_REDIS_URL, or the embedded server this data dir already runs, or a new embedded one."""
    if settings.redis_url:
        yield settings.redis_url
        return
    from service.embedded import embedded_redis

    url_file = settings.data_dir / "redis" / "url"
    if url_file.exists() and _reachable(url_file.read_text().strip()):
        yield url_file.read_text().strip()
        return
    with embedded_redis(settings.data_dir) as url:
        url_file.write_text(url + "\n")
        try:
            yield url
        finally:
            url_file.unlink(missing_ok=True)


def _reachable(url: str) -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=0.5):
            return True
    except OSError:
        return False


def run(settings: Settings) -> int:
    settings = settings.with_secret_key()
    workers = settings.workers or os.cpu_count() or 1
    with _redis_url(settings) as url:
        settings = settings.model_copy(update={"redis_url": url})
        print(f"comments-service: http://{settings.host}:{settings.port} ({workers} worker(s), Redis {url})",
              file=sys.stderr, flush=True)
        if workers == 1:
            _serve(settings, reuse_port=False)
            return 0
        metrics_dir = settings.data_dir / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=_worker, args=(settings,), name=f"worker-{i}") for i in range(workers)]
        for process in processes:
            process.start()

        def forward(signum: int, _frame: object) -> None:
            for process in processes:
                if process.pid is not None and process.is_alive():
                    os.kill(process.pid, signal.SIGTERM)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        for process in processes:
            process.join()
        return max((p.exitcode or 0) for p in processes)


async def _tokens(settings: Settings, args: argparse.Namespace, url: str) -> int:
    from service.connections import create_redis
    from service.tokens import Role, Tokens

    redis = create_redis(url, timeout=5)
    try:
        tokens = Tokens(redis)
        if args.action == "create":
            token, info = await tokens.create(Role(args.role), args.name, args.ttl)
            print(token)
            print(f"id={info.id} role={info.role} name={info.name} (shown once; only its hash is kept)",
                  file=sys.stderr)
        elif args.action == "list":
            for info in await tokens.list():
                print(f"{info.id}\t{info.role}\t{info.name}\t{info.created_at}\t{info.expires_at or '-'}")
        else:
            await tokens.revoke(args.id)
            print(f"revoked {args.id}", file=sys.stderr)
    finally:
        await redis.aclose()
    return 0


async def _doctor(url: str, *, repair: bool) -> int:
    from service.connections import create_redis
    from service.doctor import doctor, report

    redis = create_redis(url, timeout=30)
    try:
        findings = await doctor(redis, repair=repair)
    finally:
        await redis.aclose()
    print(report(findings))
    return 1 if findings else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comments-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="serve the API (embedded Redis unless COMMENTS_REDIS_URL is set)")
    token = commands.add_parser("token", help="manage access tokens")
    actions = token.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a token and print it once")
    create.add_argument("--role", required=True, choices=["admin", "moderator", "feed"])
    create.add_argument("--name", required=True)
    create.add_argument("--ttl", type=int, default=None, help="seconds until it expires")
    actions.add_parser("list", help="list tokens (ids, roles, names; never the tokens)")
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")
    doctor = commands.add_parser("doctor", help="find damaged or inconsistent data (exit 1 if any)")
    doctor.add_argument("--repair", action="store_true", help="mend what can be mended, report the rest")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValueError as exc:
        print(f"comments-service: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        return run(settings)
    with _redis_url(settings) as url:
        if args.command == "doctor":
            return asyncio.run(_doctor(url, repair=args.repair))
        return asyncio.run(_tokens(settings, args, url))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
