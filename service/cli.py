"""The `comments-service` command: `run` serves the API; `token` manages access tokens; `users` invites, lists
and disables people's accounts and makes password reset links; `doctor` checks (and with `--repair` mends) the
stored data.

Only this module reads the environment (through `Settings.from_environment()`).

`run` is a supervisor: it binds the port (`service.server.listen`, refusing a port in use), starts the embedded
Redis if needed, prints where to go next, and starts the worker processes, which all serve its sockets. Ctrl-C
(SIGINT, sent by a terminal to the whole process group) and SIGTERM stop it cleanly with exit status 0: the
workers and their render processes ignore SIGINT (inherited), and the supervisor alone turns either signal into
a SIGTERM for each worker, which then finishes its requests and cleans up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import multiprocessing
import os
import shlex
import shutil
import signal
import socket
import sys
from collections.abc import Iterator
from multiprocessing.connection import wait
from typing import cast

from service.settings import Settings, SettingsError

USAGE = """Serve the comments API, manage its access tokens, or check its stored data.

Configuration comes from COMMENTS_* environment variables (see README.md, "Configuration"); without
COMMENTS_REDIS_URL the service starts its own redis-server under COMMENTS_DATA_DIR (./var)."""
EXAMPLES = """examples:
  comments-service run
  comments-service token create --role moderator --name "Lan"
  comments-service token list
  comments-service token revoke <id>
  comments-service users invite --role moderator --name Lan
  comments-service users list
  comments-service users disable Lan
  comments-service users reset --name Lan"""


def _worker(settings: Settings, sockets: list[socket.socket]) -> None:
    """One worker process: the app on the supervisor's sockets, until SIGTERM (SIGINT is ignored, inherited)."""
    from service import logs
    from service.app import create_app
    from service.server import serve

    logs.configure(settings.log_level)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(create_app(settings), sockets, head_timeout=settings.http_head_timeout_seconds,
                      keepalive_timeout=settings.http_keepalive_timeout_seconds, settle=True))


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


@contextlib.contextmanager
def _terminal_job() -> Iterator[None]:
    """Under `make run`, a terminal's Ctrl-C reaches make too (the whole foreground process group), and make
    then reports "*** Interrupt" and fails whatever the service does. So when started inside another program's
    foreground group on a terminal, the supervisor takes a process group of its own and makes it the terminal's
    foreground group, as a shell does for a job: Ctrl-C reaches only the service, which stops cleanly, and
    make sees exit status 0. The terminal goes back to the previous group on exit."""
    try:
        fd = sys.stdin.fileno()
        inside_another_job = (os.isatty(fd) and os.getpgrp() != os.getpid()
                              and os.tcgetpgrp(fd) == os.getpgrp())
    except (OSError, ValueError):
        inside_another_job = False
    if not inside_another_job:
        yield
        return
    previous = os.getpgrp()
    # Changing the terminal's foreground group from a group that is not (yet) it raises SIGTTOU otherwise.
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.setpgid(0, 0)
        os.tcsetpgrp(fd, os.getpgrp())
    except OSError:
        pass
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.tcsetpgrp(fd, previous)


def _banner(settings: Settings, sockets: list[socket.socket], workers: int, redis_url: str) -> str:
    """What `run` prints first: where the demo is and the one command a newcomer needs next."""
    host, port = sockets[0].getsockname()[:2]
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:  # 0.0.0.0 or ::, reachable locally on loopback
            host = "127.0.0.1"
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    command = sys.argv[0] if os.path.basename(sys.argv[0]) == "comments-service" else "comments-service"
    env = " ".join(f"{name}={shlex.quote(os.environ[name])}" for name in ("COMMENTS_DATA_DIR", "COMMENTS_REDIS_URL")
                   if os.environ.get(name))
    token = f"{env + ' ' if env else ''}{shlex.quote(command)} token create --role moderator --name \"Your Name\""
    return (f"comments-service: serving {base} ({workers} worker{'s' if workers > 1 else ''}, Redis {redis_url})\n"
            f"  Demo page: {base}/demo/articles/bai-viet-1\n"
            f"  Next step: create a moderator token (in another terminal, from this directory):\n"
            f"    {token}\n"
            f"  then send it as 'Authorization: Bearer <token>' to {base}/v1/moderation/queue "
            f"(API description: {base}/openapi.json). Stop with Ctrl-C.\n"
            f"  Moderator console: {base}/moderation/ (invite yourself: "
            f"{token.replace('token create --role moderator', 'users invite --role admin')}, then open the link)")


def run(settings: Settings) -> int:
    from service.server import PortInUse, listen

    workers = settings.workers or os.cpu_count() or 1
    try:
        sockets = listen(settings.host, settings.port)
    except PortInUse as exc:
        print(f"comments-service: {exc.strerror}: another comments-service (or another program) listens there. "
              f"Stop it, or choose another port with COMMENTS_PORT.", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"comments-service: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    # SIGINT ignored from here: the workers and their render processes inherit that, so a terminal's Ctrl-C
    # (sent to the whole process group) reaches only this supervisor, which stops them in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopping = False
    try:
        settings = settings.with_secret_key()
        with _terminal_job(), _redis_url(settings) as url:
            settings = settings.model_copy(update={"redis_url": url})
            print(_banner(settings, sockets, workers, url), file=sys.stderr, flush=True)
            metrics_dir = settings.data_dir / "prometheus"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
            context = multiprocessing.get_context("spawn")
            processes = [context.Process(target=_worker, args=(settings, sockets), name=f"worker-{i}")
                         for i in range(workers)]
            for process in processes:
                process.start()

            def stop(_signum: int, _frame: object) -> None:
                nonlocal stopping
                stopping = True
                for process in processes:
                    if process.pid is not None and process.exitcode is None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(process.pid, signal.SIGTERM)

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            running = {process.sentinel: process for process in processes}
            failed = False
            while running:
                for sentinel in wait(list(running)):
                    process = running.pop(cast(int, sentinel))
                    process.join()
                    # A worker stopped by our SIGTERM before it could install its handler exits by the signal.
                    clean = process.exitcode == 0 or (stopping and process.exitcode == -signal.SIGTERM)
                    if not clean and not stopping:
                        print(f"comments-service: {process.name} exited with {process.exitcode}; stopping",
                              file=sys.stderr, flush=True)
                        stop(signal.SIGTERM, None)
                    failed = failed or not clean
            return 1 if failed else 0
    finally:
        for sock in sockets:
            sock.close()


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


async def _users(settings: Settings, args: argparse.Namespace, url: str) -> int:
    """People's accounts: an invitation prints its one-time link (valid 72 hours) on stdout, a password reset its
    one-time link (valid 24 hours)."""
    from service.accounts import AccountRole, Accounts
    from service.connections import create_redis
    from service.errors import ServiceError
    from service.scripts import Scripts

    redis = create_redis(url, timeout=5)
    people = Accounts(redis, Scripts(redis), idle_seconds=settings.session_idle_seconds,
                      lifetime_seconds=settings.session_lifetime_seconds,
                      admin_totp_required=settings.admin_totp_required,
                      limit_account=settings.signin_limit_account, limit_client=settings.signin_limit_client)
    try:
        if args.action == "invite":
            made = await people.invite(args.name, AccountRole(args.role), "comments-service users invite")
            print(f"{settings.public_origin}/moderation/invite/{made.token}")
            print(f"invited {made.name} as {made.role}; the link works once, for 72 hours (shown once; only its "
                  f"hash is kept)", file=sys.stderr)
        elif args.action == "reset":
            reset = await people.issue_reset(args.name, "comments-service users reset")
            print(f"{settings.public_origin}/moderation/reset/{reset.token}")
            print(f"a password reset link for {reset.name}: it works once, for 24 hours, and voids any earlier one; "
                  f"their sessions end when it is used (shown once; only its hash is kept)", file=sys.stderr)
        elif args.action == "list":
            for account in await people.list():
                print(f"{account.name}\t{account.role}\t{'disabled' if account.disabled else 'active'}\t"
                      f"{'totp' if account.totp else '-'}")
        else:
            account = await people.disable(args.name)
            print(f"disabled {account.name}; their sessions have ended", file=sys.stderr)
    except ServiceError as exc:
        print(f"comments-service: {exc.detail or exc.code}", file=sys.stderr)
        return 1
    finally:
        people.close()
        await redis.aclose()
    return 0


async def _doctor(url: str, *, repair: bool) -> int:
    from service.connections import create_redis
    from service.doctor import Doctor, report

    redis = create_redis(url, timeout=30)
    try:
        examined = Doctor(redis, repair=repair)
        findings = await examined.examine()
    finally:
        await redis.aclose()
    print(report(findings, lag=sum(examined.lag.values())))
    return 1 if findings else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comments-service", description=USAGE, epilog=EXAMPLES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    users = commands.add_parser("users", help="manage people's accounts (moderators and admins)")
    people = users.add_subparsers(dest="action", required=True)
    invite = people.add_parser("invite", help="invite a person: prints a one-time link, valid 72 hours")
    invite.add_argument("--role", required=True, choices=["moderator", "admin"])
    invite.add_argument("--name", required=True, help="2 to 40 letters, digits, '.', '_' or '-'")
    reset = people.add_parser("reset", help="a one-time password reset link for an enabled account, valid 24 hours")
    reset.add_argument("--name", required=True, help="the account's name (case does not matter)")
    people.add_parser("list", help="list accounts (name, role, state, second factor)")
    disable = people.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("name")
    from service.importing.command import add_commands

    add_commands(commands)  # import, export
    from service.privacy_command import add_commands as add_privacy_commands

    add_privacy_commands(commands)  # privacy export|erase|retention
    doctor = commands.add_parser("doctor", help="find damaged or inconsistent data (exit 1 if any)")
    doctor.add_argument("--repair", action="store_true", help="mend what can be mended, report the rest")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_environment()
    except SettingsError as exc:
        print(f"comments-service: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    if args.command == "run":
        return run(settings)
    with _redis_url(settings) as url:
        if args.command == "doctor":
            return asyncio.run(_doctor(url, repair=args.repair))
        if args.command in ("import", "export"):
            from service.importing.command import export_command, import_command

            if args.command == "export":
                return asyncio.run(export_command(args, url))
            return asyncio.run(import_command(settings.with_secret_key(), args, url))
        if args.command == "users":
            return asyncio.run(_users(settings, args, url))
        if args.command == "privacy":
            from service.privacy_command import privacy_command

            return asyncio.run(privacy_command(settings.with_secret_key(), args, url))
        return asyncio.run(_tokens(settings, args, url))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
