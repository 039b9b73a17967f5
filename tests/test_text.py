"""service.text: NFC normalisation, forbidden characters, zero-width stripping and diacritic folding."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from linear_time import BOUND, LARGE, SMALL, sized, worst_case_ratio

from service import text

VI_NFC = unicodedata.normalize("NFC", "Bình luận của Nguyễn Thị Ánh")
VI_NFD = unicodedata.normalize("NFD", VI_NFC)


def test_normalise_turns_nfd_into_nfc_and_trims() -> None:
    assert VI_NFD != VI_NFC
    assert len(VI_NFD) > len(VI_NFC)
    assert text.normalise(f"  {VI_NFD}\n\t") == VI_NFC


@pytest.mark.parametrize("ch", sorted(text.BIDI_CONTROLS))
def test_bidi_controls_are_forbidden_everywhere(ch: str) -> None:
    assert text.has_forbidden_characters(f"abc{ch}def", allow_newlines=True)
    assert text.has_forbidden_characters(f"abc{ch}def", allow_newlines=False)


@pytest.mark.parametrize("ch", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\r"])
def test_control_characters_are_forbidden(ch: str) -> None:
    assert text.has_forbidden_characters(f"a{ch}b", allow_newlines=True)
    assert text.has_forbidden_characters(f"a{ch}b", allow_newlines=False)


def test_newline_and_tab_are_allowed_only_where_asked() -> None:
    assert not text.has_forbidden_characters("dòng 1\n\tdòng 2", allow_newlines=True)
    assert text.has_forbidden_characters("dòng 1\ndòng 2", allow_newlines=False)
    assert text.has_forbidden_characters("cột\tcột", allow_newlines=False)


def test_lone_surrogates_are_forbidden() -> None:
    assert text.has_forbidden_characters("a\ud800b", allow_newlines=True)


def test_ordinary_vietnamese_and_emoji_are_allowed() -> None:
    assert not text.has_forbidden_characters(VI_NFC + " 👍 đ Đ ư ơ", allow_newlines=False)


def test_zero_width_characters_are_stripped() -> None:
    assert text.strip_zero_width("A\u200bd\u200dm\ufeffi\u2060n") == "Admin"


def test_newlines_are_normalised_to_lf() -> None:
    assert text.normalise_newlines("a\r\nb\rc\nd") == "a\nb\nc\nd"


@pytest.mark.parametrize(("raw", "folded"), [
    ("Đồ ngốc", "do ngoc"),
    (unicodedata.normalize("NFD", "Đồ ngốc"), "do ngoc"),
    ("ĐƯỜNG Phố", "duong pho"),
    ("plain ascii", "plain ascii"),
])
def test_fold_removes_diacritics_and_maps_d_stroke(raw: str, folded: str) -> None:
    assert text.fold(raw) == folded


def test_folded_words_split_on_punctuation() -> None:
    assert text.folded_words("Thật là… đồ-ngốc!") == ["that", "la", "do", "ngoc"]


# -- folding: the fast paths agree with the plain definition ---------------------------------------------------

_MARKS_REFERENCE: Final = re.compile("[\u0300-\u036f]+")


def reference_fold(value: str) -> str:
    """What `text.fold` is defined as (and was, before its fast paths)."""
    return _MARKS_REFERENCE.sub("", unicodedata.normalize("NFD", value.lower().replace("đ", "d")))


def reference_folded_words(value: str) -> list[str]:
    return re.findall(r"\w+", reference_fold(value))


#: Every character the fast paths take: those that lower-case and decompose into ASCII and marks of
#: U+0300-U+036F (Vietnamese's letters among them), and the marks themselves.
FAST_PATH_CHARACTERS: Final = "".join(
    c for c in map(chr, range(0x80, 0x10000))
    if not 0xD800 <= ord(c) <= 0xDFFF
    and all(ord(d) < 0x80 or 0x300 <= ord(d) <= 0x36F for d in unicodedata.normalize("NFD", c.lower()))
)


def test_every_fast_path_character_folds_as_the_definition_says() -> None:
    assert "ệ" in FAST_PATH_CHARACTERS and "Ư" in FAST_PATH_CHARACTERS and "\u0301" in FAST_PATH_CHARACTERS
    for c in FAST_PATH_CHARACTERS + "đĐ":
        for value in (c, f"A{c}b-{c}\u0323 {c}đ"):
            assert text.fold(value) == reference_fold(value), ascii(value)
            assert text.folded_words(value) == reference_folded_words(value), ascii(value)


VIETNAMESE: Final = "Đđ ƯưƠơ ÂâĂăÊêÔô àáảãạ ằắẳẵặ ầấẩẫậ ềếểễệ ồốổỗộ ờớởỡợ ừứửữự ỳýỷỹỵ"


@settings(max_examples=1000, deadline=None)
@given(st.text(st.one_of(
    st.sampled_from(VIETNAMESE + FAST_PATH_CHARACTERS[:200]),  # the fast paths
    st.characters(max_codepoint=0x7F),  # ASCII: punctuation, digits, _, controls
    st.sampled_from("\u0300\u0301\u0303\u0309\u0323\u031b\u0306\u0302 \t\n…“”–"),  # marks, spaces, punctuation
    st.characters(),  # anything else: the general path
), max_size=60))
def test_fold_and_folded_words_agree_with_the_definition(value: str) -> None:
    assert text.fold(value) == reference_fold(value)
    assert text.folded_words(value) == reference_folded_words(value)


# -- folding token by token (text._TokenForms, text.WordForms): every character of the blocks, against the definition

#: The blocks the token path covers, whole (whatever each character folds to), the marks, and Vietnamese's letters.
LATIN_BLOCKS: Final = "".join(map(chr, [*range(0x80, 0x370), *range(0x1E00, 0x1F00), *range(0x2100, 0x2150)]))
VIETNAMESE_LETTERS: Final = "".join(sorted({unicodedata.normalize("NFC", c) for c in VIETNAMESE if not c.isspace()}
                                           | {c.upper() for c in VIETNAMESE if not c.isspace()}))
#: Neighbours a character is tried between: ASCII word and non-word characters, marks, Vietnamese, another block.
CONTEXTS: Final = ("{c}", "A{c}b-{c}\u0323 {c}đ", "{c}{c}x", "Ư{c}.{c}_9", "\u0301{c}\u0300 ({c})", "ß{c}Σ{c}ς",
                   "Ǆ{c}\u0345 {c}\u0483a")


def reference_distinct(value: str, form: Callable[[str], str] = str) -> list[str]:
    forms = dict.fromkeys(map(form, reference_folded_words(value)))
    forms.pop("", None)
    return list(forms)


def test_every_character_of_the_latin_blocks_and_vietnamese_folds_as_the_definition_says() -> None:
    assert set(VIETNAMESE_LETTERS) <= set(text._BY_TOKEN)  # Vietnamese takes the token path
    distinct = text.WordForms(str)
    for c in LATIN_BLOCKS + VIETNAMESE_LETTERS:
        for context in CONTEXTS:
            value = context.format(c=c)
            assert text.folded_words(value) == reference_folded_words(value), ascii(value)
            assert distinct(value) == reference_distinct(value), ascii(value)


def test_every_code_point_folds_as_the_definition_says() -> None:
    """Each of the BMP's on its own; beyond it, 256 at a time (each alone and inside a word)."""
    distinct = text.WordForms(str)
    values = [f"Xin{c}chào {c}" for c in map(chr, range(0x10000))]
    values += [" ".join(chunk) + "Xin" + "".join(chunk) for chunk in
               ("".join(map(chr, range(first, first + 256))) for first in range(0x10000, 0x110000, 256))]
    for value in values:
        assert text.folded_words(value) == reference_folded_words(value), ascii(value)
        assert distinct(value) == reference_distinct(value), ascii(value)


def test_word_forms_apply_the_form_once_per_word_and_leave_out_the_empty() -> None:
    forms = text.WordForms(lambda word: "" if word == "va" else word.upper())
    assert forms("Bà và bà, VÀ Ông \u0301 ông_1") == ["BA", "ONG", "ONG_1"]
    assert forms("") == [] and forms("\u0301 -") == []


def test_the_token_caches_stay_bounded() -> None:
    forms = text.WordForms(str, limit=8)
    for i in range(100):
        assert forms(f"Lần thứ {i} đến {i * 7}") == reference_distinct(f"Lần thứ {i} đến {i * 7}")
        assert len(forms._tokens) <= 8


@settings(max_examples=1500, deadline=None)
@given(st.text(st.one_of(
    st.sampled_from(VIETNAMESE + LATIN_BLOCKS),
    st.characters(max_codepoint=0x7F),
    st.sampled_from("\u0300\u0301\u0303\u0309\u0323\u031b\u0306\u0302 \t\n…“”–\u0345\u0483Σσς"),
    st.characters(),  # anything else: the general path, lone surrogates among them
), max_size=80))
def test_word_forms_agree_with_the_definition_on_any_text(value: str) -> None:
    assert text.folded_words(value) == reference_folded_words(value)
    for form in (str, lambda word: word[:3] if len(word) > 1 else ""):
        assert text.WordForms(form)(value) == reference_distinct(value, form)
    assert _SHARED(value) == reference_distinct(value)  # a cache that has seen earlier examples' tokens


_SHARED: Final = text.WordForms(str)


#: Long runs of what each expression looks for, of what it skips, and of their alternation.
TEXT_ADVERSARIES: Final = [
    sized("a"), sized("a "), sized("\u0301"), sized("a\u0301"), sized("\u200b"), sized("a\u200b"), sized("ệ"),
    sized("Đ"), sized("\x01"), sized("\u202e"), sized("\r\n"), sized("_-"), sized("ﬁ"),
]


@pytest.mark.parametrize("function", [
    text.normalise, text.strip_zero_width, text.fold, text.folded_words, text.normalise_newlines,
    lambda value: text.has_forbidden_characters(value, allow_newlines=True),
    lambda value: text.has_forbidden_characters(value, allow_newlines=False),
    lambda value: text.WordForms(str)(value),
], ids=["normalise", "strip_zero_width", "fold", "folded_words", "normalise_newlines", "forbidden_in_text",
        "forbidden_in_line", "word_forms"])
def test_every_expression_on_reader_text_costs_linear_time(function: Callable[[str], object]) -> None:
    small, large, ratio = worst_case_ratio(function, TEXT_ADVERSARIES)
    print(f"\nworst {small * 1e6:.1f} us at {SMALL}, {large * 1e6:.1f} us at {LARGE}: x{ratio:.1f}")
    assert ratio <= BOUND


@pytest.mark.parametrize(("raw", "base", "expected"), [
    ("0", 10, 0), ("42", 10, 42), ("000000007", 10, 7), ("ff", 16, 255), ("0", 16, 0),
    ("", 10, None), ("1234567890", 10, None), ("²", 10, None), ("①", 10, None), ("٣", 10, None), ("３", 10, None),
    (" 7", 10, None), ("7\n", 10, None), ("+7", 10, None), ("-7", 10, None), ("1_0", 10, None), ("7.0", 10, None),
    ("FF", 16, None), ("0x7", 16, None), ("٣", 16, None), ("g", 16, None),
])
def test_ascii_number_takes_ascii_digits_only(raw: str, base: int, expected: int | None) -> None:
    assert text.ascii_number(raw, max_digits=9, base=base) == expected


@settings(max_examples=500, deadline=None)
@given(st.text(st.one_of(st.characters(categories=["Nd", "No", "Nl"]), st.characters()), max_size=12))
def test_ascii_number_never_raises_and_reads_only_ascii(raw: str) -> None:
    value = text.ascii_number(raw, max_digits=9)
    expected = int(raw) if 0 < len(raw) <= 9 and all(c in "0123456789" for c in raw) else None
    assert value == expected
