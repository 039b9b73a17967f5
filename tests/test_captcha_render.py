"""Tests for service.captcha_render (PNG/WAV CAPTCHA rendering in worker processes)."""

from __future__ import annotations

import io
import multiprocessing
import random
import wave
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import pytest
from captcha import audio as stock_audio
from PIL import Image

from service import captcha_render
from service.captcha_render import (
    ALPHABET,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    LANGS,
    VOICES_DIR,
    fast_change_sound,
    fast_change_speed,
    fast_create_noise,
    fast_mix_wave,
    render_png,
    render_wav,
    warm_up,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ANSWER = "K7WQM"


def _wav_params(data: bytes) -> tuple[int, int, int, int]:
    with wave.open(io.BytesIO(data), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


def _assert_valid_png(data: bytes) -> None:
    assert data.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.format == "PNG"
        assert im.size == (IMAGE_WIDTH, IMAGE_HEIGHT)


def _assert_valid_wav(data: bytes, chars: int) -> None:
    rate, channels, width, frames = _wav_params(data)
    assert (rate, channels, width) == (8000, 1, 1)
    seconds = frames / rate
    # Three start beeps + 1..3 s gap per character + the spoken characters + end beep.
    assert chars * 1.0 < seconds < chars * 3.0 + chars * 1.2 + 1.5


# ---------------------------------------------------------------------------------------------
# Image
# ---------------------------------------------------------------------------------------------


def test_png_is_decodable_with_expected_size() -> None:
    _assert_valid_png(render_png(ANSWER))


def test_png_is_small_and_random() -> None:
    images = [render_png(ANSWER) for _ in range(5)]
    assert all(len(im) < 8 * 1024 for im in images)
    assert len(set(images)) == 5  # fresh noise/placement each time


def test_png_has_visible_text() -> None:
    with Image.open(io.BytesIO(render_png(ANSWER))) as im:
        grey = im.convert("L")
        lo, hi = grey.getextrema()
    assert isinstance(lo, int)
    assert isinstance(hi, int)
    assert hi - lo > 60  # dark glyphs on a light background


@pytest.mark.parametrize("answer", ["", "k7wqm", "ABC0E", "ILO12", "A" * 17])
def test_invalid_answers_are_rejected(answer: str) -> None:
    with pytest.raises(ValueError):
        render_png(answer)
    with pytest.raises(ValueError):
        render_wav(answer, "en")


# ---------------------------------------------------------------------------------------------
# Voices
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_every_character_has_voices_in_the_captcha_format(lang: str) -> None:
    lang_dir = VOICES_DIR / lang
    assert {p.name for p in lang_dir.iterdir() if p.is_dir()} == set(ALPHABET)
    for char in ALPHABET:
        files = sorted((lang_dir / char).glob("*.wav"))
        assert len(files) >= 2, f"{lang}/{char}"
        for f in files:
            rate, channels, width, frames = _wav_params(f.read_bytes())
            assert (rate, channels, width) == (8000, 1, 1), f
            assert 0.1 <= frames / rate <= 1.5, f


def test_voice_library_is_small() -> None:
    total = sum(p.stat().st_size for p in VOICES_DIR.rglob("*.wav"))
    assert 0 < total < 1024 * 1024


def test_vi_and_en_voices_differ() -> None:
    for char in ALPHABET:
        vi = {p.read_bytes() for p in (VOICES_DIR / "vi" / char).glob("*.wav")}
        en = {p.read_bytes() for p in (VOICES_DIR / "en" / char).glob("*.wav")}
        assert vi.isdisjoint(en), char


# ---------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_wav_format_and_duration(lang: captcha_render.Lang) -> None:
    data = render_wav(ANSWER, lang)
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    _assert_valid_wav(data, len(ANSWER))


class _SeededSecrets:
    """Stand-in for the ``secrets`` module with reproducible output."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def randbelow(self, n: int) -> int:
        return self._rng.randrange(n)

    def choice(self, seq: list[bytearray] | list[str]) -> object:
        return self._rng.choice(seq)

    def token_bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n)


def test_wav_vi_differs_from_en_with_identical_randomness(monkeypatch: pytest.MonkeyPatch) -> None:
    def render(lang: captcha_render.Lang) -> bytes:
        monkeypatch.setattr(captcha_render, "secrets", _SeededSecrets(1234))
        return render_wav(ANSWER, lang)

    vi_1, vi_2, en = render("vi"), render("vi"), render("en")
    # Same randomness and same language reproduces the audio exactly, so the difference below
    # can only come from the voice library chosen by `lang`.
    assert vi_1 == vi_2
    assert vi_1 != en


def test_wav_is_random() -> None:
    assert render_wav(ANSWER, "vi") != render_wav(ANSWER, "vi")


# ---------------------------------------------------------------------------------------------
# Fast AudioCaptcha primitives against the captcha package's originals
# ---------------------------------------------------------------------------------------------


def test_fast_change_sound_matches_original() -> None:
    body = bytearray(range(256))
    for level in [x / 100 for x in range(20, 121)]:
        assert fast_change_sound(body, level) == stock_audio.change_sound(body, level), level


def test_fast_mix_wave_matches_original() -> None:
    rng = random.Random(7)
    every_pair_src = bytearray(v for v in range(256) for _ in range(256))
    every_pair_dst = bytearray(range(256)) * 256
    cases = [(every_pair_src, every_pair_dst)]
    cases += [
        (bytearray(rng.randbytes(rng.randrange(2000))), bytearray(rng.randbytes(1500))) for _ in range(10)
    ]
    for src, dst in cases:
        expected = stock_audio.mix_wave(bytearray(src), bytearray(dst))
        assert fast_mix_wave(bytearray(src), bytearray(dst)) == expected


def test_fast_change_speed_matches_original() -> None:
    # A ramp makes every sample identify its source index (mod 256).
    body = bytearray(range(256)) * 12
    speeds = [x / 100 for x in range(90, 121)] + [x / 10 for x in range(8, 17)]
    for speed in speeds:
        expected = stock_audio.change_speed(body, speed)
        got = fast_change_speed(body, speed)
        assert len(got) == len(expected), speed
        # The original accumulates the position in floats, so at exact integer boundaries it
        # sometimes takes the next input sample instead of the current one (at most once per
        # period p of the speed ratio p/q, e.g. 1 in 4 output samples for 0.8 = 4/5); nothing else
        # differs.
        period = Fraction(speed).limit_denominator(100).numerator
        mismatches = [(a, b) for a, b in zip(got, expected, strict=True) if a != b]
        assert len(mismatches) <= len(got) / period + 1, speed
        assert all((b - a) % 256 == 1 for a, b in mismatches), speed


def test_fast_create_noise_range_and_spread() -> None:
    noise = fast_create_noise(40000, 4)
    assert len(noise) == 40000
    counts = {v: noise.count(v) for v in set(noise)}
    assert set(counts) == {126, 127, 128, 129}
    assert all(9000 < c < 11000 for c in counts.values())


# ---------------------------------------------------------------------------------------------
# In a real worker process
# ---------------------------------------------------------------------------------------------


def test_render_functions_work_in_a_process_pool() -> None:
    # "spawn" is the strictest start method: the worker re-imports the module and everything
    # submitted must pickle.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=warm_up) as pool:
        png = pool.submit(render_png, ANSWER)
        vi = pool.submit(render_wav, ANSWER, "vi")
        en = pool.submit(render_wav, "23456", "en")
        _assert_valid_png(png.result(timeout=60))
        _assert_valid_wav(vi.result(timeout=60), len(ANSWER))
        _assert_valid_wav(en.result(timeout=60), 5)


def test_voices_dir_is_relative_to_the_module() -> None:
    assert Path(captcha_render.__file__).resolve().parent / "voices" == VOICES_DIR
    assert VOICES_DIR.is_dir()
