"""service.models: what the comment form may send, validated after NFC normalisation."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from service import models
from service.models import ARTICLE_ID_RE, BODY_MAX, NAME_MAX, TITLE_MAX, CommentSubmission, PublicComment

VALID: dict[str, Any] = {
    "name": "Nguyễn Văn An", "email": "an@example.com", "title": "Ý kiến", "body": "Bài viết hay.",
    "captcha_id": "abcdefghijklmnop1234", "captcha_answer": "ABCDE",
}
# "ễ" is one character in NFC and three code points in NFD.
E_NFC = "\u1ec5"
E_NFD = unicodedata.normalize("NFD", E_NFC)


def _form(**changes: Any) -> CommentSubmission:
    return CommentSubmission.model_validate({**VALID, **changes})


def _error_types(**changes: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        _form(**changes)
    return {".".join(map(str, e["loc"])): e["type"] for e in info.value.errors()}


def test_a_valid_form() -> None:
    form = _form()
    assert form.name == "Nguyễn Văn An" and form.website == "" and form.parent_id is None


def test_unknown_fields_are_refused() -> None:
    assert _error_types(is_admin=True) == {"is_admin": "extra_forbidden"}


@pytest.mark.parametrize(("field", "limit"), [("name", NAME_MAX), ("title", TITLE_MAX), ("body", BODY_MAX)])
def test_length_limits_are_in_characters_after_nfc(field: str, limit: int) -> None:
    assert (NAME_MAX, TITLE_MAX, BODY_MAX) == (80, 200, 5000)
    assert len(getattr(_form(**{field: E_NFC * limit}), field)) == limit
    assert _error_types(**{field: E_NFC * (limit + 1)}) == {field: "too_long"}
    # In NFD the same text is three times as many code points, yet within the limit once composed.
    nfd = E_NFD * limit
    assert len(nfd) == 3 * limit
    stored = getattr(_form(**{field: nfd}), field)
    assert stored == E_NFC * limit


def test_nfd_and_nfc_input_give_identical_values() -> None:
    nfc = {k: unicodedata.normalize("NFC", v) for k, v in VALID.items()}
    nfd = {k: unicodedata.normalize("NFD", v) for k, v in VALID.items()}
    assert nfd["name"] != nfc["name"]
    assert CommentSubmission.model_validate(nfd) == CommentSubmission.model_validate(nfc)


def test_surrounding_whitespace_is_trimmed_and_blank_is_required() -> None:
    form = _form(name="  An \t", title="\n Tiêu đề  ", body="\n\n  nội dung  \n")
    assert (form.name, form.title, form.body) == ("An", "Tiêu đề", "nội dung")
    assert _error_types(name="   ", body=" \n\t ") == {"name": "required", "body": "required"}
    assert _error_types(title="") == {"title": "required"}


@pytest.mark.parametrize("bad", ["\x00", "\x1b[31m", "\u202e", "\u2066", "\x7f"])
@pytest.mark.parametrize("field", ["name", "title", "body"])
def test_control_and_bidi_characters_are_refused(field: str, bad: str) -> None:
    assert _error_types(**{field: f"xin {bad}chào"}) == {field: "invalid_characters"}


def test_newline_and_tab_are_allowed_in_the_body_only() -> None:
    assert _form(body="dòng một\r\n\tdòng hai").body == "dòng một\n\tdòng hai"
    assert _error_types(name="An\nBình") == {"name": "invalid_characters"}
    assert _error_types(title="a\tb") == {"title": "invalid_characters"}


def test_zero_width_characters_are_stripped_from_name_and_title_but_kept_in_body() -> None:
    form = _form(name="Ad\u200bmin\u200d", title="\ufeffTiêu\u2060 đề", body="emoji 👨\u200d👩")
    assert form.name == "Admin"
    assert form.title == "Tiêu đề"
    assert "\u200d" in form.body
    assert _error_types(name="\u200b\u200b") == {"name": "required"}


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com", "a@exa\nmple.com",
                                   "x" * 300 + "@example.com"])
def test_bad_email(email: str) -> None:
    assert _error_types(email=email) == {"email": "invalid_email"}


def test_email_is_normalised_without_dns() -> None:
    assert _form(email="  An@Example.COM ").email == "An@example.com"
    assert _form(email="someone@no-such-domain-4711.vn").email == "someone@no-such-domain-4711.vn"


def test_types_are_strict() -> None:
    assert _error_types(name=42) == {"name": "string_type"}
    assert _error_types(captcha_answer="") == {"captcha_answer": "string_too_short"}
    assert _error_types(parent_id="nope") == {"parent_id": "string_pattern_mismatch"}


@pytest.mark.parametrize(("article_id", "ok"), [
    ("a", True), ("bai-viet-123", True), ("news:2024.05_x", True), ("A" * 128, True),
    ("A" * 129, False), ("-leading", False), (".x", False), ("có-dấu", False), ("a/b", False), ("", False),
    ("a b", False),
])
def test_article_id_pattern(article_id: str, ok: bool) -> None:
    assert bool(ARTICLE_ID_RE.match(article_id)) is ok


def test_the_public_model_cannot_carry_private_fields() -> None:
    fields = set(PublicComment.model_fields)
    assert not fields & {"email", "ip_hash", "risk", "email_hash"}


# email-validator's verdict is what `_email` must give; the domain cache must change nothing but the cost.
def _library_verdict(value: str) -> str | None:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


ADDRESSES = [
    "an@example.com", "An@Example.COM", "Postmaster@Example.com", "ABUSE@x.vn", "a.b-c+tag@sub.example.vn",
    "a@xn--bcher-kva.example", "a@bücher.example", "a@BÜCHER.example", "a@ｅxample.com", "a@example。com",
    "a@localhost", "a@example", "a@example.invalid", "a@sub.local", "a@[127.0.0.1]", "a@", "@example.com",
    ".a@example.com", "a.@example.com", "a..b@example.com", "a@-example.com", "a@example-.com", "a@ex..com",
    "a@example.com.", "a@exa_mple.com", "a@ab--cd.com", "a@xn--.com", "a@xn--zz.com", "a@1.2.3.4",
    "a@example.c0m", "a@@example.com", "a@b@example.com", '"a b"@example.com', '"ab"@example.com',
    "lan <lan@example.com>", "<lan@example.com>", "nguyễn@example.vn", "ñ@example.com", "a@e\u0301xample.com",
    "a@\u0301example.com", "a@ex ample.com", "a@example.com>", "a<b@example.com", "a@" + "x" * 64 + ".com",
    "x" * 64 + "@example.com", "x" * 240 + "@example.com", "x" * 230 + "@bücher.example",
    "x" * 235 + "@xn--bcher-kva.example", "a@" + ".".join(["abc"] * 62) + ".com", "a@exam\u200bple.com",
    "a@exämple.vn", "www@EXAMPLE.com", "a@example.co\u0308m", "a!#$%&'*+/=?^_`{|}~@example.com",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_email_verdicts_are_email_validators(address: str) -> None:
    assert models._normalised_email(address) == _library_verdict(address)


local_chars = st.sampled_from("aZ09._-+!#$%&'*/=?^`{|}~\"@<> \\ễñ\u0301")
domain_chars = st.sampled_from("aZ09.-_[]:@<> ễÜ\u0301\u3002\uff0e\u200bｅ")
addresses = st.one_of(
    st.emails(),
    st.builds(lambda local, domain: f"{local}@{domain}",
              st.text(local_chars, max_size=12), st.text(domain_chars, max_size=16)),
    st.builds(lambda local, domain: f"{local}@{domain}",
              st.text(local_chars, max_size=12), st.sampled_from(["example.com", "bücher.example", "localhost"])),
    st.text(st.characters(codec="utf-8"), max_size=40),
)


@given(addresses)
@settings(max_examples=500, deadline=None, database=None)
def test_generated_email_verdicts_are_email_validators(address: str) -> None:
    assert models._normalised_email(address) == _library_verdict(address)
