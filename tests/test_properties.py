"""Property tests for what readers send: any Unicode, any length, NFC/NFD, control, bidi and zero-width
characters, huge and nested JSON, duplicate keys, NaN/Infinity, bad UTF-8.

Each input is either accepted and stored exactly as normalised (read back through the moderation API), or
refused with a 4xx problem+json; never a 5xx. The expected normalisation is written out here from the
documented rules (NFC, trim, CRLF -> LF in the body, zero-width characters removed from name and title),
independently of `service.text`.

Hypothesis drives the HTTP client from a worker thread; the requests run on the test's event loop.
FUZZ_EXAMPLES (default 40) sets the examples over HTTP; the model-only properties run five times as many.
"""

from __future__ import annotations

import asyncio
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeAlias, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError
from support import ADMIN, comment_form, issue_captcha

from service.models import CommentSubmission

EXAMPLES: Final = int(os.environ.get("FUZZ_EXAMPLES", "40"))
ARTICLE: Final = "prop-article"
MAX_BODY_BYTES: Final = 16 * 1024

ZERO_WIDTH: Final = "\u200b\u200c\u200d\u2060\ufeff\u180e\u200e\u200f"
BIDI: Final = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
#: Characters that the rules treat specially, drawn often so every rule is exercised in a short run.
SPECIAL: Final = (ZERO_WIDTH + BIDI + "\r\n\t\x00\x07\x1b\x7f\x85\u00a0\u2028\u2029\u3000 "
                  "\u0301\u0302\u0303\u0309\u0323\u0300"  # combining marks: NFD Vietnamese
                  "ệẫởđĐơưÀÁẠẢÃ" "ﬁ\u212b\u2126"  # precomposed letters, compatibility characters
                  "<>&\"'`\\/{}$")

T = TypeVar("T")
Client: TypeAlias = "TestClient[web.Request, web.Application]"

any_char = st.one_of(st.characters(codec="utf-8"), st.sampled_from(SPECIAL))
#: Short, typical, and long text: up to past every field's limit (the body's limit is 5000 characters).
texts = st.one_of(
    st.text(any_char, max_size=30),
    st.text(any_char, min_size=1, max_size=5).flatmap(
        lambda unit: st.integers(1, 6000 // len(unit)).map(lambda n: unit * n)),
    st.sampled_from(["Nguyễn Văn A", "Nguye\u0302\u0303n", " \u200bAn\u200d ", "Tin\r\nmới\rhôm nay",
                     "x" * 80,
                     "x" * 81, "y" * 200, "y" * 201, "z" * 5000, "z" * 5001, "\u202eevil", "\t", "\u200b"]),
)
#: Text a person might type, so that whole forms are often valid and get stored.
plausible = st.text(st.one_of(st.characters(categories=["L", "M", "N", "P", "S", "Zs"]),
                              st.sampled_from(SPECIAL)), min_size=1, max_size=60)
fields = st.one_of(plausible, plausible, texts)
emails = st.one_of(st.emails(), st.emails(), st.emails(), texts,
                   st.sampled_from(["Lan@Example.COM", " lan@example.com ", "lan@exämple.vn"]))


def _has_forbidden(value: str, newlines: bool) -> bool:
    return any(ch in BIDI or unicodedata.category(ch) == "Cs"
               or (unicodedata.category(ch) == "Cc" and not (newlines and ch in "\n\t")) for ch in value)


def expected_text(value: str, *, maximum: int, body: bool) -> str | None:
    """The documented rule, independently written: the stored value, or None when it must be refused.
    Surrounding whitespace (a pasted trailing tab or newline included) is trimmed before anything is
    judged."""
    if body:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    value = unicodedata.normalize("NFC", value).strip()
    if _has_forbidden(value, newlines=body):
        return None
    if not body:
        value = "".join(ch for ch in value if ch not in ZERO_WIDTH).strip()
    if not value or len(value) > maximum:
        return None
    return value


LIMITS: Final = {"name": (80, False), "title": (200, False), "body": (5000, True)}


def _form(name: str, title: str, body: str, email: str = "reader@example.com") -> dict[str, Any]:
    return comment_form("c" * 22, name=name, email=email, title=title, body=body)


# -- the model alone: fast, many examples ---------------------------------------------------------------

@given(name=fields, title=fields, body=fields)
@hypothesis_settings(max_examples=EXAMPLES * 5, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_model_accepts_exactly_the_normalised_text(name: str, title: str, body: str) -> None:
    values = {"name": name, "title": title, "body": body}
    expected = {field: expected_text(values[field], maximum=m, body=b) for field, (m, b) in LIMITS.items()}
    try:
        form = CommentSubmission.model_validate(_form(name, title, body))
    except ValidationError as exc:
        refused = {str(e["loc"][0]) for e in exc.errors()}
        assert refused == {field for field, value in expected.items() if value is None}
    else:
        assert {"name": form.name, "title": form.title, "body": form.body} == expected


@given(value=st.text(st.one_of(st.characters(categories=["Cs"]), any_char), min_size=1, max_size=20),
       field=st.sampled_from(["name", "title", "body", "email"]))
@hypothesis_settings(max_examples=EXAMPLES * 5, deadline=None, database=None)
def test_model_refuses_lone_surrogates(value: str, field: str) -> None:
    data = _form("An", "Ý kiến", "Nội dung")
    data[field] = value
    has_surrogate = any(unicodedata.category(ch) == "Cs" for ch in value)
    try:
        form = CommentSubmission.model_validate(data)
    except ValidationError:
        return
    assert not has_surrogate
    assert all(unicodedata.category(ch) != "Cs" for ch in getattr(form, field))


@given(name=texts, nfd=st.booleans())
@hypothesis_settings(max_examples=EXAMPLES * 5, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_model_nfc_and_nfd_are_the_same_comment(name: str, nfd: bool) -> None:
    """Vietnamese typed on a Mac arrives decomposed: both spellings must store the same text."""
    composed = unicodedata.normalize("NFC", name)
    decomposed = unicodedata.normalize("NFD", name)
    outcomes = []
    for spelling in (composed, decomposed) if nfd else (decomposed, composed):
        try:
            form = CommentSubmission.model_validate(_form(spelling, spelling, spelling))
            outcomes.append(form.model_dump())
        except ValidationError as exc:
            outcomes.append({"refused": sorted(str(e["loc"][0]) for e in exc.errors())})
    assert outcomes[0] == outcomes[1]


# -- through HTTP ------------------------------------------------------------------------------------------

def _on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)
    return run


async def _post(client: Client, raw: bytes,
                content_type: str = "application/json") -> tuple[int, str, bytes]:
    response = await client.post(f"/v1/articles/{ARTICLE}/comments", data=raw,
                                 headers={"Content-Type": content_type})
    return response.status, response.headers.get("Content-Type", ""), await response.read()


def assert_problem(status: int, content_type: str, body: bytes) -> None:
    """A refusal: 4xx, application/problem+json, with its status and a code."""
    assert 400 <= status < 500, (status, body[:500])
    assert content_type.startswith("application/problem+json"), content_type
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"]


async def _submit_and_read(client: Client, fields: dict[str, str],
                           ascii_only: bool) -> tuple[int, str, bytes, dict[str, Any] | None]:
    data = {**fields, "captcha_id": await issue_captcha(client), "captcha_answer": "abcde"}
    raw = json.dumps(data, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    status, content_type, body = await _post(client, raw)
    stored = None
    if status == 202:
        comment_id = json.loads(body)["id"]
        response = await client.get(f"/v1/moderation/comments/{comment_id}", headers=ADMIN)
        assert response.status == 200
        stored = await response.json()
    return status, content_type, body, stored


async def test_submission_is_stored_as_normalised_or_refused(client: Client) -> None:
    run = _on_loop(asyncio.get_running_loop())
    seen: Counter[str] = Counter()

    @given(name=fields, title=fields, body=fields, email=emails, ascii_only=st.booleans())
    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    def check(name: str, title: str, body: str, email: str, ascii_only: bool) -> None:
        fields = {"name": name, "email": email, "title": title, "body": body}
        status, content_type, raw, stored = run(_submit_and_read(client, fields, ascii_only))
        note(f"status {status}: {raw[:300]!r}")
        size = len(json.dumps({**fields, "captcha_id": "x" * 22, "captcha_answer": "abcde"},
                              ensure_ascii=ascii_only).encode("utf-8", "surrogatepass"))
        try:
            model = CommentSubmission.model_validate(_form(name, title, body, email))
        except ValidationError:
            model = None
        if stored is None:
            assert_problem(status, content_type, raw)
            assert model is None or size > MAX_BODY_BYTES - 100, "a valid form was refused"
            seen["413" if status == 413 else "refused"] += 1
            return
        assert model is not None, "an invalid form was accepted"
        assert {k: stored[k] for k in ("name", "email", "title", "body")} == \
            {"name": model.name, "email": model.email, "title": model.title, "body": model.body}
        for field, (maximum, is_body) in LIMITS.items():
            assert stored[field] == expected_text(fields[field], maximum=maximum, body=is_body)
        seen["stored"] += 1

    await asyncio.to_thread(check)
    print(f"\nproperties over HTTP: {dict(seen)}")
    assert seen["stored"] > 0 and seen["refused"] > 0


def _nested(depth: int, kind: str) -> bytes:
    opening, closing = {"list": ("[", "]"), "dict": ('{"a":', "}")}[kind]
    return (opening * depth + "1" + closing * depth).encode()


def _valid_fields(captcha_id: str) -> dict[str, Any]:
    return comment_form(captcha_id, body="Bài viết hay.")


def _splice(fields: dict[str, Any], key: str, raw_value: bytes, *, repeat: bool = False) -> bytes:
    """`fields` as JSON with `key` set to a raw (possibly invalid) JSON fragment, or repeated with it."""
    text = json.dumps({k: v for k, v in fields.items() if repeat or k != key})
    return text[:-1].encode() + b', "' + key.encode() + b'": ' + raw_value + b"}"


#: Bodies that are not a valid form in a way JSON Schema cannot describe; each must be refused with a 4xx.
#: Nesting depths from 800 to 1100 are left out: they hit the defect that
#: test_deeply_nested_object_is_refused_not_500 shows.
bad_bodies = st.one_of(
    st.binary(max_size=200).map(lambda b: ("bytes", b)),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]).map(lambda v: ("nan", v)),
    st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\x80abc"])
    .map(lambda v: ("utf8", v)),
    st.sampled_from(["name", "email", "title", "body", "captcha_id"])
    .map(lambda k: ("duplicate", k.encode())),
    st.tuples(st.one_of(st.integers(1, 800), st.integers(1101, 3000)), st.sampled_from(["list", "dict"]))
    .map(lambda d: ("nested", _nested(*d))),
    st.sampled_from([b"[]", b"1", b'"text"', b"null", b"true", b"{}", b"[{}]"])
    .map(lambda v: ("not_object", v)),
    st.integers(MAX_BODY_BYTES - 200, 4 * MAX_BODY_BYTES).map(lambda n: ("huge", str(n).encode())),
    st.sampled_from([b"1", b"null", b"[]", b"{}", b"true", b"1e400", b"-0", b'"\\u0000"', b'"\\ud800"']).map(
        lambda v: ("wrong_type", v)),
)


async def _send_bad(client: Client, kind: str,
                    value: bytes) -> tuple[int, str, bytes, int]:
    fields = _valid_fields(await issue_captcha(client))
    if kind == "bytes":
        raw = value
    elif kind in ("nan", "utf8"):
        raw = _splice(fields, "title", value if kind == "nan" else b'"' + value + b'"')
    elif kind == "duplicate":
        raw = _splice(fields, value.decode(), json.dumps(fields[value.decode()] + "2").encode(), repeat=True)
    elif kind == "nested":
        raw = value if value.startswith(b"{") else _splice(fields, "body", value)
    elif kind == "not_object":
        raw = value
    elif kind == "huge":
        raw = _splice(fields, "body", json.dumps("x" * int(value)).encode())
    else:
        raw = _splice(fields, "name", value)
    return *await _post(client, raw), len(raw)


async def test_malformed_bodies_are_refused_with_a_problem(client: Client) -> None:
    run = _on_loop(asyncio.get_running_loop())
    seen: Counter[str] = Counter()

    @given(bad=bad_bodies)
    @hypothesis_settings(max_examples=EXAMPLES * 2, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    def check(bad: tuple[str, bytes]) -> None:
        kind, value = bad
        status, content_type, body, size = run(_send_bad(client, kind, value))
        note(f"{kind}: {status} {body[:300]!r}")
        assert_problem(status, content_type, body)
        if kind == "huge":
            assert status == (413 if size > MAX_BODY_BYTES else 422)
        if kind in ("duplicate", "nan", "utf8", "bytes"):
            assert status in (400, 422)
        seen[f"{kind}:{status}"] += 1

    await asyncio.to_thread(check)
    print(f"\nmalformed bodies over HTTP: {dict(sorted(seen.items()))}")
    assert len({label.split(":")[0] for label in seen}) >= 6, "most kinds of bad body were tried"


async def test_wrong_content_type_is_415(client: Client) -> None:
    raw = json.dumps(_valid_fields(await issue_captcha(client))).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x"):
        status, media, body = await _post(client, raw, content_type)
        assert status == 415
        assert_problem(status, media, body)


@pytest.mark.parametrize("depth", [950, 1000, 1020])
async def test_deeply_nested_object_is_refused_not_500(client: Client, depth: int) -> None:
    status, content_type, body = await _post(client, _nested(depth, "dict"))
    assert_problem(status, content_type, body)
