"""service.risk: rule-based signals shown to moderators."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abcfhimnoprtvwxyz.:/- \nıİſKHTPWWW", max_size=60))
def test_the_cheap_look_for_links_counts_as_the_expression_does(text: str) -> None:
    assert risk._links(text) == len(risk._LINK.findall(text))
