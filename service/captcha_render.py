"""CAPTCHA rendering (the PNG image; the audio is `captcha_audio`'s), meant to run in a ProcessPoolExecutor worker.

Everything here is synchronous, CPU-bound and free of asyncio. The public functions are plain
module-level functions (picklable by reference) and the heavy objects they use -- the
glyph fonts -- are created lazily, once per process. Call :func:`warm_up` from the pool initializer
so the first request in each worker does not pay for loading them.

Randomness comes from :mod:`secrets`, as in the ``captcha`` package itself.
"""

from __future__ import annotations

import colorsys
import functools
import io
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from captcha.image import DEFAULT_FONTS
from PIL import Image, ImageChops, ImageDraw, ImageFont
from PIL.Image import Quantize
from PIL.ImageFont import FreeTypeFont

__all__ = [
    "ALPHABET",
    "IMAGE_HEIGHT",
    "IMAGE_WIDTH",
    "Lang",
    "PlacedGlyph",
    "RenderedImage",
    "render_image",
    "render_png",
    "warm_up",
]

#: No two characters a reader could take for each other in either typeface, slanted, or with a line across:
#: no 0, O or Q (like D), no 1, I or L, and no 4 (like A), 5 (like S), 6 and 8 (like B and each other),
#: 7 (like T), G (like C), T, U and Y (like V), or Z (like 2).
ALPHABET: Final = "239ABCDEFHJKMNPRSVWX"

Lang = Literal["vi", "en"]
LANGS: Final[tuple[Lang, ...]] = ("vi", "en")

# 200x70, characters 33..46 px tall (see below).
IMAGE_WIDTH: Final = 200
IMAGE_HEIGHT: Final = 70
IMAGE_FONT_SIZES: Final = (44, 49, 54)
#: Degrees either way; more and a reader tilts their head, less and OCR lines the characters up.
MAX_GLYPH_ROTATION: Final = 18.0
OCCLUDER_WIDTH: Final = 2
OCCLUDER_GAP: Final = 1
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


# Why the picture looks the way it does (issue 13: a careful reader misread 3 of 6 of the old pale pictures):
#
# * For people: dark characters (relative luminance <= 0.05) on light colours (>= 0.5 everywhere behind them), so
#   each character has a WCAG contrast of at least 5:1 against what is behind it; characters 33..46 px tall in a
#   70 px picture (59..83 CSS px when it is shown 360 px wide); each keeps its shape (a mild rotation, slant and
#   bow, nothing that breaks a stroke off); neighbours alternate between two ink colours of different hue, so the
#   eye separates them where they touch; the alphabet has no look-alikes.
# * Against OCR: each character comes from one of two typefaces at its own size, slant and rotation (leaning
#   opposite to its neighbours), sits at its own height and touches its neighbours; a thin line with a gap of
#   background either side crosses every character, and the background is a patchwork of light colours under a
#   grid, with a line and dots of lower contrast. Tesseract reads at most 5 % of these pictures exactly
#   (tests/test_captcha_readability.py, which also measures the contrast and size above).


@dataclass(frozen=True, slots=True)
class PlacedGlyph:
    """Where one character of a rendered picture is, for measuring readability in tests."""

    box: tuple[int, int, int, int]  #: (left, top, right, bottom) of its ink in the picture, in pixels
    upright_height: int  #: its ink height before rotation and slant, in picture pixels


@dataclass(frozen=True, slots=True)
class RenderedImage:
    png: bytes
    #: ``L`` image of the picture's size: 255 where a character's ink is, 0 elsewhere (lines and dots excluded).
    glyph_mask: Image.Image
    glyphs: tuple[PlacedGlyph, ...]


Rgb = tuple[int, int, int]


@functools.cache
def _glyph_fonts() -> tuple[tuple[FreeTypeFont, int], ...]:
    """(font, extra stroke width) pairs: the captcha package's Droid Sans Mono and Pillow's built-in Aileron,
    so the picture needs no system fonts (the slim Docker image has none). Aileron's strokes are thin, so
    it is always drawn with a stroke that makes it about as heavy as Droid Sans Mono."""
    fonts = [(ImageFont.truetype(DEFAULT_FONTS[0], size), 1) for size in IMAGE_FONT_SIZES]
    for size in IMAGE_FONT_SIZES:
        aileron = ImageFont.load_default(size + 4)
        if not isinstance(aileron, FreeTypeFont):
            raise RuntimeError("Pillow was built without FreeType; captcha pictures need it")
        fonts.append((aileron, 2))
    return tuple(fonts)


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * secrets.randbelow(1 << 16) / (1 << 16)


def _relative_luminance(colour: Sequence[int]) -> float:
    """WCAG 2.x relative luminance of an sRGB colour (0..255 per channel)."""
    r, g, b = (v / 255 / 12.92 if v <= 10 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in colour[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _colour(saturation: tuple[float, float], value: tuple[float, float], luminance: tuple[float, float],
            hue: tuple[float, float] = (0.0, 1.0)) -> Rgb:
    """A colour with hue (in turns, may wrap), saturation and value in the given ranges and luminance within bounds."""
    while True:
        rgb = colorsys.hsv_to_rgb(_uniform(*hue) % 1.0, _uniform(*saturation), _uniform(*value))
        colour = (round(rgb[0] * 255), round(rgb[1] * 255), round(rgb[2] * 255))
        if luminance[0] <= _relative_luminance(colour) <= luminance[1]:
            return colour


def _inks() -> tuple[Rgb, Rgb]:
    """Two dark colours of clearly different hues, for alternate characters: where neighbours touch, the eye
    tells them apart by colour; OCR's binarised picture sees one blob."""
    first = _colour((0.6, 1.0), (0.2, 0.6), (0.0, 0.05))
    hue = colorsys.rgb_to_hsv(*(c / 255 for c in first))[0]
    return first, _colour((0.6, 1.0), (0.2, 0.6), (0.0, 0.05), hue=(hue + 0.3, hue + 0.7))


def _paper() -> Rgb:
    return _colour((0.08, 0.4), (0.9, 1.0), (0.6, 1.0))


def _interference(ink: Rgb) -> Rgb:
    """Lines and dots drawn over the text: darker than the paper but well short of the ink's contrast, and of a
    hue far from the ink's, so the eye tells them from strokes (an S crossed by a line in its own colour is an 8)."""
    hue = colorsys.rgb_to_hsv(*(c / 255 for c in ink))[0]
    return _colour((0.5, 1.0), (0.35, 0.8), (0.08, 0.2), hue=(hue + 1 / 3, hue + 2 / 3))


def _bend(mask: Image.Image) -> Image.Image:
    """Slant ``mask`` and bow it gently sideways (a few pixels): strokes stay whole and keep their direction.

    A mesh of horizontal bands, each shifted by ``slant * y + bow * sin(...)`` at its edges, so the warp is done
    by Pillow in one pass rather than row by row in Python.
    """
    width, height = mask.size
    slant, bow = _uniform(-0.15, 0.15), _uniform(0.5, 2.0)
    period, phase = _uniform(0.8, 1.6) * height, _uniform(0, 2 * math.pi)
    bands = 6
    edges = [height * i // bands for i in range(bands + 1)]
    shifts = [slant * (height - y) + bow * math.sin(phase + 2 * math.pi * y / period) for y in edges]
    low = min(shifts)
    shifts = [s - low for s in shifts]
    out_width = width + math.ceil(max(shifts))
    mesh = [
        ((0, y0, out_width, y1), (-s0, y0, -s1, y1, out_width - s1, y1, out_width - s0, y0))
        for y0, y1, s0, s1 in zip(edges, edges[1:], shifts, shifts[1:], strict=False)
    ]
    return mask.transform((out_width, height), Image.Transform.MESH, mesh, resample=Image.Resampling.BILINEAR)


def _glyph(char: str, tilt: float) -> tuple[Image.Image, int]:
    """One character as an ``L`` mask cropped to its ink, and its ink height before bending and rotation."""
    font, stroke = secrets.choice(_glyph_fonts())
    left, top, right, bottom = (round(v) for v in font.getbbox(char, stroke_width=stroke))
    margin = 2
    mask = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 0)
    ImageDraw.Draw(mask).text((margin - left, margin - top), char, font=font, fill=255,
                              stroke_width=stroke, stroke_fill=255)
    upright_height = bottom - top
    mask = _bend(mask).rotate(tilt, resample=Image.Resampling.BILINEAR, expand=True)
    box = mask.getbbox()
    return (mask.crop(box) if box else mask), upright_height


def _paint_background(draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    """Light patches of several colours under a thin grid: no single background colour to key out."""
    for _ in range(6 + secrets.randbelow(4)):
        x0, y0 = secrets.randbelow(width), secrets.randbelow(height)
        box = (x0, y0, x0 + 20 + secrets.randbelow(80), y0 + 10 + secrets.randbelow(50))
        if secrets.randbelow(2):
            draw.rectangle(box, fill=_paper())
        else:
            draw.ellipse(box, fill=_paper())
    grid = _colour((0.15, 0.5), (0.8, 0.95), (0.5, 1.0))
    step = 9 + secrets.randbelow(8)
    for x in range(secrets.randbelow(step), width, step):
        draw.line((x, 0, x, height), fill=grid)
    for y in range(secrets.randbelow(step), height, step):
        draw.line((0, y, width, y), fill=grid)


def _wave(x0: int, x1: int, y: float) -> list[tuple[float, float]]:
    amplitude, period, phase = _uniform(4, 12), _uniform(60, 160), _uniform(0, 2 * math.pi)
    return [(x, y + amplitude * math.sin(phase + 2 * math.pi * x / period)) for x in range(x0, x1 + 4, 4)]


def _compose(answer: str) -> tuple[Image.Image, Image.Image, list[PlacedGlyph]]:
    # Neighbours lean opposite ways (by 5 degrees or more), so no common slant lines the text up for OCR.
    sign = 1 - 2 * secrets.randbelow(2)
    glyphs = [_glyph(c, (-1) ** i * sign * _uniform(5, MAX_GLYPH_ROTATION)) for i, c in enumerate(answer)]
    # Neighbours' boxes overlap by up to 3 pixels: characters often touch, so no gap separates them for a
    # segmenter, but they do not run into each other.
    overlaps = [3 + secrets.randbelow(5) for _ in glyphs[1:]]
    text_width = sum(g.width for g, _ in glyphs) - sum(overlaps)
    # Long answers (up to MAX_ANSWER_LENGTH) are drawn on a wider canvas and scaled down to the picture.
    width = max(IMAGE_WIDTH, text_width + 8)
    height = max(IMAGE_HEIGHT, *(g.height + 2 for g, _ in glyphs))
    image = Image.new("RGB", (width, height), _paper())
    draw = ImageDraw.Draw(image)
    _paint_background(draw, width, height)
    inks = _inks()
    # Under the characters, of lower contrast and another hue: background texture to the eye, more to filter
    # out for OCR.
    dim = _interference(inks[0])
    draw.line(_wave(0, width, height / 2 + _uniform(-14, 14)), fill=dim, width=2)
    for _ in range(50 + secrets.randbelow(30)):
        dx, dy = secrets.randbelow(width), secrets.randbelow(height)
        draw.rectangle((dx, dy, dx + secrets.randbelow(2), dy + secrets.randbelow(2)), fill=dim)

    backdrop = image.copy()
    glyph_mask = Image.new("L", (width, height), 0)
    placed: list[PlacedGlyph] = []
    x = (width - text_width) // 2 + secrets.randbelow(7) - 3
    x = min(max(x, 2), width - text_width - 2)
    for i, (glyph, upright_height) in enumerate(glyphs):
        room = height - glyph.height
        y = min(max(room // 2 + secrets.randbelow(15) - 7, 0), room)
        box = (x, y, x + glyph.width, y + glyph.height)
        image.paste(inks[i % 2], box, glyph)
        glyph_mask.paste(ImageChops.lighter(glyph_mask.crop(box), glyph), box)
        placed.append(PlacedGlyph(box, upright_height))
        if i < len(overlaps):
            x += glyph.width - overlaps[i]
    # A line thinner than any stroke (strokes are 6..8 px) runs across the characters with a narrow gap of
    # background either side. Its hue and lower contrast and the gap make the eye see it lying on top of them
    # (a crossed S stays an S, not an 8); in OCR's binarised picture each crossed stroke is broken.
    occluder = _wave(0, width, height / 2 + _uniform(-9, 9))
    gap = Image.new("L", (width, height), 0)
    ImageDraw.Draw(gap).line(occluder, fill=255, width=OCCLUDER_WIDTH + 2 * OCCLUDER_GAP, joint="curve")
    image.paste(backdrop, (0, 0), gap)
    glyph_mask.paste(0, (0, 0), gap)
    draw.line(occluder, fill=dim, width=OCCLUDER_WIDTH, joint="curve")


    if (width, height) != (IMAGE_WIDTH, IMAGE_HEIGHT):
        sx, sy = IMAGE_WIDTH / width, IMAGE_HEIGHT / height
        image = image.resize((IMAGE_WIDTH, IMAGE_HEIGHT), Image.Resampling.BILINEAR)
        glyph_mask = glyph_mask.resize((IMAGE_WIDTH, IMAGE_HEIGHT), Image.Resampling.BILINEAR)
        placed = [PlacedGlyph((int(g.box[0] * sx), int(g.box[1] * sy), math.ceil(g.box[2] * sx),
                               math.ceil(g.box[3] * sy)), int(g.upright_height * sy)) for g in placed]
    return image, glyph_mask, placed


def render_image(answer: str) -> RenderedImage:
    """Render ``answer``: the PNG (IMAGE_WIDTH x IMAGE_HEIGHT, 16-colour palette) and where its characters are."""
    _check_answer(answer)
    image, glyph_mask, placed = _compose(answer)
    out = io.BytesIO()
    image.quantize(PNG_COLOURS, method=Quantize.FASTOCTREE).save(out, format="PNG")
    return RenderedImage(out.getvalue(), glyph_mask, tuple(placed))


def render_png(answer: str) -> bytes:
    """Return a PNG (IMAGE_WIDTH x IMAGE_HEIGHT, 16-colour palette) showing ``answer``."""
    return render_image(answer).png


def warm_up() -> None:
    """Load fonts (use as the ProcessPoolExecutor initializer, with `captcha_audio.warm_up`)."""
    _glyph_fonts()
    # One throw-away render pages in PIL's PNG encoder.
    render_png(ALPHABET[:5])
