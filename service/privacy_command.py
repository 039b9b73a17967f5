"""`comments-service privacy`: a reader's data and retention, from the command line. Output is JSON on stdout.

    comments-service privacy export --email ADDRESS
    comments-service privacy erase (--email ADDRESS | --id ID [--id ID ...]) --mode delete|anonymise
        --requested-by WHO
    comments-service privacy retention [--dry-run]

Exit status: 0 when done, 2 when the arguments are refused (nothing changed then).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from service.settings import Settings

#: Who the privacy log names as having run a command-line erasure.
RUN_BY = "comments-service privacy"


def add_commands(commands: Any) -> None:
    """The `privacy` subcommand and its actions, on the command's subparsers."""
    privacy = commands.add_parser("privacy", help="a reader's data (export, erasure) and retention")
    actions = privacy.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="everything kept about an email address, as JSON")
    export.add_argument("--email", required=True)
    erase = actions.add_parser("erase", help="erase by email or comment ids (delete or anonymise)")
    erase.add_argument("--email", default=None)
    erase.add_argument("--id", action="append", dest="ids", default=None, help="a comment id (repeatable)")
    erase.add_argument("--mode", required=True, choices=["delete", "anonymise"])
    erase.add_argument("--requested-by", required=True, help="who asked, for the log (no personal data)")
    retention = actions.add_parser("retention", help="delete old rejected and spam comments, drop old IP hashes")
    retention.add_argument("--dry-run", action="store_true", help="list exactly what a run would remove")


async def privacy_command(settings: Settings, args: argparse.Namespace, url: str) -> int:
    from service.connections import create_redis
    from service.privacy import ErasureRequest, Privacy
    from service.retention import Retention
    from service.scripts import Scripts

    redis = create_redis(url, timeout=30)
    scripts = Scripts(redis)
    privacy = Privacy(scripts, settings.secret)
    try:
        if args.action == "export":
            try:
                request = ErasureRequest.model_validate({"email": args.email, "mode": "delete", "requested_by": "-"})
            except ValidationError:
                print("comments-service: --email is not a valid address", file=sys.stderr)
                return 2
            assert request.email is not None
            sys.stdout.write((await privacy.export(request.email)).model_dump_json(indent=2) + "\n")
        elif args.action == "erase":
            try:
                request = ErasureRequest.model_validate({"email": args.email, "comment_ids": args.ids,
                                                         "mode": args.mode, "requested_by": args.requested_by})
            except ValidationError as exc:
                print(f"comments-service: {exc.errors(include_url=False, include_input=False)[0]['msg']}",
                      file=sys.stderr)
                return 2
            sys.stdout.write((await privacy.erase(request, RUN_BY)).model_dump_json(indent=2) + "\n")
        else:
            retention = Retention(scripts, privacy, rejected_days=settings.retention_rejected_days,
                                  ip_days=settings.retention_ip_days, pending_days=settings.retention_pending_days)
            sys.stdout.write((await retention.run(dry_run=args.dry_run)).model_dump_json(indent=2) + "\n")
    finally:
        await redis.aclose()
    return 0
