"""Errors over real HTTP: every one is application/problem+json with a stable code, validation names the
fields, messages are Vietnamese unless the client prefers English, and bad bodies never cause a 500."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from support import comment_form, issue_captcha

from service.api import common
from service.settings import Settings

Client = TestClient[web.Request, web.Application]
PROBLEM = "application/problem+json"
URL = "/v1/articles/bai-viet-1/comments"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No pictures rendered ahead: these tests need none, and the app starts and stops faster."""
    return settings.model_copy(update={"captcha_pool_size": 0})


def _form(captcha_id: str = "abcdefghijklmnop1234", **changes: Any) -> dict[str, Any]:
    return comment_form(captcha_id, **changes)


async def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json(content_type=PROBLEM)
    assert body["code"] == code and body["status"] == status
    assert body["type"].endswith(code) and body["title"]
    assert "Traceback" not in orjson.dumps(body).decode()
    return body


def _fields(problem: dict[str, Any]) -> dict[str, str]:
    return {e["field"]: e["code"] for e in problem["errors"]}


async def test_unknown_field_gives_422_with_per_field_errors(client: Client) -> None:
    response = await client.post(URL, json=_form(is_admin=True, name=""))
    problem = await _problem(response, 422, "validation_failed")
    assert _fields(problem) == {"is_admin": "unknown_field", "name": "required"}
    assert all(e["message"] for e in problem["errors"])


async def test_messages_are_vietnamese_by_default_and_english_on_request(client: Client) -> None:
    form = _form(name="x" * 81, email="khong-phai-email")
    vi = await _problem(await client.post(URL, json=form), 422, "validation_failed")
    assert vi["title"] == "Thông tin chưa hợp lệ"
    messages = {e["field"]: e["message"] for e in vi["errors"]}
    assert messages == {"name": "Họ tên tối đa 80 ký tự", "email": "Địa chỉ email không hợp lệ"}
    assert _fields(vi) == {"name": "too_long", "email": "invalid_email"}

    response = await client.post(URL, json=form, headers={"Accept-Language": "en-GB,en;q=0.9,vi;q=0.5"})
    assert response.headers["Content-Language"] == "en"
    en = await _problem(response, 422, "validation_failed")
    assert en["title"] == "Some fields are not valid"
    assert {e["field"]: e["message"] for e in en["errors"]} == {
        "name": "Name can have at most 80 characters", "email": "The email address is not valid"}

    prefers_vi = await client.post(URL, json=form, headers={"Accept-Language": "en;q=0.5, vi"})
    assert prefers_vi.headers["Content-Language"] == "vi"


@pytest.mark.parametrize(("field", "limit"), [("name", 80), ("title", 200), ("body", 5000)])
async def test_length_boundaries_over_http(client: Client, field: str, limit: int) -> None:
    # à: one character, two code points (three UTF-8 bytes) in NFD, so 5000 of them fit in the 16 KiB body.
    letter = "\u00e0"
    at_limit = unicodedata.normalize("NFD", letter * limit)
    assert len(at_limit) > limit
    # Sent as UTF-8, as browsers do (aiohttp's json= would escape every mark as \uXXXX).
    response = await client.post(URL, data=orjson.dumps(_form(await issue_captcha(client), **{field: at_limit})),
                                 headers={"Content-Type": "application/json"})
    assert response.status == 202, await response.text()
    over_form = _form(await issue_captcha(client), **{field: letter * (limit + 1)})
    over = await client.post(URL, data=orjson.dumps(over_form),
                             headers={"Content-Type": "application/json"})
    assert _fields(await _problem(over, 422, "validation_failed")) == {field: "too_long"}


@pytest.mark.parametrize(("changes", "field"), [
    ({"name": "Lan\u202e"}, "name"), ({"title": "a\x00b"}, "title"), ({"body": "x\x1b[2Jy"}, "body"),
    ({"name": "Lan\nAnh"}, "name"),
])
async def test_control_characters_and_bidi_overrides_are_refused(client: Client, changes: dict[str, str],
                                                                 field: str) -> None:
    problem = await _problem(await client.post(URL, json=_form(**changes)), 422, "validation_failed")
    assert _fields(problem) == {field: "invalid_characters"}


async def test_bad_article_id_is_a_404_problem(client: Client) -> None:
    for article in ("-bad", "c%C3%B3-d%E1%BA%A5u", "x" * 129):
        await _problem(await client.post(f"/v1/articles/{article}/comments", json=_form()), 404, "not_found")


async def test_malformed_json_and_bad_utf8_are_400(client: Client) -> None:
    headers = {"Content-Type": "application/json"}
    for raw in (b'{"name": ', b"not json", b'{"name": "\xff\xfe"}', b"\xc3\x28", b""):
        await _problem(await client.post(URL, data=raw, headers=headers), 400, "malformed_json")


async def test_duplicate_keys_are_400(client: Client) -> None:
    raw = orjson.dumps(_form())[:-1] + b', "name": "Someone else"}'
    problem = await _problem(await client.post(URL, data=raw, headers={"Content-Type": "application/json"}),
                             400, "malformed_json")
    assert "lặp lại" in problem.get("detail", "")  # the detail is in the request's language, Vietnamese by default
    english = await _problem(await client.post(URL, data=raw, headers={"Content-Type": "application/json",
                                                                       "Accept-Language": "en"}),
                             400, "malformed_json")
    assert "repeat" in english.get("detail", "")


@pytest.mark.parametrize("raw", [
    orjson.dumps(_form())[:-1] + b',"name":"Someone else"}',  # compact, as browsers and orjson write
    orjson.dumps(_form())[:-1] + b',"\\u006eame":"Someone else"}',  # the same key, escaped
    orjson.dumps(_form(website=""))[:-1] + b',"x":{"a":1,"a":2}}',  # in a nested object
    orjson.dumps(_form(website=""))[:-1] + b',"x":[{"a":1},{"b":1,"b":2}]}',
    b"\n" + orjson.dumps(_form())[:-1] + b',"body":"x"}\n',
])
async def test_duplicate_keys_are_400_however_written(client: Client, raw: bytes) -> None:
    problem = await _problem(await client.post(URL, data=raw, headers={"Content-Type": "application/json",
                                                                       "Accept-Language": "en"}),
                             400, "malformed_json")
    assert "repeat" in problem.get("detail", "")


async def test_a_compact_body_is_read(client: Client) -> None:
    for raw in (orjson.dumps(_form(body='trích "name" và \\u0041 nguyên văn')), orjson.dumps(_form()) + b"\r\n"):
        response = await client.post(URL, data=raw, headers={"Content-Type": "application/json"})
        await _problem(response, 422, "captcha_invalid")  # read and parsed: only the captcha is unknown


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3),
    max_leaves=8)


@given(members=st.lists(st.tuples(st.sampled_from(["a", "b", "name", "\u00e9"]), json_values), max_size=5),
       spaced=st.booleans())
@hypothesis_settings(max_examples=300, deadline=None, database=None)
def test_the_quick_duplicate_check_agrees_with_the_exact_one(members: list[tuple[str, Any]], spaced: bool) -> None:
    """Objects written member by member, repeats allowed, compact or spaced: the same verdict either way."""
    separator = b", " if spaced else b","
    raw = b"{" + separator.join(orjson.dumps(key) + b":" + orjson.dumps(value) for key, value in members) + b"}"
    data = orjson.loads(raw)
    assert common._repeats_a_key(raw, data) == common._has_duplicate_keys(raw)
    if len({key for key, _ in members}) < len(members):
        assert common._has_duplicate_keys(raw)


async def test_json_that_is_not_an_object_is_a_validation_error(client: Client) -> None:
    for raw in (b"[]", b'"text"', b"null", b"42"):
        response = await client.post(URL, data=raw, headers={"Content-Type": "application/json"})
        await _problem(response, 422, "validation_failed")


async def test_not_json_is_415(client: Client) -> None:
    await _problem(await client.post(URL, data="name=Lan"), 415, "unsupported_media_type")
    await _problem(await client.post(URL, data=orjson.dumps(_form()), headers={"Content-Type": "text/plain"}),
                   415, "unsupported_media_type")


async def test_a_body_over_16_kib_is_413_with_or_without_content_length(client: Client) -> None:
    big = orjson.dumps(_form(body="x" * (16 * 1024)))
    await _problem(await client.post(URL, data=big, headers={"Content-Type": "application/json"}),
                   413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 1024

    chunked = await client.post(URL, data=chunks(), headers={"Content-Type": "application/json"})
    await _problem(chunked, 413, "payload_too_large")


async def test_just_under_16_kib_is_read(client: Client) -> None:
    padded = orjson.dumps(_form()) + b" " * (16 * 1024 - len(orjson.dumps(_form())))
    assert len(padded) == 16 * 1024
    response = await client.post(URL, data=padded, headers={"Content-Type": "application/json"})
    await _problem(response, 422, "captcha_invalid")  # read and parsed: only the captcha is unknown


async def test_unknown_route_and_wrong_method_are_problems(client: Client) -> None:
    await _problem(await client.get("/v1/no-such-thing"), 404, "not_found")
    # An encoded newline in the path (which `.` in a route's pattern does not match) is a problem too.
    await _problem(await client.get("/moderation/console.%C3%9A%0A%C2%B2.js"), 404, "not_found")
    await _problem(await client.get("/v1/no%0Athing"), 404, "not_found")
    wrong_method = await client.put(URL, json=_form())
    await _problem(wrong_method, 405, "method_not_allowed")
    # The methods the resource has (RFC 9110), as aiohttp's router says them; the answer has a request id.
    assert set(wrong_method.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}
    assert wrong_method.headers["X-Request-ID"]
    assert wrong_method.headers["X-Content-Type-Options"] == "nosniff"


async def test_healthz(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
