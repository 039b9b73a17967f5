"""Problem documents speak the request's language in `detail` as in `title`, and their `type` is a page on the
service (`/problems/<code>`) that explains the code in Vietnamese and English."""

from __future__ import annotations

import ast
import html
import string
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from support import comment_form, make_app
from yarl import URL

from service import i18n
from service.api.problems import type_url
from service.errors import ServiceError, registry
from service.settings import Settings

Client = TestClient[web.Request, web.Application]
PROBLEM = "application/problem+json"
URL_COMMENTS = "/v1/articles/bai-viet-1/comments"
SERVICE = Path(__file__).parent.parent / "service"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"captcha_pool_size": 0})


async def _both(client: Client, method: str, path: str, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same request's problem in Vietnamese (the default) and in English."""
    headers = kwargs.pop("headers", {})
    out = []
    for language in (None, "en-US,en;q=0.9"):
        sent = {**headers, **({"Accept-Language": language} if language else {})}
        response = await client.request(method, path, headers=sent, **kwargs)
        assert response.content_type == PROBLEM, await response.text()
        out.append(await response.json(content_type=PROBLEM))
    vi, en = out
    assert vi["code"] == en["code"] and vi["detail"] and en["detail"]
    assert vi["detail"] != en["detail"] and vi["title"] != en["title"]
    return vi, en


async def test_detail_is_in_the_request_language(client: Client) -> None:
    vi, en = await _both(client, "GET", "/khong-co")
    assert (vi["code"], vi["detail"], en["detail"]) == ("not_found", "Không có tài nguyên này", "no such resource")

    vi, en = await _both(client, "POST", URL_COMMENTS, data=b"x", headers={"Content-Type": "text/plain"})
    assert vi["code"] == "unsupported_media_type"
    assert (vi["detail"], en["detail"]) == ("Hãy gửi nội dung dưới dạng application/json",
                                            "send the body as application/json")

    vi, en = await _both(client, "GET", "/v1/moderation/queue")
    assert vi["code"] == "unauthenticated" and "Hãy gửi" in vi["detail"] and en["detail"].startswith("send")

    vi, en = await _both(client, "POST", "/v1/moderation/claims", json={})
    assert vi["code"] == "unauthenticated"

    vi, en = await _both(client, "PUT", "/v1/captchas")
    assert vi["code"] == "method_not_allowed" and vi["detail"] == "Địa chỉ này không nhận phương thức HTTP này"


async def test_details_with_values_are_localised(client: Client) -> None:
    vi, en = await _both(client, "GET", "/v1/articles/bai-viet-1/comments?limit=0")
    assert vi["code"] == "validation_failed"
    assert (vi["detail"], en["detail"]) == ("limit phải là số nguyên từ 1 đến 100",
                                            "limit must be an integer from 1 to 100")

    big = b'{"body": "' + b"x" * 20_000 + b'"}'
    vi, en = await _both(client, "POST", URL_COMMENTS, data=big, headers={"Content-Type": "application/json"})
    assert vi["code"] == "payload_too_large"
    assert (vi["detail"], en["detail"]) == ("Nội dung gửi lên tối đa 16384 byte", "the body may be at most 16384 bytes")

    vi, en = await _both(client, "GET", "/v1/counts")
    assert (vi["detail"], en["detail"]) == ("Hãy gửi từ 1 đến 100 tham số article_id",
                                            "give 1 to 100 article_id parameters")


async def test_validation_detail_names_each_field_and_errors_stay_machine_readable(client: Client) -> None:
    form = comment_form("abcdefghijklmnop1234", name="", is_admin=True)
    vi, en = await _both(client, "POST", URL_COMMENTS, json=form)
    assert vi["code"] == "validation_failed"
    assert vi["detail"] == "; ".join(f"Trường {e['field']}: {e['message']}" for e in vi["errors"])
    assert en["detail"] == "; ".join(f"Field {e['field']}: {e['message']}" for e in en["errors"])
    assert vi["detail"].startswith("Trường name: ") and en["detail"].startswith("Field name: ")
    assert [(e["field"], e["code"]) for e in vi["errors"]] == [(e["field"], e["code"]) for e in en["errors"]] == [
        ("name", "required"), ("is_admin", "unknown_field")]


async def test_type_is_an_absolute_url_of_a_page_on_the_service(client: Client) -> None:
    problem = await (await client.get("/khong-co")).json(content_type=PROBLEM)
    page = URL(problem["type"])
    assert page.is_absolute() and page.origin() == client.make_url("/").origin()
    assert page.path == "/problems/not_found"
    response = await client.get(page.path)
    assert response.status == 200 and response.content_type == "text/html"


@pytest.mark.parametrize("code", sorted(registry()))
async def test_every_code_has_a_page_in_both_languages(client: Client, code: str) -> None:
    response = await client.get(f"/problems/{code}")
    assert response.status == 200
    assert response.content_type == "text/html" and response.charset == "utf-8"
    page = await response.text()
    explanation = i18n.EXPLANATIONS[code]
    languages: tuple[i18n.Lang, i18n.Lang] = ("vi", "en")
    for index, lang in enumerate(languages):
        assert f'<section lang="{lang}">' in page
        assert html.escape(i18n.title(code, lang)) in page
        for text in (explanation.meaning[index], explanation.action[index]):
            assert html.escape(text) in page
    assert f"<code>{code}</code>" in page
    assert str(registry()[code].status) in page
    # Nothing a Content-Security-Policy without 'unsafe-inline' would block.
    assert "<script" not in page and "style=" not in page and "<style" not in page


async def test_the_index_lists_every_code(client: Client) -> None:
    response = await client.get("/problems")
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    for code in registry():
        assert f'href="/problems/{code}"' in page


@pytest.mark.parametrize("code", ["khong_co", "NOT_FOUND", "not-found", "a" * 41, "%3Cscript%3E", "error.json"])
async def test_an_unknown_code_is_a_404_problem(client: Client, code: str) -> None:
    response = await client.get(f"/problems/{code}")
    assert response.status == 404 and response.content_type == PROBLEM
    problem = await response.json(content_type=PROBLEM)
    assert problem["code"] == "not_found" and problem["detail"] == "Không có loại lỗi này"


async def test_the_scheme_comes_from_a_trusted_proxy_only(aiohttp_client: Any, settings: Settings) -> None:
    headers = {"X-Forwarded-Proto": "https"}
    direct = await aiohttp_client(make_app(settings))
    problem = await (await direct.get("/khong-co", headers=headers)).json(content_type=PROBLEM)
    assert problem["type"].startswith("http://")

    behind_proxy = settings.model_copy(update={"trusted_proxies": [ip_network("127.0.0.0/8")]})
    proxied = await aiohttp_client(make_app(behind_proxy))
    problem = await (await proxied.get("/khong-co", headers=headers)).json(content_type=PROBLEM)
    assert problem["type"] == f"https://{proxied.make_url('/').authority}/problems/not_found"


@pytest.mark.parametrize("host", ["evil.example/x?", "a b", "", "x" * 300, "[::1", "host:port"])
def test_an_odd_host_header_gives_a_relative_type(host: str) -> None:
    request = make_mocked_request("GET", "/", headers={"Host": host})
    assert type_url(request, "not_found") == "/problems/not_found"


def test_a_plain_host_gives_an_absolute_type() -> None:
    for host in ("comments.example", "comments.example:8443", "127.0.0.1:8080", "[::1]:8080"):
        request = make_mocked_request("GET", "/", headers={"Host": host})
        assert type_url(request, "not_found") == f"http://{host}/problems/not_found"


def test_every_code_has_titles_and_explanations() -> None:
    codes = set(registry())
    assert codes == set(i18n.TITLES) == set(i18n.EXPLANATIONS)
    for code in codes:
        explanation = i18n.EXPLANATIONS[code]
        assert all(text.strip() for text in (*explanation.meaning, *explanation.action)), code
        assert explanation.meaning[0] != explanation.meaning[1] and explanation.action[0] != explanation.action[1]


def _raised_templates() -> dict[str, list[str]]:
    """Every detail template raised in `service`: the string literal given to an error class, or to a function
    that returns one (such as `_captcha_invalid`). A function that builds its error with a literal template of its
    own (such as `scripts.corrupt`, whose argument is a value in the template) is not a maker: its literal counts."""
    classes = {cls.__name__ for cls in _error_classes()}
    makers = set(classes)
    trees = {path: ast.parse(path.read_text()) for path in sorted(SERVICE.rglob("*.py"))}

    def fixed_template(function: ast.FunctionDef) -> bool:
        return any(isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in classes
                   and call.args and isinstance(call.args[0], ast.Constant) for call in ast.walk(function))

    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and isinstance(node.returns, ast.Name | ast.Constant):
                returned = node.returns.id if isinstance(node.returns, ast.Name) else node.returns.value
                if returned in makers and not fixed_template(node):
                    makers.add(node.name)
    found: dict[str, list[str]] = {}
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in makers and node.args:
                first = node.args[0]
                where = f"{path.relative_to(SERVICE.parent)}:{node.lineno}"
                assert not isinstance(first, ast.JoinedStr), f"{where}: pass the values in params, not an f-string"
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.setdefault(first.value, []).append(where)
    return found


def _error_classes() -> list[type[ServiceError]]:
    out: list[type[ServiceError]] = []
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop()
        out.append(cls)
        pending += cls.__subclasses__()
    return out


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_raised_detail_has_a_vietnamese_translation() -> None:
    raised = _raised_templates()
    assert len(raised) > 30
    missing = {template: where for template, where in raised.items() if template not in i18n.DETAILS}
    assert missing == {}, "add these to i18n.DETAILS"
    for english, vietnamese in i18n.DETAILS.items():
        assert _placeholders(english) == _placeholders(vietnamese), english
        assert english != vietnamese
