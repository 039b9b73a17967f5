"""CAPTCHA rendering (the PNG image; the audio is `captcha_audio`'s), meant to run in a ProcessPoolExecutor worker.

Everything here is synchronous, CPU-bound and free of asyncio. The public functions are plain
module-level functions (picklable by reference) and the heavy objects they use -- the
``ImageCaptcha`` with its loaded fonts -- are created lazily, once per process. Call :func:`warm_up`
from the pool initializer so the first request in each worker does not pay for loading them.

Randomness comes from :mod:`secrets`, as in the ``captcha`` package itself.
"""

from __future__ import annotations

import functools
import io
import secrets
from typing import Final, Literal

from captcha.image import ImageCaptcha, random_color
from PIL.Image import Quantize

__all__ = [
    "ALPHABET",
    "IMAGE_HEIGHT",
    "IMAGE_WIDTH",
    "Lang",
    "render_png",
    "warm_up",
]

ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

Lang = Literal["vi", "en"]
LANGS: Final[tuple[Lang, ...]] = ("vi", "en")

# 200x70 is comfortably readable on a phone; the default font sizes (42, 50, 56) are for 60 px.
IMAGE_WIDTH: Final = 200
IMAGE_HEIGHT: Final = 70
IMAGE_FONT_SIZES: Final = (48, 54, 60)
# 16-colour palette PNG: ~2.6 KB instead of ~10 KB for RGB, and faster to encode.
PNG_COLOURS: Final = 16

MAX_ANSWER_LENGTH: Final = 16


def _check_answer(answer: str) -> None:
    if not answer or len(answer) > MAX_ANSWER_LENGTH:
        raise ValueError(f"answer must have 1..{MAX_ANSWER_LENGTH} characters, got {len(answer)}")
    bad = set(answer) - set(ALPHABET)
    if bad:
        raise ValueError(f"answer contains characters outside the CAPTCHA alphabet: {sorted(bad)!r}")


# --------------------------------------------------------------------------------------------
# Image
# --------------------------------------------------------------------------------------------


@functools.cache
def _image_captcha() -> ImageCaptcha:
    captcha = ImageCaptcha(width=IMAGE_WIDTH, height=IMAGE_HEIGHT, font_sizes=IMAGE_FONT_SIZES)
    _ = captcha.truefonts  # load the fonts now
    return captcha


def render_png(answer: str) -> bytes:
    """Return a PNG (IMAGE_WIDTH x IMAGE_HEIGHT, 16-colour palette) showing ``answer``."""
    _check_answer(answer)
    # Like the library default but never lighter than 160 per channel, so the text keeps
    # contrast against the 238..255 background on a phone screen.
    fg = random_color(10, 160, secrets.randbelow(36) + 220)
    image = _image_captcha().generate_image(answer, fg_color=fg)
    out = io.BytesIO()
    image.quantize(PNG_COLOURS, method=Quantize.FASTOCTREE).save(out, format="PNG")
    return out.getvalue()


def warm_up() -> None:
    """Load fonts (use as the ProcessPoolExecutor initializer, with `captcha_audio.warm_up`)."""
    _image_captcha()
    # One throw-away render pages in PIL's PNG encoder.
    render_png(ALPHABET[:5])
