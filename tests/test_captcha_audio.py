"""Tests for service.captcha_audio: the spoken captcha, synthesised anew at each rendering (the replay attack
against it: test_captcha_audio_solver)."""

from __future__ import annotations

import io
import multiprocessing
import wave
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import numpy.typing as npt
import pytest

from service.captcha_audio import AUDIO_RATE, SPOKEN_NAMES, render_wav, warm_up
from service.captcha_render import ALPHABET, LANGS, Lang

ANSWER = ALPHABET[3:8]


def _samples(data: bytes) -> tuple[int, int, int, npt.NDArray[np.uint8]]:
    with wave.open(io.BytesIO(data), "rb") as w:
        frames = w.readframes(w.getnframes())
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), np.frombuffer(frames, np.uint8)


def _assert_valid_wav(data: bytes, chars: int) -> None:
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    rate, channels, width, samples = _samples(data)
    assert (rate, channels, width) == (AUDIO_RATE, 1, 1)
    seconds = len(samples) / rate
    # Two beeps, a lead-in, per character its name (0.2..1 s) and a 0.45..1.2 s gap, a tail.
    assert chars * 0.6 < seconds < chars * 2.5 + 2


@pytest.mark.parametrize("lang", LANGS)
def test_wav_format_and_duration(lang: Lang) -> None:
    _assert_valid_wav(render_wav(ANSWER, lang), len(ANSWER))


def test_every_character_has_a_spoken_name_in_both_languages() -> None:
    for lang in LANGS:
        assert set(ALPHABET) <= set(SPOKEN_NAMES[lang]), lang
        # Every name is said as something (no silent character in a clip).
        assert all(SPOKEN_NAMES[lang][c].strip() for c in ALPHABET)


def test_every_rendering_differs_and_vi_differs_from_en() -> None:
    clips = [render_wav(ANSWER, "vi") for _ in range(3)] + [render_wav(ANSWER, "en")]
    assert len(set(clips)) == 4
    lengths = {len(c) for c in clips}
    assert len(lengths) > 1  # the gaps and the rates vary, not only the noise


def test_speech_stands_out_of_the_babble_and_noise() -> None:
    """A listener hears through the bed: the loudest 20 ms frames (speech) are far above the quietest (the bed
    between characters)."""
    _, _, _, samples = _samples(render_wav(ANSWER, "vi"))
    signal = samples.astype(np.float64) - 128
    frames = signal[: len(signal) // 160 * 160].reshape(-1, 160)
    rms = np.sqrt((frames ** 2).mean(axis=1))
    loud, quiet = np.percentile(rms, 90), np.percentile(rms, 20)
    assert loud > 2.0 * quiet  # at least 6 dB between speech and the bed
    assert quiet > 0  # but there is a bed: no clean silence to cut the characters apart by


@pytest.mark.parametrize("answer", ["", "k7wqm", "ABC0E", "ILO12", "A" * 17])
def test_invalid_answers_are_rejected(answer: str) -> None:
    with pytest.raises(ValueError):
        render_wav(answer, "en")


def test_render_wav_works_in_a_spawned_process_pool() -> None:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=warm_up) as pool:
        vi = pool.submit(render_wav, ANSWER, "vi")
        en = pool.submit(render_wav, ALPHABET[:5], "en")
        _assert_valid_wav(vi.result(timeout=60), len(ANSWER))
        _assert_valid_wav(en.result(timeout=60), 5)
