#!/usr/bin/env python3
"""Generate the audio-CAPTCHA voice library in service/voices/.

Layout produced (what ``captcha.audio.AudioCaptcha(voicedir=...)`` expects)::

    service/voices/<lang>/<CHAR>/<variant>.wav

for lang in ``vi`` and ``en`` and every character of the CAPTCHA alphabet. Each file is the
character's spoken name, synthesised by ``espeak-ng`` and converted by ``sox`` to exactly the
format of the ``captcha`` package's own ``data/*/default.wav``: 8000 Hz, 8-bit unsigned PCM,
mono WAV. Leading/trailing silence is trimmed and the peak level is normalised.

Requirements: the Debian packages ``espeak-ng`` and ``sox`` (not Python dependencies; only needed
to regenerate the committed files).

Usage::

    python tools/make_voices.py            # regenerate everything
    python tools/make_voices.py --check    # only verify every expected file exists

The output is deterministic: espeak-ng is deterministic for a given text/voice/speed/pitch, and
sox runs with dithering disabled (-D) and repeatable random numbers (-R). Rerunning replaces the
.wav files in each character directory.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final, NamedTuple

ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"

ROOT: Final = Path(__file__).resolve().parent.parent
VOICES_DIR: Final = ROOT / "service" / "voices"

# How a Vietnamese reader names each character. Digits are Vietnamese number words. Letters use
# the names Vietnamese speakers use when reading Latin letters aloud (acronyms such as "GDP" ->
# "giê đê pê", "USD" -> "u ét đê", "DVD" -> "đê vê đê"):
#  * D is "đê", not "dê": with espeak-ng's Northern voice "dê" and "giê" (G) are both [ze] and
#    therefore indistinguishable; "đê" is the usual reading of D in acronyms and, since the
#    alphabet has no Đ, it is unambiguous.
#  * S is "ét xì" rather than the short "ét", which is nearly identical to "ép" (F).
#  * F, J, W, Z are not in the Vietnamese alphabet: "ép", "gi", "vê kép", "dét".
#    espeak-ng reads a lone "gi" as a bare consonant, so J is written "di" (same sound, [zi]).
VI_NAMES: Final[dict[str, str]] = {
    "2": "hai",
    "3": "ba",
    "4": "bốn",
    "5": "năm",
    "6": "sáu",
    "7": "bảy",
    "8": "tám",
    "9": "chín",
    "A": "a",
    "B": "bê",
    "C": "xê",
    "D": "đê",
    "E": "e",
    "F": "ép",
    "G": "giê",
    "H": "hát",
    "J": "di",
    "K": "ca",
    "M": "em mờ",
    "N": "en nờ",
    "P": "pê",
    "Q": "quy",
    "R": "e rờ",
    "S": "ét xì",
    "T": "tê",
    "U": "u",
    "V": "vê",
    "W": "vê kép",
    "X": "ích xì",
    "Y": "i dài",
    "Z": "dét",
}

# English: digits as words; a letter followed by "." makes espeak-ng say the letter's name
# (a bare "A" would be read as the article).
EN_DIGITS: Final[dict[str, str]] = {
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
}
EN_NAMES: Final[dict[str, str]] = {c: EN_DIGITS.get(c, f"{c}.") for c in ALPHABET}

# espeak-ng voice per language directory.
ESPEAK_VOICE: Final[dict[str, str]] = {"vi": "vi", "en": "en"}
NAMES: Final[dict[str, dict[str, str]]] = {"vi": VI_NAMES, "en": EN_NAMES}


class Variant(NamedTuple):
    name: str
    speed: int  # espeak-ng words per minute
    pitch: int  # espeak-ng pitch 0..99


# Two variants per character; AudioCaptcha picks one at random for each character.
VARIANTS: Final = (
    Variant("s140p55", 140, 55),
    Variant("s115p35", 115, 35),
)

# sox effects. The output options (-r 8000 -b 8 -e unsigned-integer) make sox resample, with its
# anti-alias filter, at the end of this chain.
SOX_EFFECT_STEPS: Final = (
    ("silence", "1", "0.01", "-45d"),  # trim leading silence
    ("reverse",),
    ("silence", "1", "0.01", "-45d"),  # trim trailing silence
    ("fade", "t", "0.015"),  # 15 ms fade-out, done as a fade-in while reversed (length unknown)
    ("reverse",),
    ("fade", "t", "0.005"),  # 5 ms fade-in against clicks
    ("norm", "-2"),  # peak-normalise to -2 dBFS
)
SOX_EFFECTS: Final = [arg for step in SOX_EFFECT_STEPS for arg in step]


def render(lang: str, char: str, variant: Variant) -> Path:
    """Synthesise one voice file and return its path."""
    text = NAMES[lang][char]
    out = VOICES_DIR / lang / char / f"{variant.name}.wav"
    espeak = subprocess.run(
        [
            "espeak-ng",
            "-v",
            ESPEAK_VOICE[lang],
            "-s",
            str(variant.speed),
            "-p",
            str(variant.pitch),
            "--stdout",
            text,
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "sox",
            "-D",
            "-R",
            "-V1",
            "-t",
            "wav",
            "-",
            "-r",
            "8000",
            "-c",
            "1",
            "-b",
            "8",
            "-e",
            "unsigned-integer",
            "-t",
            "wav",
            str(out),
            *SOX_EFFECTS,
        ],
        input=espeak.stdout,
        check=True,
        capture_output=True,
    )
    return out


def verify(path: Path) -> None:
    with wave.open(str(path), "rb") as w:
        fmt = (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype())
        frames = w.getnframes()
    if fmt != (8000, 1, 1, "NONE"):
        raise SystemExit(f"{path}: unexpected format {fmt}")
    if not 800 <= frames <= 16000:  # 0.1 s .. 2 s
        raise SystemExit(f"{path}: implausible length {frames} frames")


def expected_files() -> list[tuple[str, str, Variant]]:
    return [(lang, c, v) for lang in NAMES for c in ALPHABET for v in VARIANTS]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only verify the existing files")
    args = parser.parse_args()

    jobs = expected_files()
    if args.check:
        for lang, c, v in jobs:
            verify(VOICES_DIR / lang / c / f"{v.name}.wav")
        print(f"ok: {len(jobs)} voice files")
        return 0

    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install espeak-ng sox)")

    # Start from a clean tree so renamed variants or removed characters do not linger.
    for lang in NAMES:
        lang_dir = VOICES_DIR / lang
        if lang_dir.is_dir():
            for old in lang_dir.glob("*/*.wav"):
                old.unlink()
            for d in lang_dir.iterdir():
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
        for c in ALPHABET:
            (lang_dir / c).mkdir(parents=True, exist_ok=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(lambda job: render(*job), jobs))
    for p in paths:
        verify(p)

    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files to {VOICES_DIR.relative_to(ROOT)} ({total / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
