"""GET /openapi.json: an OpenAPI 3.1 document that covers every route and whose references resolve."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]


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
