"""Text rules for what readers write: Unicode normalisation, forbidden characters, diacritic folding."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Final

#: Bidi overrides and isolates: they let a comment visually reorder the text around it.
BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Invisible joiners and marks: stripped from names and titles where they only serve to impersonate.
ZERO_WIDTH: Final = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e\u200e\u200f")
#: One regex pass: str.translate with a table looks up every character in Python (10x slower on a name).
_ZERO_WIDTH_RE: Final = re.compile(f"[{''.join(sorted(ZERO_WIDTH))}]")


def normalise(text: str) -> str:
    """NFC first (Vietnamese arrives precomposed or decomposed), then trim."""
    return unicodedata.normalize("NFC", text).strip()


def strip_zero_width(text: str) -> str:
    return _ZERO_WIDTH_RE.sub("", text)


# Category Cc is exactly U+0000-U+001F and U+007F-U+009F; with the bidi controls and lone surrogates that is
# one character class, so the check is one C-level scan instead of a Python loop over every character.
_BIDI_CLASS: Final = "".join(sorted(BIDI_CONTROLS))
_FORBIDDEN_IN_LINE: Final = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_CLASS}\ud800-\udfff]")
_FORBIDDEN_IN_TEXT: Final = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_BIDI_CLASS}\\ud800-\\udfff]")


def has_forbidden_characters(text: str, *, allow_newlines: bool) -> bool:
    """Control characters (Cc) other than newline and tab where allowed, bidi overrides and isolates, and lone
    surrogates."""
    return (_FORBIDDEN_IN_TEXT if allow_newlines else _FORBIDDEN_IN_LINE).search(text) is not None


def normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


#: Combining diacritical marks (all of Vietnamese's tones and vowel marks live here); removed by one C-level pass.
_MARKS: Final = re.compile("[\u0300-\u036f]+")
#: A character that is neither ASCII nor such a mark: where it occurs, folding needs the general path.
_NOT_ASCII_OR_MARK: Final = re.compile("[^\x00-\x7f\u0300-\u036f]")
#: Every ASCII character that `\w` does not match, made a space: an ASCII text's words are then its `split()`.
_ASCII_NON_WORD: Final = str.maketrans({c: " " for c in map(chr, range(128)) if not re.fullmatch(r"\w", c)})


def _decomposed(text: str) -> str:
    return unicodedata.normalize("NFD", text.lower().replace("đ", "d"))


def _without_marks(decomposed: str) -> str:
    # Vietnamese decomposes into ASCII letters and marks of U+0300-U+036F only; for such a text, dropping the marks
    # is encoding it as ASCII, which costs a fraction of the regex's substitution (docs/benchmarks.md).
    if decomposed.isascii():
        return decomposed
    if _NOT_ASCII_OR_MARK.search(decomposed) is None:
        return decomposed.encode("ascii", "ignore").decode("ascii")
    return _MARKS.sub("", decomposed)


def fold(text: str) -> str:
    """Lower case without diacritics, so "Đồ ngốc" matches "do ngoc"; đ has no decomposition of its own."""
    return _without_marks(_decomposed(text))


WORDS: Final = re.compile(r"\w+", re.UNICODE)


# -- folding by word, for texts of Latin letters (Vietnamese) ----------------------------------------------------
# A character whose fold is ASCII word characters (or nothing: a mark) folds the same wherever it stands: its lower
# case does not depend on its neighbours (only Greek's final sigma does, not among these), and its decomposition's
# marks, which canonical ordering may move, are all removed. A text of ASCII and such characters therefore folds
# token by token, a token being a run of anything but ASCII non-word characters: the token's fold is the
# concatenation of its characters' folds, one word or none, and what separates tokens stays a separator. So the
# words of such a text are found on its UTF-8 bytes (ASCII non-word bytes made spaces, then `split()`, in C) and
# each distinct token is folded once per process: a comment's ~75 tokens repeat across comments, and looking them
# up in a dict costs a fraction of normalising the whole text (docs/benchmarks.md, `text.folded_words`).
# tests/test_text.py checks every character of these blocks, and random texts, against the definition.


def _folds_to_ascii_word(c: str) -> bool:
    return c != "\u03a3" and re.fullmatch("[0-9A-Za-z_]*", fold(c)) is not None


#: The non-ASCII characters that fold token by token (Latin-1, Latin Extended-A/B, the combining marks, Latin
#: Extended Additional: all of Vietnamese; and a few letter-like symbols).
_BY_TOKEN: Final = "".join(c for first, last in ((0x80, 0x370), (0x1E00, 0x1F00), (0x2100, 0x2150))
                           for c in map(chr, range(first, last)) if _folds_to_ascii_word(c))
#: A character outside ASCII and `_BY_TOKEN`: the text takes the general path.
_NOT_BY_TOKEN: Final = re.compile(f"[^\x00-\x7f{re.escape(_BY_TOKEN)}]")
#: Every ASCII byte that `\w` does not match, made a space; other bytes (UTF-8's of `_BY_TOKEN` too) kept.
_BYTE_NON_WORD: Final = bytes(b if b >= 128 or re.fullmatch(r"\w", chr(b)) else 32 for b in range(256))


class _NotByToken(Exception):
    """A token with a character outside `_BY_TOKEN`: the text takes the general path."""


class _TokenForms(dict[bytes, str]):
    """Token (its UTF-8 bytes) -> `form` of its fold ("" when it folds to nothing), made when first seen; a dict's
    `__missing__`, so that a text's tokens are looked up by one `map` in C, hits and misses alike. Bounded: the
    tokens come from readers."""

    def __init__(self, form: Callable[[str], str], limit: int) -> None:
        super().__init__()
        self._form, self._limit = form, limit

    def __missing__(self, token: bytes) -> str:
        value = token.decode()
        if _NOT_BY_TOKEN.search(value) is not None:
            raise _NotByToken
        if len(self) >= self._limit:
            self.clear()
        word = fold(value)
        made = self[token] = self._form(word) if word else ""
        return made


def _tokens(text: str) -> list[bytes]:
    """The text's tokens (UnicodeEncodeError for a lone surrogate)."""
    return text.encode().translate(_BYTE_NON_WORD).split()


_FOLDS: Final = _TokenForms(str, 65536)


def folded_words(text: str) -> list[str]:
    """`WORDS.findall(fold(text))`, faster for the common texts (tests/test_text.py checks they agree): an ASCII
    text's words are its runs of [A-Za-z0-9_], which a translation to spaces and `split()` find in C without
    a regex match object per word (about half the time of `findall` on a comment; docs/benchmarks.md); a text of
    Latin letters (Vietnamese) is folded a token at a time, from a cache (above)."""
    if text.isascii():
        return text.lower().translate(_ASCII_NON_WORD).split()
    try:
        return list(filter(None, map(_FOLDS.__getitem__, _tokens(text))))
    except (_NotByToken, UnicodeEncodeError):  # a character of the general path, or a lone surrogate
        return WORDS.findall(fold(text))


class WordForms:
    """The distinct folded words of a text, each made into its `form` (a word whose form is "" is left out), in
    order of first appearance: `dict.fromkeys(form(w) for w in folded_words(text))` without "". Each token's form
    is kept (per process, at most `limit`), so that a text of words seen before costs two passes in C over its
    tokens and no folding (the search index's words: `search.index_words`)."""

    def __init__(self, form: Callable[[str], str], limit: int = 65536) -> None:
        self._form = form
        self._tokens = _TokenForms(form, limit)

    def __call__(self, text: str) -> list[str]:
        try:
            forms = dict.fromkeys(map(self._tokens.__getitem__, _tokens(text)))
        except (_NotByToken, UnicodeEncodeError):  # a character of the general path, or a lone surrogate
            forms = dict.fromkeys(map(self._form, dict.fromkeys(WORDS.findall(fold(text)))))
        forms.pop("", None)
        return list(forms)


#: The digits a number from a client may be written with, by base (hex in lower case, as this service writes it).
_DIGITS: Final = {10: frozenset("0123456789"), 16: frozenset("0123456789abcdef")}


def ascii_number(raw: str, *, max_digits: int, base: int = 10) -> int | None:
    """`raw` read as a number of 1 to `max_digits` ASCII digits in `base` (10 or 16), else None.

    Numbers in query strings and cursors come only this way: `str.isdigit()` is true for "²" and "①", which
    `int()` refuses (a 500), and `int()` itself reads "٣" as 3 and accepts " 7", "+7", "1_0" and "0x7" (base
    16): several spellings of one cursor. The length bound comes first, so `int()` never sees a long string.
    """
    if not 0 < len(raw) <= max_digits or not _DIGITS[base].issuperset(raw):
        return None
    return int(raw, base)
