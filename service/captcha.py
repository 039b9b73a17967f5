"""Captchas: issue, render, verify.

A captcha id is a signed token, so issuing one stores nothing of it: 16 random bytes (the nonce), the issue
time, and an HMAC of both under the service secret. Any worker or replica can check an id on its own, and a
failover cannot lose one. The answer is never stored either: it is a keyed function of the nonce (HMAC mapped
onto the alphabet), as unpredictable as one drawn directly, so the picture and the spoken version can be rendered
anywhere, on demand or ahead of demand.

Redis keeps no captcha, only what is counted about them: when a captcha is tried, a marker for its nonce is set
with NX (in the submission's gate, `lua/lib/gate.lua`, or with `consume` when the answer is wrong or came too
fast), so each captcha gets exactly one try, right or wrong; the marker lives as long as the captcha could still
be valid. Issuing counts against the client's issuance limit, and a captcha's audio is kept once rendered (below).

Rendering (milliseconds of CPU for a picture, tens of milliseconds for audio) runs in a process pool, never on
the event loop. Pictures are rendered ahead of demand into a bounded pool, so bursts of readers are served from
memory. The work is bounded per worker process: each kind (image, audio) has its own number of renders in the
pool at once and of requests waiting for one; beyond that a request is refused at once (503 with Retry-After),
so a flood of one kind cannot starve the other or pile up work. Issuing is limited per client address.

A captcha's audio is rendered once and kept in Redis for the captcha's remaining life (`keys.captcha_audio`),
so every request, to any worker or replica, gets the same bytes and fetching it again gives a listener-bot
nothing new to vote with. Rendering it again from a seed would avoid storing it, but libespeak-ng does not
reproduce a rendering (it keeps state between calls), and a stored clip costs one render however often it is
fetched. The clip is about 60 KB and lives at most the captcha's TTL; the audio bound limits how fast any
worker can add them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
import math
import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final, Generic, Literal, TypeVar

from redis.exceptions import RedisError

from service import captcha_audio, captcha_render, clock, keys
from service.errors import NotFound, RateLimited, Unavailable
from service.metrics import Metrics
from service.scripts import Scripts

log = logging.getLogger(__name__)

ALPHABET: Final = captcha_render.ALPHABET
ANSWER_LENGTH: Final = 5
AudioLang = Literal["vi", "en"]
_NONCE_BYTES: Final = 16
_STAMP_BYTES: Final = 6  # milliseconds since the epoch, big-endian: good until the year 10889
_MAC_BYTES: Final = 12
_TOKEN_BYTES: Final = _NONCE_BYTES + _STAMP_BYTES + _MAC_BYTES
#: A token's one spelling: 34 bytes in unpadded base64url are 46 characters, the last holding the last byte's
#: two low bits and four zero bits (so one of "AQgw").
_TOKEN_ID: Final = re.compile(r"[A-Za-z0-9_-]{45}[AQgw]")
#: How far in the future an issue time may lie (clocks of replicas differ a little).
_CLOCK_SKEW_MS: Final = 5_000
RenderKind = Literal["image", "audio"]
#: Requests that may wait for a render slot, per render process, beyond those rendering (per worker process).
#: An audio render takes about 30 ms, a picture a few: a full queue clears well within a second.
IMAGE_QUEUE_PER_PROCESS: Final = 64
AUDIO_QUEUE_PER_PROCESS: Final = 8
#: Seconds a refused client is told to wait.
BUSY_RETRY_AFTER: Final = 1
_K = TypeVar("_K", bound=Hashable)


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


class _MemoryCache(Generic[_K]):
    """Recently issued or rendered pictures (or audio clips), bounded in count and age."""

    def __init__(self, capacity: int, ttl: float) -> None:
        self._items: OrderedDict[_K, tuple[float, bytes]] = OrderedDict()
        self._capacity = capacity
        self._ttl = ttl

    def put(self, key: _K, data: bytes) -> None:
        self._items[key] = (time.monotonic() + self._ttl, data)
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def get(self, key: _K) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[key]
            return None
        return item[1]


class _RenderBound:
    """At most `running` renders of one kind in the pool at once and `waiting` requests queued for a turn (in
    this process, not in the pool's queue, so another kind's renders never wait behind them)."""

    def __init__(self, running: int, waiting: int) -> None:
        self._turns = asyncio.Semaphore(running)
        self._admitted = 0
        self._limit = running + waiting

    @contextlib.asynccontextmanager
    async def turn(self, *, may_refuse: bool = True) -> AsyncIterator[None]:
        """Raises `Unavailable` at once when the queue is full, unless `may_refuse` is false (pre-rendering)."""
        if may_refuse and self._admitted >= self._limit:
            raise Unavailable("too many captchas are being drawn or spoken right now; try again in a moment",
                              retry_after=BUSY_RETRY_AFTER)
        self._admitted += 1
        try:
            async with self._turns:
                yield
        finally:
            self._admitted -= 1


class Captchas:
    def __init__(self, executor: Executor, *, secret: bytes, ttl: int, min_fill_seconds: float,
                 test_answer: str | None, pool_size: int, render_processes: int = 1, scripts: Scripts | None = None,
                 issue_limit: tuple[int, int] | None = None, metrics: Metrics | None = None) -> None:
        """`scripts`: Redis, for the issue limit and the rendered audio (without it, audio is kept in this
        process only); `issue_limit`: captchas per client and window (seconds), None for no limit."""
        self._executor = executor
        self._scripts = scripts
        self._issue_limit = issue_limit
        self._metrics = metrics
        self._bounds: dict[RenderKind, _RenderBound] = {
            "image": _RenderBound(render_processes, IMAGE_QUEUE_PER_PROCESS * render_processes),
            # Audio takes at most half the pool (one process of one), so pictures always have a process.
            "audio": _RenderBound(max(1, render_processes // 2), AUDIO_QUEUE_PER_PROCESS * render_processes),
        }
        self._image_batch = render_processes
        self._audio = _MemoryCache[tuple[str, AudioLang]](capacity=256, ttl=ttl)
        self._audio_renders: dict[tuple[str, AudioLang], asyncio.Task[bytes]] = {}
        self._secret = secret
        self._token_key = hmac.digest(secret, b"captcha-token", "sha256")
        self._ttl = ttl
        self._min_fill_ms = int(min_fill_seconds * 1000)
        self._test_answer = test_answer
        self._pool_size = pool_size
        self._pool: deque[tuple[str, bytes]] = deque()
        self._cache = _MemoryCache[str](capacity=max(1024, 4 * pool_size), ttl=ttl)
        self._pool_wanted = asyncio.Event()

    @property
    def ttl_ms(self) -> int:
        return self._ttl * 1000

    def answer_for(self, nonce: str) -> str:
        return self._test_answer or derive_answer(self._secret, nonce)

    async def issue_to(self, client: str) -> Issued:
        """`issue`, within the client's limit (`client`: the keyed hash of its address). Raises RateLimited.

        When Redis cannot be asked, the captcha is issued anyway: ids are signed tokens, so readers keep getting
        captchas while Redis is away, and the render bounds still cap the work a flood can cause."""
        if self._scripts is not None and self._issue_limit is not None:
            limit, window = self._issue_limit
            try:
                count, ttl_ms = await self._scripts.run(
                    "rate_limit", [keys.rate_limit("captcha", client, window)], [window * 1000])
            except RedisError as exc:
                log.warning("captcha issue limit not checked: %s", exc)
            else:
                if count > limit:
                    self._count_refusal("issue_rate")
                    raise RateLimited("too many captchas for this address",
                                      retry_after=max(1, math.ceil(ttl_ms / 1000)))
        return self.issue()

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
        issued_ms = clock.now_ms() if now_ms is None else now_ms
        payload = bytes.fromhex(nonce) + issued_ms.to_bytes(_STAMP_BYTES, "big")
        mac = hmac.digest(self._token_key, payload, "sha256")[:_MAC_BYTES]
        return Issued(base64.urlsafe_b64encode(payload + mac).decode().rstrip("="), self._ttl)

    def read(self, captcha_id: str, now_ms: int | None = None) -> Token | None:
        """The token behind an id, or None when this service did not issue it or it has expired."""
        # The decoder skips characters outside its alphabet and reads "+/" like "-_": only the one spelling
        # this service writes names the token (whole-string validation, like every other id). `_TOKEN_ID` is that
        # spelling (checked against encoding the decoded bytes again, which cost several µs a submission:
        # docs/benchmarks.md; tests/test_submission_fast_paths.py compares the two).
        if not _TOKEN_ID.fullmatch(captcha_id):
            return None
        try:
            raw = base64.urlsafe_b64decode(captcha_id + "==")
        except (binascii.Error, ValueError):  # pragma: no cover - the pattern admits only what decodes
            return None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if len(raw) != _TOKEN_BYTES or not hmac.compare_digest(
                mac, hmac.digest(self._token_key, payload, "sha256")[:_MAC_BYTES]):
            return None
        issued_ms = int.from_bytes(payload[_NONCE_BYTES:], "big")
        now_ms = clock.now_ms() if now_ms is None else now_ms
        expires_ms = issued_ms + self.ttl_ms
        if not issued_ms - _CLOCK_SKEW_MS <= now_ms < expires_ms:
            return None
        return Token(payload[:_NONCE_BYTES].hex(), issued_ms, expires_ms)

    def _live(self, captcha_id: str) -> Token:
        token = self.read(captcha_id)
        if token is None:
            raise NotFound("this captcha does not exist or expired")
        return token

    def _count_refusal(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.captcha_refusals.labels(reason).inc()

    async def _render(self, kind: RenderKind, render: Callable[..., bytes], *args: object,
                      may_refuse: bool = True) -> bytes:
        """One render in the pool, within its kind's bound; counted and timed (time in the pool, not waiting)."""
        try:
            async with self._bounds[kind].turn(may_refuse=may_refuse):
                started = time.perf_counter()
                data = await asyncio.get_running_loop().run_in_executor(self._executor, render, *args)
                seconds = time.perf_counter() - started
        except Unavailable:
            self._count_refusal(f"{kind}_queue")
            raise
        if self._metrics is not None:
            self._metrics.captcha_renders.labels(kind).inc()
            self._metrics.captcha_render_seconds.labels(kind).observe(seconds)
        return data

    async def image(self, captcha_id: str) -> bytes:
        token = self._live(captcha_id)
        png = self._cache.get(token.nonce)
        if png is None:
            png = await self._render("image", captcha_render.render_png, self.answer_for(token.nonce))
            self._cache.put(token.nonce, png)
        return png

    async def audio(self, captcha_id: str, lang: AudioLang) -> bytes:
        """The captcha's audio: the same bytes for its whole life, rendered once (concurrent requests in this
        process share one render; across processes the first one stored in Redis wins)."""
        token = self._live(captcha_id)
        key = (token.nonce, lang)
        wav = self._audio.get(key)
        if wav is not None:
            return wav
        task = self._audio_renders.get(key)
        if task is None:
            task = asyncio.ensure_future(self._audio_once(token, lang))
            self._audio_renders[key] = task
            task.add_done_callback(lambda done: self._audio_done(key, done))
        # Shielded: a reader who hangs up does not cancel the render that others are waiting for.
        return await asyncio.shield(task)

    def _audio_done(self, key: tuple[str, AudioLang], task: asyncio.Task[bytes]) -> None:
        self._audio_renders.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure nobody waited for is not logged as unretrieved

    async def _audio_once(self, token: Token, lang: AudioLang) -> bytes:
        stored_key = keys.captcha_audio(token.nonce, lang)
        redis = self._scripts.redis if self._scripts is not None else None
        if redis is not None:
            stored = await redis.get(stored_key)
            if isinstance(stored, bytes):
                self._audio.put((token.nonce, lang), stored)
                return stored
        try:
            wav = await self._render("audio", captcha_audio.render_wav, self.answer_for(token.nonce), lang)
        except captcha_audio.AudioUnavailable as exc:
            log.error("audio captcha not rendered: %s", exc)
            raise Unavailable("audio captchas cannot be spoken right now; use the picture", retry_after=60) from exc
        if redis is not None:
            life_ms = token.expires_ms - clock.now_ms()
            if life_ms <= 0:
                raise NotFound("this captcha does not exist or expired")
            if not await redis.set(stored_key, wav, px=life_ms, nx=True):
                # Another worker stored its rendering first: everyone gets that one.
                winner = await redis.get(stored_key)
                wav = winner if isinstance(winner, bytes) else wav
        self._audio.put((token.nonce, lang), wav)
        return wav

    def is_right(self, token: Token, answer: str) -> bool:
        return hmac.compare_digest(normalise_answer(answer).encode(), self.answer_for(token.nonce).encode())

    def filled_too_fast(self, token: Token, now_ms: int | None = None) -> bool:
        """A person needs a few seconds to read a captcha and write a comment; a bot does not."""
        now_ms = clock.now_ms() if now_ms is None else now_ms
        return now_ms - token.issued_ms < self._min_fill_ms

    def marker(self, token: Token, now_ms: int | None = None) -> tuple[str, int]:
        """The single-use marker's key and how long (ms) it must live: as long as the captcha could be valid."""
        now_ms = clock.now_ms() if now_ms is None else now_ms
        return keys.captcha_used(token.nonce), max(1, token.expires_ms - now_ms)

    async def keep_pool_filled(self) -> None:
        """Background task: keep up to `pool_size` pictures rendered ahead of demand."""
        if self._pool_size <= 0:
            return
        while True:
            missing = self._pool_size - len(self._pool)
            if missing <= 0:
                self._pool_wanted.clear()
                await self._pool_wanted.wait()
                continue
            # As many at once as the pool has processes, so a picture requested meanwhile waits for one batch at most.
            batch = [secrets.token_hex(_NONCE_BYTES) for _ in range(min(missing, self._image_batch))]
            try:
                pngs = await asyncio.gather(*(
                    self._render("image", captcha_render.render_png, self.answer_for(nonce), may_refuse=False)
                    for nonce in batch))
            except Exception:  # a broken pool must not take the service down; rendering on demand still works
                log.exception("pre-rendering captchas failed")
                await asyncio.sleep(5)
                continue
            self._pool.extend(zip(batch, pngs, strict=True))
