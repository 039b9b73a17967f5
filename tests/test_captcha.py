"""Captchas over real HTTP and a real Redis: issue, picture, audio, one try, expiry, and no plaintext answer."""

from __future__ import annotations

import asyncio
import io
import os
import time
import wave
from collections.abc import Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image
from redis.asyncio import Redis
from redis_dump import dump_redis
from support import make_app

from service import keys
from service.appkeys import CAPTCHAS, RENDER_POOL
from service.captcha import ALPHABET, ANSWER_LENGTH, Captchas, derive_answer, normalise_answer
from service.settings import Settings

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[Any], Coroutine[Any, Any, Client]]
ARTICLE = "bai-viet-1"


def _form(captcha_id: str, answer: str, **changes: str) -> dict[str, str]:
    return {"name": "Lan", "email": "lan@example.com", "title": "Ý kiến", "body": "Bài viết hay.",
            "captcha_id": captcha_id, "captcha_answer": answer, **changes}


async def _issue(client: Client) -> str:
    response = await client.post("/v1/captchas")
    assert response.status == 201
    captcha_id: str = (await response.json())["id"]
    return captcha_id


async def _submit(client: Client, captcha_id: str, answer: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(f"/v1/articles/{ARTICLE}/comments", json=_form(captcha_id, answer))
    return response.status, await response.json(content_type=None)


@pytest.fixture
async def real_client(aiohttp_client: MakeClient, settings: Settings) -> Client:
    """The app with real, derived answers (no test answer)."""
    return await aiohttp_client(make_app(settings.model_copy(update={"captcha_test_answer": None})))


async def test_issue_shape(client: Client, redis: Redis) -> None:
    before = await dump_redis(redis)
    response = await client.post("/v1/captchas")
    assert response.status == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert set(body) == {"id", "image_url", "audio_url", "expires_in"}
    assert body["image_url"] == f"/v1/captchas/{body['id']}.png"
    assert body["audio_url"] == f"/v1/captchas/{body['id']}.wav"
    assert body["expires_in"] == 300
    assert len(body["id"]) >= 22  # 128 bits from secrets
    # A captcha id is a signed token: issuing one writes nothing to Redis.
    assert await dump_redis(redis) == before


async def test_picture_is_a_png_that_is_not_cached(client: Client) -> None:
    captcha_id = await _issue(client)
    response = await client.get(f"/v1/captchas/{captcha_id}.png")
    assert response.status == 200
    assert response.content_type == "image/png"
    assert response.headers["Cache-Control"] == "no-store"
    with Image.open(io.BytesIO(await response.read())) as image:
        assert image.format == "PNG"
        assert image.size[0] > image.size[1] > 20


async def test_audio_is_a_wav_vietnamese_by_default_and_english_on_request(client: Client) -> None:
    captcha_id = await _issue(client)
    vi = await client.get(f"/v1/captchas/{captcha_id}.wav")
    en = await client.get(f"/v1/captchas/{captcha_id}.wav?lang=en")
    for response in (vi, en):
        assert response.status == 200
        assert response.content_type == "audio/wav"
        assert response.headers["Cache-Control"] == "no-store"
    vi_wav, en_wav = await vi.read(), await en.read()
    for data in (vi_wav, en_wav):
        with wave.open(io.BytesIO(data)) as clip:
            assert clip.getnframes() > clip.getframerate() // 2  # at least half a second of speech
    assert vi_wav != en_wav
    bad = await client.get(f"/v1/captchas/{captcha_id}.wav?lang=fr")
    assert bad.status == 422
    assert bad.content_type == "application/problem+json"


async def test_unknown_captcha_is_a_404_problem(client: Client) -> None:
    issued = await _issue(client)
    # One character changed: the signature no longer matches, so this service never issued it.
    forged = issued[:10] + ("A" if issued[10] != "A" else "B") + issued[11:]
    for captcha_id in ("no-such-captcha-id-0000", forged):
        for suffix in ("png", "wav"):
            response = await client.get(f"/v1/captchas/{captcha_id}.{suffix}")
            assert response.status == 404
            assert response.content_type == "application/problem+json"
            assert (await response.json())["code"] == "not_found"
    status, problem = await _submit(client, forged, "ABCDE")
    assert status == 422 and problem["code"] == "captcha_invalid"


async def test_a_captcha_id_has_one_spelling(client: Client) -> None:
    """The base64 decoder skips stray characters and reads "+/" like "-_": those other spellings of an issued id
    are not the id (whole-string validation, like every other id)."""
    issued = await _issue(client)
    assert (await client.get(f"/v1/captchas/{issued}.png")).status == 200
    respelled = [issued + "=", issued[:5] + "." + issued[5:], issued.replace("-", "+").replace("_", "/")]
    for other in {s for s in respelled if s != issued}:
        response = await client.get(f"/v1/captchas/{other}.png")
        assert response.status in (404, 422), other
        status, problem = await _submit(client, other, "ABCDE")
        assert status == 422 and problem["code"] in ("captcha_invalid", "validation_failed"), other


def test_derived_answers_use_the_alphabet_without_look_alikes() -> None:
    # Issue 13 took out every character with a look-alike (tests/test_captcha_readability.py lists the pairs).
    assert not set(ALPHABET) & set("0OQ1IL5Z8UY4G67T")
    assert len(set(ALPHABET)) == len(ALPHABET) == 20
    answers = [derive_answer(b"k" * 32, f"captcha-{i}") for i in range(2000)]
    assert all(len(a) == ANSWER_LENGTH == 5 and set(a) <= set(ALPHABET) for a in answers)
    assert len(set(answers)) > 1990  # keyed and spread out, not a constant
    seen = {ch for a in answers for ch in a}
    assert seen == set(ALPHABET)  # every character can occur
    assert derive_answer(b"k" * 32, "x") == derive_answer(b"k" * 32, "x")
    assert derive_answer(b"k" * 32, "x") != derive_answer(b"j" * 32, "x") or \
        derive_answer(b"k" * 32, "y") != derive_answer(b"j" * 32, "y")


async def test_answer_for_without_a_test_answer_is_derived(real_client: Client) -> None:
    captchas = real_client.app[CAPTCHAS]
    captcha_id = await _issue(real_client)
    token = captchas.read(captcha_id)
    assert token is not None
    answer = captchas.answer_for(token.nonce)
    assert answer != "ABCDE" and len(answer) == 5 and set(answer) <= set(ALPHABET)
    assert normalise_answer(f"  {answer.lower()}\t") == answer


async def test_redis_never_holds_the_plaintext_answer(real_client: Client, redis: Redis) -> None:
    captchas: Captchas = real_client.app[CAPTCHAS]
    response = await real_client.post("/v1/captchas")
    body = await response.json()
    captcha_id = body["id"]
    before = await dump_redis(redis)
    token = captchas.read(captcha_id)
    assert token is not None
    answer = captchas.answer_for(token.nonce)
    assert answer not in str(body) and answer.lower() not in str(body).lower().replace(captcha_id.lower(), "")
    # Rendering goes through the same derivation; nothing is written on the way.
    assert (await real_client.get(f"/v1/captchas/{captcha_id}.png")).status == 200
    assert await dump_redis(redis) == before

    status, accepted = await _submit(real_client, captcha_id, f"  {answer.lower()} ")
    assert status == 202, accepted
    everything = await dump_redis(redis)
    assert any(keys.comment(accepted["id"]).encode() == item for item in everything)
    for item in everything:
        assert answer.encode() not in item.upper(), item


async def test_one_try_per_captcha_a_wrong_answer_consumes_it(client: Client, redis: Redis) -> None:
    captcha_id = await _issue(client)
    status, problem = await _submit(client, captcha_id, "WRONG")
    assert status == 422 and problem["code"] == "captcha_invalid"
    token = client.app[CAPTCHAS].read(captcha_id)
    assert token is not None
    # The single-use marker lives as long as the captcha could still be valid, no longer.
    assert 0 < await redis.pttl(keys.captcha_used(token.nonce)) <= 300_000
    status, problem = await _submit(client, captcha_id, "ABCDE")
    assert status == 422 and problem["code"] == "captcha_invalid"
    assert await _stored_comment_count(redis) == 0


async def _stored_comment_count(redis: Redis) -> int:
    return len([key async for key in redis.scan_iter(match="cm:{p*}:c:*")])


async def test_a_right_answer_is_also_used_up(client: Client, redis: Redis) -> None:
    captcha_id = await _issue(client)
    assert (await _submit(client, captcha_id, "ABCDE"))[0] == 202
    status, problem = await _submit(client, captcha_id, "ABCDE")
    assert status == 422 and problem["code"] == "captcha_invalid"
    # Also for another article: the marker is the captcha's, not the article's.
    response = await client.post("/v1/articles/bai-viet-khac/comments", json=_form(captcha_id, "ABCDE"))
    assert response.status == 422
    assert await _stored_comment_count(redis) == 1


async def test_concurrent_tries_of_one_captcha_store_one_comment(client: Client, redis: Redis) -> None:
    captcha_id = await _issue(client)
    statuses = await asyncio.gather(*(
        _submit(client, captcha_id, "ABCDE") for _ in range(8)))
    assert sorted(status for status, _ in statuses) == [202] + [422] * 7
    assert await _stored_comment_count(redis) == 1


@pytest.mark.parametrize("answer", ["abcde", "  ABCDE  ", "\tAbCdE\n"])
async def test_case_and_surrounding_spaces_are_ignored(client: Client, answer: str) -> None:
    assert (await _submit(client, await _issue(client), answer))[0] == 202


async def test_inner_spaces_are_not_ignored(client: Client) -> None:
    status, problem = await _submit(client, await _issue(client), "AB CDE")
    assert status == 422 and problem["code"] == "captcha_invalid"


async def test_an_expired_captcha_is_invalid(client: Client, redis: Redis) -> None:
    captchas: Captchas = client.app[CAPTCHAS]
    now_ms = int(time.time() * 1000)
    expired = captchas.issue(now_ms=now_ms - 300_001).id
    almost = captchas.issue(now_ms=now_ms - 290_000).id
    from_the_future = captchas.issue(now_ms=now_ms + 60_000).id
    for captcha_id in (expired, from_the_future):
        status, problem = await _submit(client, captcha_id, "ABCDE")
        assert status == 422 and problem["code"] == "captcha_invalid"
        assert problem["title"] == "Mã xác nhận không đúng hoặc đã hết hạn"
        assert (await client.get(f"/v1/captchas/{captcha_id}.png")).status == 404
    assert (await client.get(f"/v1/captchas/{almost}.png")).status == 200
    assert (await _submit(client, almost, "ABCDE"))[0] == 202
    token = captchas.read(almost)
    assert token is not None
    assert 0 < await redis.pttl(keys.captcha_used(token.nonce)) <= 10_000


async def test_the_ttl_follows_the_settings(aiohttp_client: MakeClient, settings: Settings, redis: Redis) -> None:
    client = await aiohttp_client(make_app(settings.model_copy(update={"captcha_ttl_seconds": 30})))
    response = await client.post("/v1/captchas")
    body = await response.json()
    assert body["expires_in"] == 30
    captchas: Captchas = client.app[CAPTCHAS]
    assert captchas.read(body["id"]) is not None
    assert captchas.read(body["id"], now_ms=int(time.time() * 1000) + 30_001) is None
    assert (await _submit(client, body["id"], "ABCDE"))[0] == 202
    token = captchas.read(body["id"])
    assert token is not None
    assert 0 < await redis.pttl(keys.captcha_used(token.nonce)) <= 30_000


async def test_rendering_runs_in_the_process_pool(client: Client) -> None:
    pool = client.app[RENDER_POOL]
    assert isinstance(pool, ProcessPoolExecutor)
    captcha_id = await _issue(client)
    assert (await client.get(f"/v1/captchas/{captcha_id}.wav")).status == 200
    worker_pid = await asyncio.get_running_loop().run_in_executor(pool, os.getpid)
    assert worker_pid != os.getpid()


class RecordingPool(ProcessPoolExecutor):
    """A real process pool that remembers which functions it was given."""

    def __init__(self) -> None:
        import multiprocessing

        super().__init__(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self.submitted: list[str] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.submitted.append(getattr(fn, "__name__", repr(fn)))
        return super().submit(fn, *args, **kwargs)


async def test_captchas_render_pictures_and_audio_only_in_the_executor() -> None:
    pool = RecordingPool()
    try:
        captchas = Captchas(pool, secret=b"k" * 32, ttl=60, min_fill_seconds=0, test_answer=None, pool_size=0)
        issued = captchas.issue()
        assert pool.submitted == []
        png = await captchas.image(issued.id)
        wav = await captchas.audio(issued.id, "en")
        assert png.startswith(b"\x89PNG") and wav.startswith(b"RIFF")
        assert pool.submitted == ["render_png", "render_wav"]
        assert await asyncio.get_running_loop().run_in_executor(pool, os.getpid) != os.getpid()
    finally:
        pool.shutdown(wait=True)


async def test_rendering_never_blocks_the_event_loop(aiohttp_client: MakeClient, settings: Settings) -> None:
    blockbuster = pytest.importorskip("blockbuster")
    # No pre-rendered pool: every picture is rendered on demand, while blockbuster watches the loop.
    client = await aiohttp_client(make_app(settings.model_copy(update={"captcha_pool_size": 0})))
    ids = [await _issue(client) for _ in range(3)]
    # Start the worker process first: spawning it (once) writes to a pipe, which blockbuster would flag.
    assert (await client.get(f"/v1/captchas/{await _issue(client)}.png")).status == 200
    with blockbuster.blockbuster_ctx("service"):
        for captcha_id in ids:
            png = await client.get(f"/v1/captchas/{captcha_id}.png")
            wav = await client.get(f"/v1/captchas/{captcha_id}.wav")
            assert (png.status, wav.status) == (200, 200)
            assert (await png.read()).startswith(b"\x89PNG")
            assert (await wav.read()).startswith(b"RIFF")
