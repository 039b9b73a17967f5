"""service.text: NFC normalisation, forbidden characters, zero-width stripping and diacritic folding."""

from __future__ import annotations

import unicodedata

import pytest

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
