"""Text rules for what readers write: Unicode normalisation, forbidden characters, diacritic folding."""

from __future__ import annotations

import re
import unicodedata
from typing import Final

#: Bidi overrides and isolates: they let a comment visually reorder the text around it.
BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Invisible joiners and marks: stripped from names and titles where they only serve to impersonate.
ZERO_WIDTH: Final = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e\u200e\u200f")
_ZERO_WIDTH_TABLE: Final = {ord(ch): None for ch in ZERO_WIDTH}


def normalise(text: str) -> str:
    """NFC first (Vietnamese arrives precomposed or decomposed), then trim."""
    return unicodedata.normalize("NFC", text).strip()


def strip_zero_width(text: str) -> str:
    return text.translate(_ZERO_WIDTH_TABLE)


def has_forbidden_characters(text: str, *, allow_newlines: bool) -> bool:
    """Control characters (Cc), bidi overrides, lone surrogates and unassigned noncharacters are refused."""
    for ch in text:
        if ch in BIDI_CONTROLS:
            return True
        category = unicodedata.category(ch)
        if category == "Cc" and not (allow_newlines and ch in "\n\t"):
            return True
        if category == "Cs":
            return True
    return False


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


#: Combining diacritical marks (all of Vietnamese's tones and vowel marks live here); removed by one C-level pass.
_MARKS: Final = re.compile("[\u0300-\u036f]+")


def fold(text: str) -> str:
    """Lower case without diacritics, so "Đồ ngốc" matches "do ngoc"; đ has no decomposition of its own."""
    return _MARKS.sub("", unicodedata.normalize("NFD", text.lower().replace("đ", "d")))


WORDS: Final = re.compile(r"\w+", re.UNICODE)


def folded_words(text: str) -> list[str]:
    return WORDS.findall(fold(text))
