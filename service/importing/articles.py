"""Which article a thread's URL names: `--articles path|url|REGEX|map.csv`.

- `path` (the default): the URL's path, its segments joined by `:` (`https://bao.vn/thoi-su/bai-7/` ->
  `thoi-su:bai-7`);
- `url`: the host, then the path's segments, joined by `:` (`bao.vn:thoi-su:bai-7`);
- a file ending in `.csv`: rows of `url,article_id` (a header row `url,article_id` is allowed); a URL is looked up
  as given and without a trailing `/`;
- anything else: a regular expression searched in the URL; the article id is its group `article`, else its
  first group, else the whole match. It is the operator's own expression, and it runs only on URLs of at most
  `URL_MAX` characters, so one URL cannot hold it up for long.

Query strings and fragments are not part of the id (`path`, `url`). Whatever comes out must be a valid article
id (`models.ARTICLE_ID_RE`, whole string); a thread whose URL maps to nothing valid is reported and its comments
are skipped.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from service.models import ARTICLE_ID_RE

URL_MAX: Final = 2048


class BadArticleSpec(ValueError):
    """`--articles` names no mode, no readable CSV file, and is no valid regular expression."""


@dataclass(frozen=True, slots=True)
class Mapped:
    article: str | None
    #: Why it maps to nothing: "no_url", "url_too_long", "no_match", "invalid_article_id".
    reason: str = ""


def _trim(url: str) -> str:
    return url.rstrip("/") or url


class ArticleMap:
    def __init__(self, spec: str = "path") -> None:
        self.spec = spec
        self._table: dict[str, str] | None = None
        self._pattern: re.Pattern[str] | None = None
        self._cache: dict[str, Mapped] = {}
        if spec in ("path", "url"):
            return
        if spec.lower().endswith(".csv"):
            self._table = self._read_csv(Path(spec))
            return
        try:
            self._pattern = re.compile(spec)
        except re.error as exc:
            raise BadArticleSpec(f"--articles {spec!r} is not path, url, a .csv file or a regular expression: "
                                 f"{exc}") from None

    @staticmethod
    def _read_csv(path: Path) -> dict[str, str]:
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                rows = list(csv.reader(handle))
        except OSError as exc:
            raise BadArticleSpec(f"cannot read the article map {path}: {exc.strerror or exc}") from None
        table: dict[str, str] = {}
        for number, row in enumerate(rows):
            if len(row) < 2 or (number == 0 and [c.strip().lower() for c in row[:2]] == ["url", "article_id"]):
                continue
            url, article = row[0].strip(), row[1].strip()
            table[url] = article  # checked on use, so that a bad row is reported with the comments it concerns
            table.setdefault(_trim(url), article)
        return table

    def article(self, url: str | None) -> Mapped:
        if not url:
            return Mapped(None, "no_url")
        found = self._cache.get(url)
        if found is None:
            found = self._cache[url] = self._map(url)
        return found

    def _map(self, url: str) -> Mapped:
        url = url.strip()
        if len(url) > URL_MAX:
            return Mapped(None, "url_too_long")
        candidate: str | None
        if self._table is not None:
            candidate = self._table.get(url) or self._table.get(_trim(url))
        elif self._pattern is not None:
            match = self._pattern.search(url)
            if match is None:
                candidate = None
            elif "article" in self._pattern.groupindex:
                candidate = match.group("article")
            else:
                candidate = match.group(1) if self._pattern.groups else match.group(0)
        else:
            parts = urlsplit(url if "//" in url or url.startswith("/") else f"/{url}")
            segments = [s for s in parts.path.split("/") if s]
            if self.spec == "url" and parts.hostname:
                segments.insert(0, parts.hostname)
            candidate = ":".join(segments)
        if not candidate:
            return Mapped(None, "no_match")
        if not ARTICLE_ID_RE.fullmatch(candidate):
            return Mapped(None, "invalid_article_id")
        return Mapped(candidate)
