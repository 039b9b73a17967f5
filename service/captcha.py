"""Captchas: issue, render, verify.

A captcha id is a signed token, so issuing one writes nothing anywhere: 16 random bytes (the nonce), the issue
time, and an HMAC of both under the service secret. Any worker or replica can check an id on its own, and a
failover cannot lose one. The answer is never stored either: it is a keyed function of the nonce (HMAC mapped
onto the alphabet), as unpredictable as one drawn directly, so the picture and the spoken version can be rendered
anywhere, on demand or ahead of demand.

Redis is asked only when a captcha is tried: a marker for its nonce is set with NX (in the submission's gate,
`lua/lib/gate.lua`, or with `consume` when the answer is wrong or came too fast), so each captcha gets exactly one
try, right or wrong. The marker lives as long as the captcha could still be valid.

Rendering (milliseconds of CPU for a picture, far more for audio) runs in a process pool, never on the event
loop. Pictures are rendered ahead of demand into a bounded pool, so bursts of readers are served from memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import secrets
import time
from collections import OrderedDict, deque
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final, Literal

from service import captcha_render, keys
from service.errors import NotFound

log = logging.getLogger(__name__)

ALPHABET: Final = captcha_render.ALPHABET
ANSWER_LENGTH: Final = 5
AudioLang = Literal["vi", "en"]
_NONCE_BYTES: Final = 16
_STAMP_BYTES: Final = 6  # milliseconds since the epoch, big-endian: good until the year 10889
_MAC_BYTES: Final = 12
_TOKEN_BYTES: Final = _NONCE_BYTES + _STAMP_BYTES + _MAC_BYTES
#: How far in the future an issue time may lie (clocks of replicas differ a little).
_CLOCK_SKEW_MS: Final = 5_000


@dataclass(frozen=True, slots=True)
class Issued:
    id: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class Token:
    """A captcha id that this service issued and that has not expired (it may have been used)."""

    nonce: str  #: hex; the answer, the pictures and the single-use marker are keyed by it
    issued_ms: int
    expires_ms: int


def derive_answer(secret: bytes, nonce: str) -> str:
    """Map HMAC bytes onto the alphabet by rejection sampling, so every character is equally likely."""
    limit = 256 - 256 % len(ALPHABET)
    answer: list[str] = []
    counter = 0
    while len(answer) < ANSWER_LENGTH:
        digest = hmac.digest(secret, f"captcha-answer:{counter}:{nonce}".encode(), "sha256")
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

    def put(self, nonce: str, png: bytes) -> None:
        self._items[nonce] = (time.monotonic() + self._ttl, png)
        self._items.move_to_end(nonce)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def get(self, nonce: str) -> bytes | None:
        item = self._items.get(nonce)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[nonce]
            return None
        return item[1]


class Captchas:
    def __init__(self, executor: Executor, *, secret: bytes, ttl: int, min_fill_seconds: float,
                 test_answer: str | None, pool_size: int) -> None:
        self._executor = executor
        self._secret = secret
        self._token_key = hmac.digest(secret, b"captcha-token", "sha256")
        self._ttl = ttl
        self._min_fill_ms = int(min_fill_seconds * 1000)
        self._test_answer = test_answer
        self._pool_size = pool_size
        self._pool: deque[tuple[str, bytes]] = deque()
        self._cache = _ImageCache(capacity=max(1024, 4 * pool_size), ttl=ttl)
        self._pool_wanted = asyncio.Event()

    @property
    def ttl_ms(self) -> int:
        return self._ttl * 1000

    def answer_for(self, nonce: str) -> str:
        return self._test_answer or derive_answer(self._secret, nonce)

    def issue(self, now_ms: int | None = None) -> Issued:
        """A new captcha id; a picture rendered ahead of demand goes with it when the pool has one."""
        if self._pool:
            nonce, png = self._pool.popleft()
            self._cache.put(nonce, png)
            if len(self._pool) < self._pool_size // 2:
                self._pool_wanted.set()
        else:
            nonce = secrets.token_hex(_NONCE_BYTES)
            self._pool_wanted.set()
        issued_ms = int(time.time() * 1000) if now_ms is None else now_ms
        payload = bytes.fromhex(nonce) + issued_ms.to_bytes(_STAMP_BYTES, "big")
        mac = hmac.digest(self._token_key, payload, "sha256")[:_MAC_BYTES]
        return Issued(base64.urlsafe_b64encode(payload + mac).decode().rstrip("="), self._ttl)

    def read(self, captcha_id: str, now_ms: int | None = None) -> Token | None:
        """The token behind an id, or None when this service did not issue it or it has expired."""
        if len(captcha_id) != 46:  # 34 bytes in unpadded base64url
            return None
        try:
            raw = base64.urlsafe_b64decode(captcha_id + "==")
        except (binascii.Error, ValueError):
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) != _TOKEN_BYTES or not hmac.compare_digest(
                mac, hmac.digest(self._token_key, payload, "sha256")[:_MAC_BYTES]):
            return None
        issued_ms = int.from_bytes(payload[_NONCE_BYTES:], "big")
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        expires_ms = issued_ms + self.ttl_ms
        if not issued_ms - _CLOCK_SKEW_MS <= now_ms < expires_ms:
            return None
        return Token(payload[:_NONCE_BYTES].hex(), issued_ms, expires_ms)

    def _live(self, captcha_id: str) -> Token:
        token = self.read(captcha_id)
        if token is None:
            raise NotFound("this captcha does not exist or expired")
        return token

    async def image(self, captcha_id: str) -> bytes:
        token = self._live(captcha_id)
        png = self._cache.get(token.nonce)
        if png is None:
            loop = asyncio.get_running_loop()
            png = await loop.run_in_executor(
                self._executor, captcha_render.render_png, self.answer_for(token.nonce))
            self._cache.put(token.nonce, png)
        return png

    async def audio(self, captcha_id: str, lang: AudioLang) -> bytes:
        token = self._live(captcha_id)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, captcha_render.render_wav, self.answer_for(token.nonce), lang)

    def is_right(self, token: Token, answer: str) -> bool:
        return hmac.compare_digest(normalise_answer(answer).encode(), self.answer_for(token.nonce).encode())

    def filled_too_fast(self, token: Token, now_ms: int | None = None) -> bool:
        """A person needs a few seconds to read a captcha and write a comment; a bot does not."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return now_ms - token.issued_ms < self._min_fill_ms

    def marker(self, token: Token, now_ms: int | None = None) -> tuple[str, int]:
        """The single-use marker's key and how long (ms) it must live: as long as the captcha could be valid."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        return keys.captcha_used(token.nonce), max(1, token.expires_ms - now_ms)

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
            batch = [secrets.token_hex(_NONCE_BYTES) for _ in range(min(missing, 32))]
            try:
                pngs = await asyncio.gather(*(
                    loop.run_in_executor(self._executor, captcha_render.render_png, self.answer_for(nonce))
                    for nonce in batch))
            except Exception:  # a broken pool must not take the service down; rendering on demand still works
                log.exception("pre-rendering captchas failed")
                await asyncio.sleep(5)
                continue
            self._pool.extend(zip(batch, pngs, strict=True))
