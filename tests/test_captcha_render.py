"""Tests for service.captcha_render (PNG CAPTCHA rendering in worker processes; audio: test_captcha_audio)."""

from __future__ import annotations

import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
from PIL import Image

from service.captcha_render import (
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    render_png,
    warm_up,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ANSWER = "K9WXM"


def _assert_valid_png(data: bytes) -> None:
    assert data.startswith(PNG_MAGIC)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.format == "PNG"
        assert im.size == (IMAGE_WIDTH, IMAGE_HEIGHT)


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


# ---------------------------------------------------------------------------------------------
# In a real worker process
# ---------------------------------------------------------------------------------------------


def test_render_functions_work_in_a_process_pool() -> None:
    # "spawn" is the strictest start method: the worker re-imports the module and everything
    # submitted must pickle.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=warm_up) as pool:
        png = pool.submit(render_png, ANSWER)
        _assert_valid_png(png.result(timeout=60))
