"""The import at scale: a Disqus export of 100,000 posts, built here, imported by `comments-service import` in a
subprocess; reports the time and the import process's peak memory (its max RSS from `os.wait4`).

    python -m bench.import_bench [--posts 100000]    # alone, with its own redis-server
    python -m bench --scenarios import                # within the benchmark, into the service's Redis

Targets (issue 18): under 60 s and under 300 MB for 100,000 posts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from service.embedded import embedded_redis

POSTS: Final = 100_000
THREADS: Final = 1000
TARGET_SECONDS: Final = 60.0
TARGET_RSS_MB: Final = 300.0


def disqus_file(path: Path, posts: int, threads: int = THREADS) -> Path:
    """`posts` posts over `threads` threads, written as generated: a tenth reply to an earlier post of their
    thread, one in fifty is spam, one in fifty deleted; Vietnamese HTML bodies."""
    start = datetime(2015, 1, 1)
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?>\n<disqus xmlns="http://disqus.com" '
                  'xmlns:dsq="http://disqus.com/disqus-internals">\n')
        for t in range(threads):
            out.write(f'<thread dsq:id="{t}"><id>{t}</id><link>https://bao.example.vn/tin-tuc/bai-{t}</link>'
                      f'<title>Bài {t}</title></thread>\n')
        for n in range(posts):
            parent = f'<parent dsq:id="{n - threads}"/>' if n % 10 == 9 and n >= threads else ""
            out.write(
                f'<post dsq:id="{n}"><id/><message><![CDATA[<p>Bình luận số {n}: bài viết rất hay, cảm ơn tác '
                f'giả đã chia sẻ <a href="https://nguon.vn/{n}">nguồn</a>.</p><p>Ý kiến thứ hai của độc giả '
                f'{n % 977}.</p>]]></message><createdAt>{(start + timedelta(minutes=n)).isoformat()}Z</createdAt>'
                f'<isDeleted>{"true" if n % 50 == 7 else "false"}</isDeleted>'
                f'<isSpam>{"true" if n % 50 == 3 else "false"}</isSpam>'
                f'<author><name>Độc giả {n % 977}</name><email>docgia{n % 977}@example.vn</email></author>'
                f'<ipAddress>203.0.113.{n % 250}</ipAddress><thread dsq:id="{n % threads}"/>{parent}</post>\n')
        out.write("</disqus>\n")
    return path


def measure(workdir: Path, redis_url: str, posts: int = POSTS) -> dict[str, Any]:
    source = disqus_file(workdir / "disqus-bench.xml", posts)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMENTS_")}
    env.update(COMMENTS_REDIS_URL=redis_url, COMMENTS_DATA_DIR=str(workdir), COMMENTS_SECRET_KEY="b" * 48)
    command = [str(Path(sys.executable).parent / "comments-service"), "import", str(source), "--format", "disqus",
               "--report", str(workdir / "import-report.json")]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    # CPU seconds of the import process: on a busy machine the wall time says more about the neighbours.
    found = {"posts": posts, "seconds": round(seconds, 2), "peak_rss_mb": round(rss_mb, 1),
             "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
             "exit_status": process.returncode, "rate_per_second": round(posts / seconds),
             "summary": output.strip().splitlines()[0] if output.strip() else "",
             "targets": {"seconds": TARGET_SECONDS, "peak_rss_mb": TARGET_RSS_MB},
             "met": seconds < TARGET_SECONDS and rss_mb < TARGET_RSS_MB and process.returncode == 0}
    print(f"import: {describe(found)}", file=sys.stderr, flush=True)
    return found


def describe(found: dict[str, Any]) -> str:
    return (f"{found['posts']:,} Disqus posts in {found['seconds']:.1f} s ({found['rate_per_second']:,}/s; "
            f"{found['cpu_seconds']:.0f} s of the import's CPU), peak "
            f"RSS {found['peak_rss_mb']:.0f} MB (targets < {TARGET_SECONDS:.0f} s, < {TARGET_RSS_MB:.0f} MB: "
            f"{'met' if found['met'] else 'NOT met'}); exit {found['exit_status']}; {found['summary']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=POSTS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="comments-import-bench-") as workdir, \
            embedded_redis(Path(workdir) / "redis") as url:
        found = measure(Path(workdir), url, args.posts)
    print(describe(found))
    return 0 if found["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
