"""`comments-service import` and `comments-service export`: their arguments, progress bar and report.

    comments-service import FILE --format disqus|wordpress|isso|commento|json [--articles path|url|REGEX|map.csv]
        [--state approved|pending] [--dry-run] [--feed | --no-feed] [--report report.json]
    comments-service export FILE

Exit status: 0 when everything read was imported, already present or skipped for a reported reason; 1 when some
comments failed to be written; 2 when the file or the arguments are refused (nothing written then).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, cast, get_args

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from service import risk
from service.importing.articles import BadArticleSpec
from service.importing.importer import Importer, Options
from service.importing.source import FileRefused, Format
from service.settings import Settings


def add_commands(commands: Any) -> None:
    """The `import` and `export` subcommands, on the command's subparsers."""
    command = commands.add_parser("import", help="import comments from Disqus, WordPress, Isso, Commento or an "
                                                 "export of ours (run again: adds only what is missing)")
    command.add_argument("file", type=Path)
    command.add_argument("--format", required=True, choices=get_args(Format),
                         help="json: a file of `comments-service export` (a restore)")
    command.add_argument("--articles", default=None, metavar="path|url|REGEX|map.csv",
                         help="how a thread's URL becomes an article id (default: path, its segments joined "
                              "by ':'); a regular expression's group 'article' (or first group); or a CSV of "
                              "url,article_id")
    command.add_argument("--state", choices=["approved", "pending"], default=None,
                         help="pending: queue what the source approved for moderation (default: approved)")
    command.add_argument("--dry-run", action="store_true", help="read, map and report; write nothing")
    command.add_argument("--feed", action=argparse.BooleanOptionalAction, default=None,
                         help="also put imported approvals on the approvals feed (default: no, the site "
                              "backends would otherwise receive years of old comments as new approvals)")
    command.add_argument("--report", type=Path, default=None, help="also write the report as JSON here")
    export = commands.add_parser("export", help="write every comment (every state, with history) and article "
                                                "as JSON, for a backup or a move")
    export.add_argument("file", type=Path)


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "-/s")


class _Bar:
    """A rich progress bar on stderr: counts, rate, elapsed time."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
                                  TimeElapsedColumn(), console=console)
        self._task: Any = None

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._progress.stop()

    def start(self, total: int | None, label: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._task = self._progress.add_task(label, total=total)

    def advance(self, count: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, count)


def _refuse(message: str) -> int:
    print(f"comments-service import: {message}", file=sys.stderr)
    return 2


async def import_command(settings: Settings, args: argparse.Namespace, url: str) -> int:
    from service.connections import create_redis
    from service.scripts import Scripts

    source_format = cast(Format, args.format)
    if source_format == "json" and (args.articles is not None or args.state is not None or args.feed):
        return _refuse("--format json restores an export as it was: --articles, --state and --feed do not apply")
    options = Options(format=source_format, path=args.file, articles=args.articles or "path",
                      state=args.state or "approved", dry_run=args.dry_run, feed=bool(args.feed))
    if not args.file.exists():
        return _refuse(f"no such file: {args.file}")
    redis = None if args.dry_run else create_redis(url, timeout=30)
    console = Console(stderr=True)
    try:
        scripts = None
        if redis is not None:
            scripts = Scripts(redis)
            await scripts.load()
        with _Bar(console) as bar:
            importer = Importer(scripts, settings.secret, risk.fold_blocklist(settings.blocklist), options, bar)
            report = await importer.run()
    except BadArticleSpec as exc:
        return _refuse(str(exc))
    except FileRefused as exc:
        return _refuse(f"{args.file}: {exc}")
    finally:
        if redis is not None:
            await redis.aclose()
    print(report.summary())
    if args.report is not None:
        args.report.write_bytes(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2) + b"\n")
    return 1 if report.failed else 0


async def export_command(args: argparse.Namespace, url: str) -> int:
    from service.connections import create_redis
    from service.exporting import export

    redis = create_redis(url, timeout=30)
    try:
        done = await export(redis, args.file)
    finally:
        await redis.aclose()
    print(f"exported {done.comments} comments and {done.articles} articles to {args.file}", file=sys.stderr)
    return 0
