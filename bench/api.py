"""A small client of the service's API for the untimed parts: seeding articles, pending comments, tokens.

The timed parts use wrk; this client only prepares their data, with bounded concurrency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeVar

import aiohttp
import orjson

from bench.processes import ADMIN_TOKEN, TEST_ANSWER

T = TypeVar("T")

#: One comment as a reader of a Vietnamese provincial paper might write it (about 420 bytes of UTF-8).
BODY: Final = ("Bài viết rất hay và hữu ích cho bà con trong tỉnh. Tôi mong chính quyền sớm sửa lại đoạn đường "
               "liên xã trước mùa mưa bão, vì năm nào cũng ngập và học sinh đi học rất vất vả. Cảm ơn phóng viên "
               "đã phản ánh kịp thời.")
TITLE: Final = "Ý kiến của bạn đọc"
NAME: Final = "Nguyễn Văn An"
#: Added to `BODY` for the memory scenarios, whose comments carry about 457 bytes of text (issue 19's size).
LONG_EXTRA: Final = " Mong toà soạn tiếp tục theo dõi và đưa tin thêm về tiến độ sửa đường, cảm ơn."


def long_body(serial: int) -> str:
    return f"{BODY}{LONG_EXTRA} (#{serial})"


def submission(captcha_id: str, serial: int, body: str | None = None) -> dict[str, str]:
    """A valid submission; its text differs per serial, as real comments do (the service counts repeats)."""
    return {"name": NAME, "email": f"reader{serial}@example.vn", "title": TITLE,
            "body": body if body is not None else f"{BODY} (#{serial})", "captcha_id": captcha_id,
            "captcha_answer": TEST_ANSWER}


def text_bytes(form: dict[str, str]) -> int:
    """The bytes of what the author wrote: name, email, title and body."""
    return sum(len(form[k].encode()) for k in ("name", "email", "title", "body"))


def submission_line(article_id: str, captcha_id: str, serial: int, long: bool = False) -> str:
    """One line of a wrk replay file (see `bench/lua/replay.lua`). Like the widget, every submission carries an
    Idempotency-Key, so the service does the work a real reader's comment costs."""
    body = orjson.dumps(submission(captcha_id, serial, long_body(serial) if long else None)).decode()
    return f"POST\t/v1/articles/{article_id}/comments\t{body}\tbench-{captcha_id}"


async def bounded(items: Iterable[T], call: Callable[[T], Awaitable[Any]], concurrency: int = 16) -> list[Any]:
    limit = asyncio.Semaphore(concurrency)

    async def one(item: T) -> Any:
        async with limit:
            return await call(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


class Api:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._session is not None
        await self._session.close()

    async def _call(self, method: str, path: str, expect: int, json: Any = None,
                    headers: dict[str, str] | None = None) -> Any:
        assert self._session is not None
        async with self._session.request(method, self.base_url + path, json=json, headers=headers) as response:
            body = await response.read()
            if response.status != expect:
                raise RuntimeError(f"{method} {path}: {response.status} {body[:300]!r}")
            return orjson.loads(body) if body else None

    async def captcha(self) -> str:
        issued = await self._call("POST", "/v1/captchas", 201)
        return str(issued["id"])

    async def submit(self, article_id: str, form: dict[str, str]) -> str:
        accepted = await self._call("POST", f"/v1/articles/{article_id}/comments", 202, json=form)
        return str(accepted["id"])

    async def submit_many(self, article_id: str, serials: range, concurrency: int = 16) -> list[dict[str, str]]:
        """Submit one comment per serial, each with its own captcha; returns the forms sent."""
        async def one(serial: int) -> dict[str, str]:
            form = submission(await self.captcha(), serial)
            await self.submit(article_id, form)
            return form

        return await bounded(serials, one, concurrency)

    async def approve_article(self, article_id: str) -> int:
        """Claim and approve every pending comment of an article; returns how many were approved."""
        approved = 0
        while True:
            claimed = await self._call("POST", "/v1/moderation/claims", 200, headers=self.admin,
                                       json={"limit": 100, "article_id": article_id})
            ids = [c["id"] for c in claimed["comments"]]
            if not ids:
                return approved
            await bounded(ids, lambda i: self._call("POST", f"/v1/moderation/comments/{i}/decision", 200,
                                                    headers=self.admin, json={"action": "approve"}))
            approved += len(ids)

    async def approve_by_filter(self, article_id: str) -> int:
        """Approve every pending comment of an article through the bulk decisions API; returns how many."""
        approved = 0
        while True:
            result = await self._call("POST", "/v1/moderation/decisions", 200, headers=self.admin,
                                      json={"action": "approve", "filter": {"article_id": article_id}})
            approved += sum(1 for o in result["outcomes"] if o["status"] == 200)
            if int(result["matched"]) == 0:
                return approved

    async def etag(self, path: str) -> str:
        assert self._session is not None
        async with self._session.get(self.base_url + path) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path}: {response.status}")
            return response.headers["ETag"]

    async def token(self, role: str, name: str) -> str:
        created = await self._call("POST", "/v1/tokens", 201, headers=self.admin, json={"role": role, "name": name})
        return str(created["token"])

    async def queue_depth(self) -> int:
        stats = await self._call("GET", "/v1/moderation/stats", 200, headers=self.admin)
        return int(stats["queue_depth"])
