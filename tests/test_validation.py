"""Whole-string validation of every id, cursor and token, and numbers from ASCII digits only.

Per pattern: every valid value is accepted, and a valid value with any character outside the pattern's
alphabet (a newline above all: Python's `$` matches before a final one) put before or after it is refused, by
the compiled expression, by pydantic (Rust regex) and by the parsers. Over real HTTP: arbitrary Unicode in every
query and path parameter of every operation in /openapi.json never gets a 5xx.

FUZZ_EXAMPLES (default 30) sets the examples per parameter.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, Final, TypeAlias
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, note
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError
from support import ADMIN, comment_form, issue_captcha

from service import feed, keys, models, moderation, webhooks
from service.errors import ValidationFailed
from service.publication import Publication

Client: TypeAlias = "TestClient[web.Request, web.Application]"
EXAMPLES: Final = int(os.environ.get("FUZZ_EXAMPLES", "30"))
PROBLEM: Final = "application/problem+json"

#: Each shared pattern, its compiled whole-string form, and the characters a value may hold.
PATTERNS: Final = {
    "article_id": (models.ARTICLE_ID_PATTERN, models.ARTICLE_ID_RE, "A-Za-z0-9._:-"),
    "comment_id": (models.COMMENT_ID_PATTERN, models.COMMENT_ID_RE, "0-9a-z"),
    "captcha_id": (models.CAPTCHA_ID_PATTERN, models.whole_string(models.CAPTCHA_ID_PATTERN), "A-Za-z0-9_-"),
    "hex_id": (models.HEX_ID_PATTERN, models.HEX_ID_RE, "0-9a-f"),
    "webhook_id": (models.HEX_ID_PATTERN, webhooks.WEBHOOK_ID_RE, "0-9a-f"),
    "queue_cursor": (moderation.QUEUE_CURSOR_PATTERN, moderation.QUEUE_CURSOR_RE, "0-9a-z:"),
}
#: A newline and its relatives first: the characters a `$` or a `str.strip` lets through.
EDGE_CHARACTERS: Final = "\n\r \t\x00\x0b\x0c\x85\u2028\u2029\ufeff\u200b"


def _outside(alphabet: str) -> st.SearchStrategy[str]:
    allowed = re.compile(f"[{alphabet}]")
    return st.one_of(st.sampled_from(EDGE_CHARACTERS), st.characters(codec="utf-8")).filter(
        lambda ch: not allowed.fullmatch(ch))


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_the_compiled_pattern_is_the_schema_pattern_over_whole_strings(name: str) -> None:
    pattern, compiled, alphabet = PATTERNS[name]
    adapter = TypeAdapter(Annotated[str, Field(pattern=pattern)])  # pydantic: Rust regex

    @hypothesis_settings(max_examples=200, deadline=None)
    @given(value=st.from_regex(pattern, fullmatch=True), extra=_outside(alphabet), before=st.booleans())
    def check(value: str, extra: str, before: bool) -> None:
        assert compiled.fullmatch(value) and compiled.match(value)
        adapter.validate_python(value)
        spoiled = extra + value if before else value + extra
        note(repr(spoiled))
        assert compiled.match(spoiled) is None and compiled.fullmatch(spoiled) is None
        with pytest.raises(ValidationError):
            adapter.validate_python(spoiled)

    check()


def test_shared_patterns_are_anchored_and_compiled_once() -> None:
    with pytest.raises(ValueError, match="anchored"):
        models.whole_string("[a-z]+")
    assert models.whole_string("^a$").match("a\n") is None
    assert re.compile("^a$").match("a\n") is not None  # why: Python's `$` before a final newline


@hypothesis_settings(max_examples=300, deadline=None)
@given(extra=_outside("0-9a-f"), before=st.booleans(), at=st.integers(0, keys.PARTITIONS - 1))
def test_a_feed_cursor_is_read_only_as_written(extra: str, before: bool, at: int) -> None:
    positions = [(1_700_000_000_000 + i, i) for i in range(keys.PARTITIONS)]
    cursor = feed.encode_cursor(positions)
    assert feed.decode_cursor(cursor) == positions
    parts = cursor.split(".")
    ms, seq = parts[at + 1].split("-")
    parts[at + 1] = f"{extra}{ms}-{seq}" if before else f"{ms}-{seq}{extra}"
    with pytest.raises(ValidationFailed):
        feed.decode_cursor(".".join(parts))


@pytest.mark.parametrize("spelling", ["0x10", "+10", " 10", "1_0", "١٠", "10 ", "10\n", "A", "1" * 17])
def test_a_feed_cursor_has_one_spelling(spelling: str) -> None:
    cursor = feed.encode_cursor([(16, 16)] * keys.PARTITIONS)
    with pytest.raises(ValidationFailed):
        feed.decode_cursor(cursor.replace("10-10", f"{spelling}-10", 1))


@hypothesis_settings(max_examples=300, deadline=None)
@given(value=st.from_regex(r"[0-9]{1,18}", fullmatch=True), extra=_outside("0-9"), before=st.booleans())
def test_a_page_cursor_is_ascii_digits_only(value: str, extra: str, before: bool) -> None:
    assert Publication.parse_cursor(value) == int(value)
    with pytest.raises(ValidationFailed):
        Publication.parse_cursor(extra + value if before else value + extra)


# -- over real HTTP ------------------------------------------------------------------------------------------


async def _submit(client: Client, article_id: str) -> Any:
    form = comment_form(await issue_captcha(client))
    return await client.post(f"/v1/articles/{quote(article_id, safe='')}/comments", json=form)


async def test_a_trailing_newline_does_not_bypass_a_closed_article(client: Client) -> None:
    response = await client.post("/v1/moderation/articles/bai-viet-7/close", headers=ADMIN)
    assert response.status == 200, await response.text()
    for article_id in ("bai-viet-7\n", "bai-viet-7\r\n", "bai-viet-7 ", "\nbai-viet-7", "bai-viet-7\u2028"):
        refused = await _submit(client, article_id)
        assert 400 <= refused.status < 500, (article_id, refused.status, await refused.text())
        assert refused.content_type == PROBLEM
    closed = await _submit(client, "bai-viet-7")
    assert closed.status == 409 and (await closed.json(content_type=PROBLEM))["code"] == "comments_closed"
    for path in ("/v1/articles/bai-viet-7%0A/comments", "/v1/counts?article_id=bai-viet-7%0A",
                 "/v1/moderation/queue?article_id=bai-viet-7%0A"):
        response = await client.get(path, headers=ADMIN)
        assert 400 <= response.status < 500 and response.content_type == PROBLEM, path


NUMBER_PARAMETERS: Final = [("/v1/articles/a1/comments", "limit"), ("/v1/articles/a1/comments", "cursor"),
                             ("/v1/feed", "limit"), ("/v1/feed", "wait"), ("/v1/moderation/queue", "limit"),
                             ("/v1/webhooks/0000000000000000/deliveries", "limit")]
NOT_NUMBERS: Final = ["²", "①", "٣", "３", "¹", "1²", " 3", "3\n", "+3", "1_0", "9" * 30, ""]


async def test_a_number_in_a_query_is_ascii_digits_or_a_problem(client: Client) -> None:
    for path, name in NUMBER_PARAMETERS:
        for value in NOT_NUMBERS:
            response = await client.get(path, params={name: value}, headers=ADMIN)
            assert response.status == 422, (path, name, value, await response.text())
            problem = await response.json(content_type=PROBLEM)
            assert problem["code"] == "validation_failed", problem


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            if method in ("get", "post", "put", "patch", "delete"):
                out.append((path, method, op))
    return out


#: Any Unicode, digits of every script above all, edge characters, and lengths up to a long request line.
ANY_VALUE: Final = st.one_of(
    st.text(st.one_of(st.characters(categories=["Nd", "No", "Nl"]), st.sampled_from(EDGE_CHARACTERS + "0123456789"),
                      st.characters(codec="utf-8")), max_size=24),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=4).flatmap(
        lambda unit: st.integers(1, 3000 // len(unit)).map(lambda n: unit * n)),
)


def _on_loop(loop: asyncio.AbstractEventLoop) -> Callable[[Any], Any]:
    def run(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=60)
    return run


def _sample_path_value(schema: dict[str, Any], name: str) -> str:
    """A valid value for the parameters not under test, so the request reaches the handler."""
    return {"article_id": "a1", "comment_id": "00" + "0" * 24, "captcha_id": "A" * 46, "version": "0" * 12,
            "token_id": "0" * 16, "webhook_id": "0" * 16}.get(name, "x")


def _request(client: Client, path: str, method: str, op: dict[str, Any], param: dict[str, Any],
             value: str) -> Any:
    """The request with `value` in `param` and valid values in the operation's other path parameters."""
    url = path
    for other in op.get("parameters", []):
        if other["in"] == "path":
            given_value = value if other is param else _sample_path_value(other["schema"], other["name"])
            url = url.replace("{" + other["name"] + "}", quote(given_value, safe=""))
    query = {param["name"]: value} if param["in"] == "query" else {}
    if param["name"] == "wait" and value.isascii() and value.isdigit() and 0 < int(value) <= 30:
        query["wait"] = "0"  # a valid wait is a long poll: it costs only time
    body: dict[str, Any] | None = {} if method in ("post", "put", "patch") else None
    return client.request(method.upper(), url, params=query, json=body, headers=ADMIN)


async def test_any_unicode_in_any_parameter_never_gets_a_5xx(client: Client) -> None:
    document = await (await client.get("/openapi.json")).json()
    run = _on_loop(asyncio.get_running_loop())
    tried: Counter[str] = Counter()
    server_errors: list[str] = []
    statuses: Counter[int] = Counter()

    async def call(path: str, method: str, op: dict[str, Any], param: dict[str, Any], value: str) -> tuple[int, str]:
        response = await _request(client, path, method, op, param, value)
        return response.status, await response.text()

    def fuzz(path: str, method: str, op: dict[str, Any], param: dict[str, Any]) -> None:
        label = f"{method.upper()} {path} {param['in']}:{param['name']}"

        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(value=ANY_VALUE)
        def check(value: str) -> None:
            status, body = run(call(path, method, op, param, value))
            tried[label] += 1
            statuses[status] += 1
            if status >= 500:
                server_errors.append(f"{label} {value[:80]!r}: {status} {body[:300]}")
            assert status < 500, (label, value[:80], status, body[:300])

        check()

    targets = [(path, method, op, param) for path, method, op in _operations(document)
               for param in op.get("parameters", []) if param["in"] in ("path", "query")]
    for target in targets:
        await asyncio.to_thread(fuzz, *target)
    total = sum(tried.values())
    print(f"\nunicode in every parameter: {total} inputs over {len(targets)} parameters of "
          f"{len(_operations(document))} operations; statuses {dict(sorted(statuses.items()))}; "
          f"5xx seen: {len(server_errors)}")
    assert len(targets) >= 20 and len(tried) == len(targets)
    assert total >= len(targets) * min(EXAMPLES, 10)
    assert server_errors == []
