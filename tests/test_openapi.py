"""GET /openapi.json: an OpenAPI 3.1 document that covers every route and whose references resolve."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from yarl import URL

from service.settings import Settings

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No pictures rendered ahead: the document needs none, and the app starts and stops faster."""
    return settings.model_copy(update={"captcha_pool_size": 0})


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


async def test_openapi_document(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] and document["info"]["version"]

    routes = {(route.method.lower(), route.resource.canonical) for route in client.app.router.routes()
              if route.resource is not None and route.method not in ("HEAD", "OPTIONS")}
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert routes == documented
    for must in [("post", "/v1/captchas"), ("post", "/v1/articles/{article_id}/comments"),
                 ("get", "/healthz"), ("get", "/readyz"), ("get", "/openapi.json")]:
        assert must in documented

    refs = _refs(document)
    assert refs
    for ref in refs:
        assert isinstance(_resolve(document, ref), dict), ref

    submit = document["paths"]["/v1/articles/{article_id}/comments"]["post"]
    schema = _resolve(document, submit["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "email", "title", "body", "captcha_id", "captcha_answer"}
    assert "202" in submit["responses"] and "422" in submit["responses"]
    problem = submit["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert "code" in _resolve(document, problem["$ref"])["properties"]
    article = next(p for p in submit["parameters"] if p["name"] == "article_id")
    assert article["in"] == "path" and article["required"] is True
    assert re.compile(article["schema"]["pattern"]).match("bai-viet-1")

    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def _schemas_with_properties(node: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """Every schema in the document that has `properties`, nested ones included, with where it was found."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            found.append((where, node))
        for key, value in node.items():
            found += _schemas_with_properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _schemas_with_properties(value, f"{where}/{index}")
    return found


async def test_every_property_and_parameter_is_described(client: Client) -> None:
    document = await (await client.get("/openapi.json")).json()
    undescribed = [f"{where}.{name}" for where, schema in _schemas_with_properties(document, "#")
                   for name, prop in schema["properties"].items()
                   if not (isinstance(prop.get("description"), str) and prop["description"].strip())]
    assert undescribed == []
    properties = sum(len(schema["properties"]) for _, schema in _schemas_with_properties(document, "#"))
    assert properties > 100

    parameters = [(method, path, p) for path, item in document["paths"].items()
                  for method, op in item.items() for p in op.get("parameters", [])]
    assert len(parameters) > 20
    assert [(m, path, p["name"]) for m, path, p in parameters if not p.get("description", "").strip()] == []
    # The ones a client most needs to get right say what they need to know.
    feed = next(p for m, path, p in parameters if path == "/v1/feed" and p["name"] == "after")
    assert "beginning" in feed["description"]
    schemas = document["components"]["schemas"]
    version = schemas["DecisionRequest"]["properties"]["version"]["description"]
    assert "stale_version" in version and "409" in version and "optional" in version
    assert "/problems/" in schemas["Problem"]["properties"]["type"]["description"]


async def test_no_operation_lists_405(client: Client) -> None:
    """An operation is a method its path has, so a request for it cannot be answered 405: only a method that is
    not documented can (and that one is explained at /problems/method_not_allowed)."""
    document = await (await client.get("/openapi.json")).json()
    routes = {(route.method.lower(), route.resource.canonical) for route in client.app.router.routes()
              if route.resource is not None}
    for path, item in document["paths"].items():
        for method, op in item.items():
            assert (method, path) in routes  # served, so never a 405 for this method on this path
            assert "405" not in op["responses"], (method, path)
            for status, response in op["responses"].items():
                assert response["description"] not in ("", "Error"), (method, path, status)

    response = await client.put("/v1/captchas")  # a method the path does not have
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    problem = await response.json(content_type="application/problem+json")
    assert problem["code"] == "method_not_allowed"
    page = URL(problem["type"])
    assert page.origin() == client.make_url("/").origin() and page.path == "/problems/method_not_allowed"
    assert (await client.get(page.path)).status == 200


async def test_problem_pages_are_documented(client: Client) -> None:
    document = await (await client.get("/openapi.json")).json()
    for path in ("/problems", "/problems/{code}"):
        assert "text/html" in document["paths"][path]["get"]["responses"]["200"]["content"]
    assert "404" in document["paths"]["/problems/{code}"]["get"]["responses"]
    conflict = document["paths"]["/v1/moderation/comments/{comment_id}/decision"]["post"]["responses"]["409"]
    assert "stale_version" in conflict["description"] and "leased_to_other" in conflict["description"]
