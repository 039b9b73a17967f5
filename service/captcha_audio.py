"""The spoken captcha: synthesised anew for every rendering, so no clip a replay attacker holds matches it.

The old audio was a time-shifted copy of one of two shipped clips per character (`service/voices`); a script
correlating against those clips at 31 speeds solved 10 of 12. Here every character of every rendering is

* synthesised by espeak-ng at run time with a random voice (the language's dialects and a male or female
  variant), pitch, rate and loudness;
* resampled to 8 kHz along a randomly wobbling time axis (a base speed plus a slow vibrato), so the result
  matches no constant-speed copy of any reference, and its pitch moves with it;
* shaped by a random, smooth gain envelope;

and the whole clip has random gaps between characters, a bed of *babble* (fragments of other characters,
spoken by other random voices, cut into syllable-sized pieces, shuffled and partly reversed) and noise, both
well below the speech so a listener hears through them. A captcha's audio is rendered once and then served as
the same bytes for its whole life (`service.captcha`), so fetching it again gives an attacker nothing to vote
with.

Runs in a render process (synchronous, CPU-bound), with libespeak-ng loaded into it through ctypes (the
espeak-ng program would cost a process start per character). Randomness comes from a numpy generator seeded
by `secrets`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import io
import logging
import secrets
import wave
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from service.captcha_render import ALPHABET, LANGS, MAX_ANSWER_LENGTH, Lang

log = logging.getLogger(__name__)

__all__ = ["AUDIO_RATE", "SPOKEN_NAMES", "AudioUnavailable", "render_wav", "warm_up"]

Signal = npt.NDArray[np.float32]

#: Output: 8 kHz, 8-bit unsigned, mono WAV, as before (small enough to keep one per captcha in Redis).
AUDIO_RATE: Final = 8000

# How a Vietnamese reader names each character (the readings of tools/make_voices.py, which made the old clips):
# D is "đê" (with espeak-ng's Northern voice "dê" and "giê" sound the same), S is "ét xì" (a short "ét" is
# nearly "ép"), the letters Vietnamese lacks are read as in acronyms, and J is written "di" (espeak-ng reads a
# lone "gi" as a bare consonant).
VI_NAMES: Final[dict[str, str]] = {
    "2": "hai", "3": "ba", "4": "bốn", "5": "năm", "6": "sáu", "7": "bảy", "8": "tám", "9": "chín",
    "A": "a", "B": "bê", "C": "xê", "D": "đê", "E": "e", "F": "ép", "G": "giê", "H": "hát", "J": "di",
    "K": "ca", "M": "em mờ", "N": "en nờ", "P": "pê", "Q": "quy", "R": "e rờ", "S": "ét xì", "T": "tê",
    "U": "u", "V": "vê", "W": "vê kép", "X": "ích xì", "Y": "i dài", "Z": "dét",
}
# English: digits as words; a letter followed by "." makes espeak-ng say its name (a bare "A" is the article).
EN_NAMES: Final[dict[str, str]] = {
    **{c: f"{c}." for c in "ABCDEFGHJKMNPQRSTUVWXYZ"},
    "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine",
}
SPOKEN_NAMES: Final[dict[Lang, dict[str, str]]] = {"vi": VI_NAMES, "en": EN_NAMES}

#: espeak-ng voices per language (dialects) and the variants (male, female) that stay clear at 8 kHz.
ESPEAK_VOICES: Final[dict[Lang, tuple[str, ...]]] = {
    "vi": ("vi", "vi-vn-x-central", "vi-vn-x-south"),
    "en": ("en", "en-us", "en-gb-x-rp", "en-gb-scotland"),
}
ESPEAK_VARIANTS: Final = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
#: espeak-ng's pitch (0..99), rate (words a minute) and amplitude ranges a rendering draws from.
PITCH: Final = (30, 75)
RATE: Final = (115, 165)
AMPLITUDE: Final = (90, 130)
#: Playback speed of a character after synthesis (resampling changes its pitch and length together) and the
#: vibrato on top of it: depth as a share of the speed, and frequency in Hz.
SPEED: Final = (0.85, 1.18)
VIBRATO_DEPTH: Final = (0.04, 0.09)
VIBRATO_HZ: Final = (2.0, 5.5)
#: Seconds of silence before the first character, between characters, and after the last.
LEAD_IN: Final = (0.4, 0.8)
GAP: Final = (0.45, 1.2)
TAIL: Final = (0.3, 0.7)
#: Babble and noise levels relative to the speech's RMS level (speech is about 10 dB above the babble).
BABBLE_LEVEL: Final = (0.25, 0.38)
NOISE_LEVEL: Final = (0.08, 0.14)
BABBLE_PIECES: Final = 8


class AudioUnavailable(RuntimeError):
    """espeak-ng cannot speak here (not installed, or refused a voice): no audio captcha, pictures still work."""


@dataclass(frozen=True, slots=True)
class _Piece:
    """What one synthesis says and how: a voice ("vi+f3"), espeak-ng's pitch, rate and amplitude."""

    text: str
    voice: str
    pitch: int
    rate: int
    amplitude: int


# espeak-ng's C API (speak_lib.h): synchronous output to a callback, UTF-8 text, and parameter numbers.
_AUDIO_OUTPUT_SYNCHRONOUS: Final = 2
_INITIALIZE_DONT_EXIT: Final = 0x8000
_CHARS_UTF8: Final = 1
_POS_CHARACTER: Final = 1
_RATE, _VOLUME, _PITCH = 1, 2, 3
_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class _Espeak:
    """libespeak-ng in this process: a piece costs about 2 ms, where starting the espeak-ng program costs 7 to
    20 ms. The library keeps global state, so there is one per render process (which is single-threaded)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise AudioUnavailable("libespeak-ng is not installed (Debian: apt-get install espeak-ng)") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.rate = int(lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 500, None, _INITIALIZE_DONT_EXIT))
        if self.rate <= 0:
            raise AudioUnavailable("libespeak-ng did not initialise (is espeak-ng-data installed?)")
        self._chunks: list[npt.NDArray[np.int16]] = []
        self._callback = _Callback(self._collect)  # kept: the library calls it until the process ends
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    def _collect(self, samples: Any, count: int, _events: Any) -> int:
        if samples and count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0

    def say(self, piece: _Piece) -> Signal:
        lib = self._lib
        if lib.espeak_SetVoiceByName(piece.voice.encode()) != 0:
            raise AudioUnavailable(f"espeak-ng has no voice {piece.voice!r}")
        for parameter, value in ((_RATE, piece.rate), (_PITCH, piece.pitch), (_VOLUME, piece.amplitude)):
            lib.espeak_SetParameter(parameter, value, 0)
        text = piece.text.encode() + b"\0"
        self._chunks = []
        if lib.espeak_Synth(text, len(text), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
            raise AudioUnavailable(f"espeak-ng could not say {piece.text!r}")
        lib.espeak_Synchronize()
        if not self._chunks:
            raise AudioUnavailable(f"espeak-ng said nothing for {piece.text!r}")
        return np.concatenate(self._chunks).astype(np.float32) / 32768.0


@functools.cache
def _espeak() -> _Espeak:
    return _Espeak()


def _random_piece(rng: np.random.Generator, text: str, lang: Lang) -> _Piece:
    voice = f"{rng.choice(ESPEAK_VOICES[lang])}+{rng.choice(ESPEAK_VARIANTS)}"
    return _Piece(text, voice, int(rng.integers(PITCH[0], PITCH[1] + 1)), int(rng.integers(RATE[0], RATE[1] + 1)),
                  int(rng.integers(AMPLITUDE[0], AMPLITUDE[1] + 1)))


def _synthesise(pieces: list[_Piece]) -> list[tuple[Signal, int]]:
    espeak = _espeak()
    return [(espeak.say(piece), espeak.rate) for piece in pieces]


def _trim(signal: Signal) -> Signal:
    loud = np.flatnonzero(np.abs(signal) > 0.03 * (float(np.max(np.abs(signal))) or 1.0))
    if loud.size == 0:
        return signal
    return signal[loud[0]:loud[-1] + 1]


def _low_pass(signal: Signal, rate: int, cutoff: float) -> Signal:
    """Remove everything above `cutoff` Hz before resampling (no aliasing from espeak-ng's 22 kHz output)."""
    spectrum = np.fft.rfft(signal)
    spectrum[int(cutoff * len(signal) / rate):] = 0
    return np.fft.irfft(spectrum, len(signal)).astype(np.float32)


def _warp(rng: np.random.Generator, signal: Signal, rate: int) -> Signal:
    """Resample to AUDIO_RATE along a wobbling time axis: a random speed with a random vibrato on it."""
    speed = rng.uniform(*SPEED)
    depth, hz, phase = rng.uniform(*VIBRATO_DEPTH), rng.uniform(*VIBRATO_HZ), rng.uniform(0, 2 * np.pi)
    # Played `speed * (1 + depth)` times faster at most: what would land above 0.45 * AUDIO_RATE goes first.
    signal = _low_pass(signal, rate, 0.45 * AUDIO_RATE / (speed * (1 + depth)))
    count = int(len(signal) * AUDIO_RATE / (rate * speed)) + 1
    t = np.arange(count, dtype=np.float64) / AUDIO_RATE
    steps = (rate / AUDIO_RATE) * speed * (1.0 + depth * np.sin(2 * np.pi * hz * t + phase))
    positions = np.cumsum(steps) - steps[0]
    positions = positions[positions < len(signal) - 1]
    warped: Signal = np.interp(positions, np.arange(len(signal)), signal).astype(np.float32)
    return warped


def _envelope(rng: np.random.Generator, length: int, low: float = 0.55) -> Signal:
    """A smooth random gain between `low` and 1: random knots every 50..120 ms, linearly joined."""
    knots = np.concatenate(([0], np.cumsum(rng.integers(400, 961, size=length // 400 + 2))))
    gains = rng.uniform(low, 1.0, size=len(knots))
    return np.interp(np.arange(length), knots, gains).astype(np.float32)


def _character(rng: np.random.Generator, signal: Signal, rate: int) -> Signal:
    voiced = _warp(rng, _trim(signal), rate)
    voiced /= float(np.max(np.abs(voiced))) or 1.0
    return voiced * _envelope(rng, len(voiced))


def _babble(rng: np.random.Generator, sources: list[Signal], length: int) -> Signal:
    """Speech-like murmur: syllable-sized fragments (40..140 ms) of other characters, shuffled, a share of them
    reversed, laid end to end in two overlapping layers with random offsets."""
    fragments: list[Signal] = []
    for source in sources:
        pos = 0
        while pos < len(source):
            size = int(rng.integers(320, 1121))
            fragment = source[pos:pos + size]
            pos += size
            if len(fragment) < 160:
                continue
            fade = np.minimum(1.0, np.minimum(np.arange(len(fragment)), np.arange(len(fragment))[::-1]) / 40.0)
            fragment = fragment * fade.astype(np.float32)
            fragments.append(fragment[::-1] if rng.random() < 0.5 else fragment)
    bed = np.zeros(length, dtype=np.float32)
    if not fragments:
        return bed
    for _layer in range(2):
        pos = int(rng.integers(0, 800))
        while pos < length:
            fragment = fragments[int(rng.integers(len(fragments)))]
            end = min(length, pos + len(fragment))
            bed[pos:end] += fragment[:end - pos] * rng.uniform(0.5, 1.0)
            pos = end + int(rng.integers(0, 400))
    return bed


def _noise(rng: np.random.Generator, length: int) -> Signal:
    """White noise mixed with a low-passed (brownish) part, so it is not a flat hiss a filter removes."""
    white = rng.standard_normal(length).astype(np.float32)
    brown = np.cumsum(rng.standard_normal(length)).astype(np.float32)
    brown -= np.convolve(brown, np.ones(200, dtype=np.float32) / 200, mode="same")
    brown /= float(np.std(brown)) or 1.0
    return 0.6 * white + 0.8 * brown


def _beeps(rng: np.random.Generator) -> Signal:
    """Two short tones that tell a listener the code starts (at a random pitch, so they align nothing)."""
    hz = rng.uniform(600, 900)
    tone = np.sin(2 * np.pi * hz * np.arange(int(0.12 * AUDIO_RATE)) / AUDIO_RATE).astype(np.float32)
    tone *= np.hanning(len(tone)).astype(np.float32) * 0.5
    gap = np.zeros(int(0.15 * AUDIO_RATE), dtype=np.float32)
    return np.concatenate((tone, gap, tone))


def _seconds(rng: np.random.Generator, bounds: tuple[float, float]) -> int:
    return int(rng.uniform(*bounds) * AUDIO_RATE)


def _assemble(rng: np.random.Generator, characters: list[Signal], babble: list[Signal]) -> Signal:
    beeps = _beeps(rng)
    starts: list[int] = []
    pos = len(beeps) + _seconds(rng, LEAD_IN)
    for i, voiced in enumerate(characters):
        starts.append(pos)
        pos += len(voiced) + (_seconds(rng, GAP) if i < len(characters) - 1 else _seconds(rng, TAIL))
    speech = np.zeros(pos, dtype=np.float32)
    for start, voiced in zip(starts, characters, strict=True):
        speech[start:start + len(voiced)] += voiced
    speech[:len(beeps)] += beeps
    spoken = np.concatenate(characters)
    level = float(np.sqrt(np.mean(spoken * spoken))) or 1.0
    bed = _babble(rng, babble, pos)
    bed *= rng.uniform(*BABBLE_LEVEL) * level / (float(np.sqrt(np.mean(bed * bed))) or 1.0)
    bed *= _envelope(rng, pos, low=0.4)
    noise = _noise(rng, pos)
    noise *= rng.uniform(*NOISE_LEVEL) * level / (float(np.sqrt(np.mean(noise * noise))) or 1.0)
    mixed = speech + bed + noise
    return mixed / (float(np.max(np.abs(mixed))) or 1.0) * 0.95


def _wav(signal: Signal) -> bytes:
    samples = np.clip(np.round(signal * 127.0 + 128.0), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(AUDIO_RATE)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def render_wav(answer: str, lang: Lang) -> bytes:
    """A WAV (8 kHz, 8-bit unsigned, mono) speaking `answer` in `lang`, different at every call.

    Not reproducible even from a seed: libespeak-ng keeps state between calls in a process (its breathy voices
    differ from one call to the next), which is one reason `service.captcha` stores each rendering instead of
    rendering it again from a seed."""
    if not 0 < len(answer) <= MAX_ANSWER_LENGTH or not set(answer) <= set(ALPHABET):
        raise ValueError(f"answer must be 1..{MAX_ANSWER_LENGTH} characters of the captcha alphabet")
    if lang not in LANGS:
        raise ValueError(f"unsupported audio language {lang!r}")
    rng = np.random.default_rng(secrets.randbits(128))
    names = SPOKEN_NAMES[lang]
    others = [c for c in ALPHABET if c not in answer] or list(ALPHABET)
    babble_chars = [str(c) for c in rng.choice(others, size=BABBLE_PIECES)]
    pieces = [_random_piece(rng, names[c], lang) for c in answer]
    pieces += [_random_piece(rng, names[c], lang) for c in babble_chars]
    synthesised = _synthesise(pieces)
    characters = [_character(rng, signal, rate) for signal, rate in synthesised[:len(answer)]]
    babble = [_warp(rng, _trim(signal), rate) for signal, rate in synthesised[len(answer):]]
    return _wav(_assemble(rng, characters, babble))


def warm_up() -> None:
    """Load libespeak-ng and page in numpy's FFT (for the render processes' initializer). Without espeak-ng
    the process still starts, so pictures render; each audio request then fails with AudioUnavailable."""
    try:
        render_wav(ALPHABET[:5], "vi")
    except AudioUnavailable:
        log.exception("audio captchas are unavailable")
