"""Schemathesis against our own `/openapi.json`, served by `comments-service run` in a subprocess: every
operation, with valid (positive) and invalid (negative) inputs, plus a stateful run that follows links from
a submission to its moderation, retraction and receipt status.

Checks: no response >= 500, every response matches its documented schema, status code and content type, and
invalid inputs are refused with a 4xx. FUZZ_EXAMPLES (default 10) sets examples per operation and mode in the
bounded run; the slow run (`make test-slow`) tries LONG_EXAMPLES (40) per operation and mode, and `make fuzz`
raises FUZZ_EXAMPLES to 2000.
"""

from __future__ import annotations

import copy
import json
import os
import socket
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any, Final, TypeAlias

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from support import ADMIN, TEST_ANSWER, RedisServer
from tcp_proxy import ServedService

from service import text

Case: TypeAlias = "schemathesis.Case[Any]"
Operation: TypeAlias = "schemathesis.APIOperation[Any, Any, Any, Any]"
EXAMPLES: Final = int(os.environ.get("FUZZ_EXAMPLES", "10"))
LONG_EXAMPLES: Final = max(40, EXAMPLES)
SUBMIT: Final = "POST /v1/articles/{article_id}/comments"
CHECKS: Final = [not_a_server_error, response_schema_conformance, status_code_conformance,
                 content_type_conformance]

GET_MODERATED: Final = "get_v1_moderation_comments_comment_id"
DECIDE: Final = "post_v1_moderation_comments_comment_id_decision"
RETRACT: Final = "post_v1_moderation_comments_comment_id_retract"
BY_ID: Final = {"comment_id": "$response.body#/id"}
CAPTCHA_ID: Final = "$response.body#/id"
#: Links the served document does not declare yet (a submission's id leads to its moderation and status).
LINKS: Final = {
    ("/v1/articles/{article_id}/comments", "post", "202"): {
        "GetModerated": {"operationId": GET_MODERATED, "parameters": BY_ID},
        "Decide": {"operationId": DECIDE, "parameters": BY_ID},
        "Retract": {"operationId": RETRACT, "parameters": BY_ID},
        "Status": {"operationId": "get_v1_comments_comment_id_status", "parameters": {
            "comment_id": "$response.body#/id", "header.Authorization": "Receipt {$response.body#/receipt}"}},
    },
    ("/v1/moderation/comments/{comment_id}/decision", "post", "200"): {
        "RetractDecided": {"operationId": RETRACT, "parameters": BY_ID},
        "ListArticle": {"operationId": "get_v1_articles_article_id_comments",
                        "parameters": {"article_id": "$response.body#/article_id"}},
    },
    ("/v1/captchas", "post", "201"): {
        "Submit": {"operationId": "post_v1_articles_article_id_comments",
                   "requestBody": {"captcha_id": CAPTCHA_ID, "captcha_answer": TEST_ANSWER, "name": "Lan",
                                   "email": "lan@example.com", "title": "Ý kiến", "body": "Bài viết hay."}},
        "Image": {"operationId": "get_v1_captchas_captcha_id_png", "parameters": {"captcha_id": CAPTCHA_ID}},
        "Audio": {"operationId": "get_v1_captchas_captcha_id_wav", "parameters": {"captcha_id": CAPTCHA_ID}},
    },
}


@pytest.fixture(scope="module")
def served(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedService]:
    redis_server.empty()  # what earlier tests left behind is not this run's data
    service = ServedService(redis_server.url, tmp_path_factory.mktemp("fuzz-service"))
    service.start()
    yield service
    service.stop()


def _with_links(document: dict[str, Any]) -> dict[str, Any]:
    document = copy.deepcopy(document)
    for (path, method, status), links in LINKS.items():
        document["paths"][path][method]["responses"][status]["links"] = links
    return document


@pytest.fixture(scope="module")
def api(served: ServedService) -> schemathesis.BaseSchema:
    with urllib.request.urlopen(f"{served.url}/openapi.json", timeout=5) as response:
        document = json.load(response)
    schema = schemathesis.openapi.from_dict(_with_links(document))
    assert "links" not in json.dumps(document), "the document now has links of its own: use them"
    schema.config.update(base_url=served.url)
    schema.config.generation.update(max_examples=EXAMPLES, with_security_parameters=False)
    # The live events stream never ends: its first event is what the checks read (schemathesis otherwise reads
    # 20 events or until the request's timeout).
    schema.config.max_stream_events = 1
    return schema


def _fresh_captcha(session: requests.Session, base_url: str) -> str:
    response = session.post(f"{base_url}/v1/captchas", timeout=10)
    assert response.status_code == 201, response.text
    captcha_id: str = response.json()["id"]
    return captcha_id


def _solve_captcha(case: Case, session: requests.Session, base_url: str) -> None:
    """A positive submission with a solved captcha and a real address goes all the way into the queue, not
    just to the captcha check (the document types email as a string: generated strings are almost never
    addresses, and the property tests cover email on their own)."""
    if case.operation.label == SUBMIT and isinstance(case.body, dict) and "captcha_id" in case.body:
        case.body["captcha_id"] = _fresh_captcha(session, base_url)
        case.body["captcha_answer"] = TEST_ANSWER
        case.body["email"] = "reader@example.com"
        # A filled honeypot is answered with an ordinary-looking 202 for a comment that does not exist, and a
        # parent that is not an approved comment is refused: either way the links would lead nowhere.
        case.body["website"] = ""
        case.body.pop("parent_id", None)
        for field, maximum in (("name", 80), ("title", 200), ("body", 5000)):
            value = case.body.get(field)
            if isinstance(value, str):
                case.body[field] = _repaired(value, maximum)


def _repaired(value: str, maximum: int) -> str:
    """Generated strings are mostly control characters or blank after trimming, which the service refuses;
    keep what was generated minus forbidden characters, non-empty and within length."""
    kept = "".join(ch for ch in value if not text.has_forbidden_characters(ch, allow_newlines=False))
    return ("x" + kept)[:maximum]


@schemathesis.check
def rejects_negative_data(ctx: Any, response: Any, case: Case) -> bool | None:
    """Schemathesis' negative_data_rejection, counting 413 as the refusal it is: an oversized invalid body is
    refused for its size before its content is looked at."""
    if response.status_code == 413:
        return None
    result: bool | None = negative_data_rejection(ctx, response, case)
    return result


def _fuzz(operation: Operation, mode: GenerationMode, session: requests.Session, base_url: str,
          tried: Counter[str], statuses: Counter[int], examples: int) -> None:
    checks = [*CHECKS, rejects_negative_data] if mode is GenerationMode.NEGATIVE else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(max_examples=examples, deadline=None, database=None,
                         phases=[Phase.explicit, Phase.generate, Phase.shrink],
                         suppress_health_check=list(HealthCheck))
    def run(case: Case) -> None:
        if mode is GenerationMode.POSITIVE:
            _solve_captcha(case, session, base_url)
        _no_long_poll(case)
        response = case.call(session=session, headers=ADMIN, timeout=30)
        tried[mode.value] += 1
        statuses[response.status_code] += 1
        case.validate_response(response, checks=checks, headers=ADMIN)

    run()


def _no_long_poll(case: Case) -> None:
    """A valid feed `wait` of 1-30 s is a long poll costing only time; 0 is as valid and answers at once."""
    wait = (case.query or {}).get("wait")
    if case.operation.label == "GET /v1/feed" and isinstance(wait, int) and not isinstance(wait, bool) \
            and 0 < wait <= 30:
        case.query["wait"] = 0


def _fuzz_all(api: schemathesis.BaseSchema, base_url: str,
              examples: int) -> tuple[Counter[str], Counter[int], list[str], int]:
    session = requests.Session()
    tried: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                try:
                    _fuzz(operation, mode, session, base_url, tried, statuses, examples)
                except FlakyStrategyDefinition as exc:
                    # Schemathesis' own strategies sometimes draw differently for the same choices (seen on a
                    # negative DELETE /v1/tokens/{token_id}: "Inconsistent data generation", no request judged;
                    # schemathesis#4518): Hypothesis then stops. That operation and mode run once more, afresh;
                    # a second time is a failure like any other.
                    print(f"\n{operation.label} [{mode.value}]: run again after {type(exc).__name__}")
                    _fuzz(operation, mode, session, base_url, tried, statuses, examples)
            except Unsatisfiable:
                # A negative case needs an input to break; for some operations (no parameters, or only a path
                # parameter whose invalid values cannot be routed) Schemathesis finds none: no failure.
                if mode is GenerationMode.POSITIVE:
                    failures.append(f"{operation.label} [positive]: no inputs could be generated")
            except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, not the first
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:3000]}")
    return tried, statuses, failures, len(operations)


@pytest.mark.parametrize("examples", [
    pytest.param(EXAMPLES, id="bounded"),
    pytest.param(LONG_EXAMPLES, id="long", marks=pytest.mark.slow),
])
def test_every_operation_positive_and_negative(api: schemathesis.BaseSchema, served: ServedService,
                                               examples: int) -> None:
    tried, statuses, failures, operations = _fuzz_all(api, served.url, examples)
    print(f"\nschemathesis: {sum(tried.values())} cases ({dict(tried)}) over {operations} operations; "
          f"statuses {dict(sorted(statuses.items()))}")
    assert operations >= 30, "every route of the app is in the document"
    assert sum(tried.values()) >= operations
    assert failures == [], "\n\n".join(failures)  # first: a server error is among them, with its request
    assert not [s for s in statuses if s >= 500]
    assert statuses[202] > 0, "some positive submissions reached the queue"


# Defects the random run once found, each pinned by a deterministic test; the random run tolerates no failure.

def test_defect_widget_content_types(api: schemathesis.BaseSchema, served: ServedService) -> None:
    for path in ("/widget.js", "/widget.css", "/demo/articles/a1"):
        response = requests.get(f"{served.url}{path}", timeout=10)
        assert response.status_code == 200
        template = path if path.startswith("/widget") else "/demo/articles/{article_id}"
        documented = api.raw_schema["paths"][template]
        media_types = documented["get"]["responses"]["200"]["content"]
        served_type = response.headers["Content-Type"].split(";")[0]
        assert served_type in media_types, f"{path}: served {served_type}, documented {sorted(media_types)}"


def test_defect_submission_limits_documented(api: schemathesis.BaseSchema) -> None:
    properties = api.raw_schema["components"]["schemas"]["CommentSubmission"]["properties"]
    limits = [(properties[f].get("minLength"), properties[f].get("maxLength"))
              for f in ("name", "title", "body")]
    assert limits == [(1, 80), (1, 200), (1, 5000)]


def test_defect_counts_max_items(served: ServedService) -> None:
    response = requests.get(f"{served.url}/v1/counts", params=[("article_id", "a1")] * 101, timeout=10)
    assert response.status_code == 422


def test_defect_claim_limit_boolean(served: ServedService) -> None:
    response = requests.post(f"{served.url}/v1/moderation/claims", json={"limit": True}, headers=ADMIN,
                             timeout=10)
    assert response.status_code == 422


def test_defect_long_request_line(served: ServedService) -> None:
    response = requests.get(f"{served.url}/v1/feed", params={"after": "\U0001f600" * 1000}, headers=ADMIN,
                            timeout=10)
    assert 400 <= response.status_code < 500
    assert response.headers["Content-Type"].startswith("application/problem+json")


def test_request_head_beyond_the_parser_limits_is_a_problem(served: ServedService) -> None:
    """aiohttp's parser refuses these before any middleware runs; they are still problem+json (service.server)."""
    too_long_line = b"GET /v1/counts?article_id=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    too_long_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n"
    malformed = b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n"
    for head in (too_long_line, too_long_header, malformed):
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(head)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        status_line, _, rest = answer.partition(b"\r\n")
        headers, _, body = rest.partition(b"\r\n\r\n")
        assert status_line.split()[1] in (b"400", b"413", b"431"), status_line
        assert b"content-type: application/problem+json" in headers.lower(), headers
        problem = orjson.loads(body)
        assert problem["code"] in ("bad_request", "payload_too_large") and problem["status"] == int(
            status_line.split()[1])


def test_stateful_links(api: schemathesis.BaseSchema, served: ServedService) -> None:
    """Submission -> moderation view, decision, retraction, receipt status, list; captcha -> image, audio."""
    session = requests.Session()
    steps: Counter[str] = Counter()
    base = api.include(path_regex=r"^/v1/(articles|moderation/comments|comments|captchas)").as_state_machine()

    class Machine(base):  # type: ignore[valid-type,misc]
        def before_call(self, case: Case) -> None:
            _solve_captcha(case, session, served.url)

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            headers = dict(ADMIN)
            if case.operation.label == "GET /v1/comments/{comment_id}/status":
                headers.pop("Authorization")  # the link supplies the receipt
            return {"session": session, "headers": headers, "timeout": 30}

        def validate_response(self, response: schemathesis.Response, case: Case,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            steps[f"{case.operation.label} {response.status_code}"] += 1
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    Machine.run(settings=hypothesis_settings(
        max_examples=max(10, EXAMPLES), stateful_step_count=8, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink]))
    linked = {label for label in steps if label.startswith((
        "GET /v1/moderation/comments/{comment_id} 200",
        "POST /v1/moderation/comments/{comment_id}/decision 200",
        "GET /v1/comments/{comment_id}/status 200"))}
    print(f"\nschemathesis stateful: {sum(steps.values())} calls; {len(steps)} (operation, status) pairs")
    assert sum(steps.values()) > 0
    assert not [label for label in steps if label.endswith((" 500", " 502", " 503", " 504"))]
    assert linked, f"links led to no successful follow-up: {sorted(steps)}"

