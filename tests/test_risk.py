"""service.risk: rule-based signals shown to moderators."""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from linear_time import BOUND, LARGE, SMALL, sized, worst_case_ratio

from service import risk


def _signals(body: str, *, title: str = "Tiêu đề", name: str = "Lan", blocklist: list[str] | None = None) -> list[str]:
    return risk.signals(name=name, title=title, body=body, blocklist=risk.fold_blocklist(blocklist or []))


def test_an_ordinary_comment_has_no_signals() -> None:
    assert _signals("Bài viết rất hay, cảm ơn tác giả.", blocklist=["đồ ngốc"]) == []


def test_links_and_many_links() -> None:
    assert _signals("xem https://spam.example/x") == ["links"]
    assert _signals("www.a.com và b.vn và c.xyz") == ["many_links"]


def test_blocklisted_phrase_matches_with_diacritics_folded_both_ways() -> None:
    blocklist = ["đồ ngốc"]
    assert "blocklisted_words" in _signals("Anh là do ngoc", blocklist=blocklist)
    assert "blocklisted_words" in _signals("Anh là ĐỒ NGỐC", blocklist=blocklist)
    assert "blocklisted_words" in _signals(unicodedata.normalize("NFD", "anh là đồ ngốc"), blocklist=blocklist)
    assert "blocklisted_words" in _signals("chào", name="do ngoc", blocklist=["ngốc"])
    assert "blocklisted_words" not in _signals("đồ ăn ngon", blocklist=blocklist)


def test_blocklisted_single_word_is_a_word_not_a_substring() -> None:
    assert "blocklisted_words" in _signals("Đúng là ngốc.", blocklist=["ngốc"])
    assert "blocklisted_words" not in _signals("ngocnghech", blocklist=["ngốc"])


def test_shouting() -> None:
    assert "shouting" in _signals("TẤT CẢ ĐỀU LÀ LỪA ĐẢO HẾT RỒI NHÉ")
    assert "shouting" not in _signals("TẤT CẢ đều là lừa đảo hết rồi nhé")


def test_fold_blocklist_drops_blanks() -> None:
    assert risk.fold_blocklist(["  Đồ Ngốc ", "", "   "]) == frozenset({"do ngoc"})


#: The expression links were once counted with (quadratic: see `risk`): the definition `_links` must keep.
REFERENCE_LINK: Final = re.compile(rf"(?i)\b(?:https?://|www\.)\S+|\b[\w-]+\.(?:{'|'.join(risk._TLDS)})\b")
#: Pieces that make links, near misses and the case-folding oddities of (?i), so short texts meet every branch.
LINK_PIECES: Final = ["a", "x", "-", "_", ".", "..", "-.", "com", "net", "io", ".com", ".io", ".COM", "www.", "www",
                      "Www.", "http://", "https://", "httpſ://", "://", "/", " ", "\n", "é", "é-", "1", "ı", "İ",
                      "K", "ſ"]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abcfhimnoprtvwxyz.:/- \nıİſKHTPWWW", max_size=60))
def test_the_cheap_look_for_links_counts_as_the_expression_does(text: str) -> None:
    assert risk._links(text) == len(REFERENCE_LINK.findall(text))


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(LINK_PIECES), max_size=20).map("".join))
def test_the_linear_scan_counts_what_the_expression_counted(text: str) -> None:
    assert risk._count_links(text) == len(REFERENCE_LINK.findall(text))


@pytest.mark.parametrize(("text", "count"), [
    ("a.com-b.net", 2),  # the second link starts where the first ended, inside a run of [\w-]
    ("-.com.net", 1),  # a run of hyphens has no word boundary; "com" before ".net" does
    ("x-www.com-www.com", 2),  # the domain alternative starts first and wins over "www." inside it
    ("www.a.com và b.vn và c.xyz", 3),
    ("a-" * 2495 + " .com", 0),
])
def test_link_counts(text: str, count: int) -> None:
    assert risk._count_links(text) == count == len(REFERENCE_LINK.findall(text))


def test_counting_stops_at_enough() -> None:
    assert risk._links("a.com " * 1000, enough=3) == 3
    assert risk._links("a.com b.com", enough=3) == 2


#: Inputs built to make a backtracking engine work hard on each alternative of the link expression, and on the
#: scan's own searches (a long run before a near miss, many matches, starts that overlap).
LINK_ADVERSARIES: Final = [
    sized("a-", " .com"), sized("-", "a .com"), sized("a-", "-.comx"), sized("a", " .com"), sized("é-", ".coma"),
    sized("a.com"), sized("a.com-"), sized(".com"), sized("www.x "), sized("x-www.com-"), sized("http:/", ".com"),
    sized("https://"), sized("www."), sized("-a", ".c"), sized("a_b-", ".io1"),
]


def test_the_link_scan_costs_linear_time() -> None:
    small, large, ratio = worst_case_ratio(risk._links, LINK_ADVERSARIES)
    print(f"\nlinks: worst {small * 1e6:.0f} us at {SMALL}, {large * 1e6:.0f} us at {LARGE}: x{ratio:.1f}")
    assert ratio <= BOUND


def test_risk_scoring_costs_linear_time() -> None:
    blocklist = risk.fold_blocklist(["đồ ngốc", "lừa đảo", "spam"])

    def score(body: str) -> object:
        return risk.signals(name="Lan", title="Tiêu đề", body=body, blocklist=blocklist)

    small, large, ratio = worst_case_ratio(score, [*LINK_ADVERSARIES, sized("đồ ngố"), sized("do ngoc "),
                                                   sized("A\u0301"), sized("\u0301")])
    print(f"\nsignals: worst {small * 1e6:.0f} us at {SMALL}, {large * 1e6:.0f} us at {LARGE}: x{ratio:.1f}")
    assert ratio <= BOUND
