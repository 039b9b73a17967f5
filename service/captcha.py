"""Captchas: issue, render, verify.

An answer is never stored. It is a keyed function of the captcha id (HMAC with the service secret, mapped
onto the alphabet): the id is 128 bits drawn with `secrets`, so the answer is as unpredictable as one drawn
directly, and any worker or replica can render the picture or the spoken version on demand without the
answer being kept anywhere. Redis keeps, per captcha, the issue time and an HMAC of the answer, with a TTL;
verification deletes the key in the same step it reads it (GETDEL), so each captcha gets exactly one try.

Rendering (milliseconds of CPU for a picture, far more for audio) runs in a process pool, never on the event
loop. Pictures are rendered ahead of demand into a bounded pool, so bursts of readers are served from memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict, deque
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final, Literal

from service import captcha_render, keys
from service.connections import RedisClient
from service.errors import CaptchaInvalid, FieldError, NotFound

log = logging.getLogger(__name__)

ALPHABET: Final = captcha_render.ALPHABET
ANSWER_LENGTH: Final = 5
AudioLang = Literal["vi", "en"]


@dataclass(frozen=True, slots=True)
class Issued:
    id: str
    expires_in: int


def derive_answer(secret: bytes, captcha_id: str) -> str:
    """Map HMAC bytes onto the alphabet by rejection sampling, so every character is equally likely."""
    limit = 256 - 256 % len(ALPHABET)
    answer: list[str] = []
    counter = 0
    while len(answer) < ANSWER_LENGTH:
        digest = hmac.new(secret, f"captcha-answer:{counter}:{captcha_id}".encode(), hashlib.sha256).digest()
        answer.extend(ALPHABET[b % len(ALPHABET)] for b in digest if b < limit)
        counter += 1
    return "".join(answer[:ANSWER_LENGTH])


def normalise_answer(answer: str) -> str:
    return answer.strip().upper()


class _ImageCache:
    """Recently issued or rendered pictures, bounded in count and age."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._capacity = capacity
        self._ttl = ttl

    def put(self, captcha_id: str, png: bytes) -> None:
        self._items[captcha_id] = (time.monotonic() + self._ttl, png)
        self._items.move_to_end(captcha_id)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def get(self, captcha_id: str) -> bytes | None:
        item = self._items.get(captcha_id)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[captcha_id]
            return None
        return item[1]


class Captchas:
    def __init__(self, redis: RedisClient, executor: Executor, *, secret: bytes, ttl: int,
                 min_fill_seconds: float, test_answer: str | None, pool_size: int) -> None:
        self._redis = redis
        self._executor = executor
        self._secret = secret
        self._ttl = ttl
        self._min_fill = min_fill_seconds
        self._test_answer = test_answer
        self._pool_size = pool_size
        self._pool: deque[tuple[str, bytes]] = deque()
        self._cache = _ImageCache(capacity=max(1024, 4 * pool_size), ttl=ttl)
        self._pool_wanted = asyncio.Event()

    def answer_for(self, captcha_id: str) -> str:
        return self._test_answer or derive_answer(self._secret, captcha_id)

    def _answer_mac(self, captcha_id: str, answer: str) -> str:
        return hmac.new(self._secret, f"captcha:{captcha_id}:{answer}".encode(), hashlib.sha256).hexdigest()

    async def issue(self) -> Issued:
        if self._pool:
            captcha_id, png = self._pool.popleft()
            self._cache.put(captcha_id, png)
            if len(self._pool) < self._pool_size // 2:
                self._pool_wanted.set()
        else:
            captcha_id = secrets.token_urlsafe(16)
            self._pool_wanted.set()
        value = f"{int(time.time() * 1000)}:{self._answer_mac(captcha_id, self.answer_for(captcha_id))}"
        await self._redis.set(keys.captcha(captcha_id), value, ex=self._ttl)
        return Issued(captcha_id, self._ttl)

    async def _require_live(self, captcha_id: str) -> None:
        if not await self._redis.exists(keys.captcha(captcha_id)):
            raise NotFound("this captcha does not exist, was used or expired")

    async def image(self, captcha_id: str) -> bytes:
        await self._require_live(captcha_id)
        png = self._cache.get(captcha_id)
        if png is None:
            loop = asyncio.get_running_loop()
            png = await loop.run_in_executor(
                self._executor, captcha_render.render_png, self.answer_for(captcha_id))
            self._cache.put(captcha_id, png)
        return png

    async def audio(self, captcha_id: str, lang: AudioLang) -> bytes:
        await self._require_live(captcha_id)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, captcha_render.render_wav, self.answer_for(captcha_id), lang)

    def check(self, captcha_id: str, answer: str, stored: bytes | str | None) -> None:
        """Judge an answer against what GETDEL returned: the key is read and deleted in one step (in the
        submission's batch), so each captcha gets one try, right or wrong."""
        # Named as a field error too, so a form shows the message beside the code box, in the reader's language.
        field = [FieldError("captcha_answer", "captcha_invalid")]
        if stored is None:
            raise CaptchaInvalid("the captcha does not exist, was already used or expired", fields=field)
        raw = stored.decode() if isinstance(stored, bytes) else stored
        _, _, mac = raw.partition(":")
        expected = self._answer_mac(captcha_id, normalise_answer(answer))
        if not hmac.compare_digest(mac, expected):
            raise CaptchaInvalid("the answer is wrong", fields=field)

    def filled_too_fast(self, stored: bytes | str | None) -> bool:
        """A person needs a few seconds to read a captcha and write a comment; a bot does not."""
        if stored is None or self._min_fill <= 0:
            return False
        raw = stored.decode() if isinstance(stored, bytes) else stored
        issued_ms = int(raw.partition(":")[0])
        return (time.time() * 1000 - issued_ms) < self._min_fill * 1000

    async def keep_pool_filled(self) -> None:
        """Background task: keep up to `pool_size` pictures rendered ahead of demand."""
        if self._pool_size <= 0:
            return
        loop = asyncio.get_running_loop()
        while True:
            missing = self._pool_size - len(self._pool)
            if missing <= 0:
                self._pool_wanted.clear()
                await self._pool_wanted.wait()
                continue
            batch = [secrets.token_urlsafe(16) for _ in range(min(missing, 32))]
            try:
                pngs = await asyncio.gather(*(
                    loop.run_in_executor(self._executor, captcha_render.render_png, self.answer_for(cid))
                    for cid in batch))
            except Exception:  # a broken pool must not take the service down; rendering on demand still works
                log.exception("pre-rendering captchas failed")
                await asyncio.sleep(5)
                continue
            self._pool.extend(zip(batch, pngs, strict=True))
