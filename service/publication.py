"""What the public reads: approved comments of an article, counts, and an author's view of their comment.

A hot article is read by thousands of readers, so reads must not cost Redis work proportional to its
comments: each worker keeps the article's version (bumped by every approval, retraction, opening or closing)
for `public_cache_seconds`, and the rendered page bytes per version. A reader's request is then served from
memory; Redis is asked once per article per interval, and pages are rendered again only after a change.

A page is rendered from the records (the text is stored once, in the record: `keys.py`): the article's order set
gives the page's ids, one pipelined HMGET per comment (one round trip) its `d`, `ap` and `s`, and
`records.public_view` the comment as the public sees it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Literal

import orjson

from service import keys, records, text
from service.errors import NotFound, ValidationFailed
from service.models import CommentStatus, iso
from service.scripts import Scripts, as_text, scored

Order = Literal["oldest", "newest"]
PAGE_CACHE_ENTRIES: Final = 4096


@dataclass(frozen=True, slots=True)
class ArticleMeta:
    version: int
    total: int
    open: bool


@dataclass(frozen=True, slots=True)
class Page:
    body: bytes
    etag: str


def _meta(row: list[bytes | None]) -> ArticleMeta:
    version, total, closed = row
    return ArticleMeta(version=int(version or 0), total=int(total or 0), open=closed != b"1")


class Publication:
    def __init__(self, scripts: Scripts, *, cache_seconds: float) -> None:
        self._scripts = scripts
        self._redis = scripts.redis
        self._cache_seconds = cache_seconds
        # Hand-made rather than cachetools' TTLCache/LRUCache (used elsewhere): every public read goes through
        # both, and a cachetools get costs several times a dict's (docs/benchmarks.md), on the path whose
        # throughput targets are not met yet.
        self._meta: dict[str, tuple[float, ArticleMeta]] = {}
        self._pages: OrderedDict[tuple[str, int, str, int, int], Page] = OrderedDict()
        #: Page reads waiting for Redis, by article and parameters (`page_after`).
        self._loading: dict[tuple[str, Order, int, int], asyncio.Future[None]] = {}

    async def metas(self, article_ids: list[str]) -> dict[str, ArticleMeta]:
        now = time.monotonic()
        found: dict[str, ArticleMeta] = {}
        missing = []
        for article_id in article_ids:
            cached = self._meta.get(article_id)
            if cached is not None and cached[0] > now:
                found[article_id] = cached[1]
            else:
                missing.append(article_id)
        if missing:
            batch = self._scripts.batch()
            for article_id in missing:
                batch.command("HMGET", keys.article(article_id), "ver", "count", "closed")
            for article_id, row in zip(missing, await batch.execute(), strict=True):
                meta = _meta(row)
                found[article_id] = meta
                if self._cache_seconds > 0:
                    self._meta[article_id] = (now + self._cache_seconds, meta)
            if len(self._meta) > 100_000:
                self._meta.clear()
        return found

    def etag(self, meta: ArticleMeta, order: Order, limit: int, after: int) -> str:
        return f'"{meta.version}.{order[0]}{limit}.{after}"'

    async def page(self, article_id: str, order: Order, limit: int, cursor: str | None) -> tuple[Page, bool]:
        """The page and whether it came from memory. The cursor is the approval sequence of the last comment
        on the previous page, so pages stay stable while new approvals arrive."""
        return await self.page_after(article_id, order, limit, self.parse_cursor(cursor))

    def cached_page(self, article_id: str, order: Order, limit: int, after: int) -> Page | None:
        """The page from memory, if the article's version is fresh and that page was rendered: no Redis, no
        await (a reader's request on a hot article; `page_after` does the rest). Only ids the callers checked
        are ever cached (`page_after`, `metas`), so an unchecked id finds nothing here: `api.public` looks up
        the path's id before checking it."""
        cached = self._meta.get(article_id)
        if cached is None or cached[0] <= time.monotonic():
            return None
        cache_key = (article_id, cached[1].version, order, limit, after)
        page = self._pages.get(cache_key)
        if page is not None:
            self._pages.move_to_end(cache_key)
        return page

    async def page_after(self, article_id: str, order: Order, limit: int, after: int) -> tuple[Page, bool]:
        """`page` with the cursor read (`parse_cursor`).

        One Redis read for all the requests that find the page stale at once. When an article's cached version
        expires (every `public_cache_seconds`), each request arriving before Redis answers would read the
        article's meta itself, on a Redis connection of its own: at 64 connections about 60 reads a second and as
        many new connections (each ~2 ms of redis-py set-up; docs/benchmarks.md). The first reads; the others wait
        for it, then find the page in the cache it filled (or read themselves, if it failed). A page found in
        memory costs nothing of this."""
        page = self.cached_page(article_id, order, limit, after)
        if page is not None:
            return page, True
        loading_key = (article_id, order, limit, after)
        loading = self._loading.get(loading_key)
        if loading is not None:
            await asyncio.shield(loading)
            return await self._read_page(article_id, order, limit, after)
        self._loading[loading_key] = done = asyncio.get_running_loop().create_future()
        try:
            return await self._read_page(article_id, order, limit, after)
        finally:
            del self._loading[loading_key]
            done.set_result(None)

    async def _read_page(self, article_id: str, order: Order, limit: int, after: int) -> tuple[Page, bool]:
        meta = (await self.metas([article_id]))[article_id]
        cache_key = (article_id, meta.version, order, limit, after)
        cached = self._pages.get(cache_key)
        if cached is not None:
            self._pages.move_to_end(cache_key)
            return cached, True
        page = await self._render(article_id, meta, order, limit, after)
        self._pages[cache_key] = page
        while len(self._pages) > PAGE_CACHE_ENTRIES:
            self._pages.popitem(last=False)
        return page, False

    @staticmethod
    def parse_cursor(cursor: str | None) -> int:
        if cursor is None:
            return 0
        after = text.ascii_number(cursor, max_digits=18)
        if after is None:
            raise ValidationFailed("the cursor is not one this service gave out")
        return after

    async def _render(self, article_id: str, meta: ArticleMeta, order: Order, limit: int, after: int) -> Page:
        order_key = keys.article_order(article_id)
        if order == "oldest":
            low = f"({after}" if after else "-inf"
            rows = await self._redis.execute_command(
                "ZRANGEBYSCORE", order_key, low, "+inf", "WITHSCORES", "LIMIT", 0, limit + 1)
        else:
            high = f"({after}" if after else "+inf"
            rows = await self._redis.execute_command(
                "ZREVRANGEBYSCORE", order_key, high, "-inf", "WITHSCORES", "LIMIT", 0, limit + 1)
        pairs = scored(rows)
        ids = [as_text(member) for member, _ in pairs]
        scores = [score for _, score in pairs]
        more = len(ids) > limit
        ids, scores = ids[:limit], scores[:limit]
        bodies: list[bytes] = []
        if ids:
            batch = self._scripts.batch()
            for comment_id in ids:
                batch.command("HMGET", keys.comment(comment_id), "d", "ap", "s")
            for comment_id, (private, approved, state) in zip(ids, await batch.execute(), strict=True):
                # The order set and the state change in one script: a record not approved here is damage
                # (`comments-service doctor` reports it), left off the page.
                if private is not None and state is not None and as_text(state) == "approved":
                    bodies.append(records.public_json(comment_id, private, records.stored_ms(approved)))
        next_cursor = orjson.dumps(str(int(float(scores[-1])))) if more else b"null"
        body = b"".join((
            b'{"article_id":', orjson.dumps(article_id), b',"open":', b"true" if meta.open else b"false",
            b',"total":', str(meta.total).encode(), b',"comments":[', b",".join(bodies),
            b'],"next_cursor":', next_cursor, b"}"))
        return Page(body=body, etag=self.etag(meta, order, limit, after))

    async def counts(self, article_ids: list[str]) -> dict[str, int]:
        metas = await self.metas(article_ids)
        return {article_id: metas[article_id].total for article_id in article_ids}

    async def status(self, comment_id: str) -> CommentStatus:
        row = await self._redis.hmget(keys.comment(comment_id), ["s", "a", "t", "d"])
        state, article_id, created, private = row
        if state is None or article_id is None or created is None or private is None:
            raise NotFound("no such comment")
        data = orjson.loads(private)
        state_text = as_text(state)
        public_state: Literal["pending", "approved", "rejected"] = \
            "pending" if state_text == "pending" else "approved" if state_text == "approved" else "rejected"
        return CommentStatus(id=comment_id, article_id=as_text(article_id), status=public_state,
                             name=data["name"], title=data["title"], body=data["body"],
                             created_at=iso(int(created)))
