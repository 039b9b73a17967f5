"""No public route ever returns an email: every public response of this module goes through `Watched`, which
records it, and each test ends by checking every body and header against every address submitted in it (and
the md5, sha1 and sha256 hex digests of each, in the case variants a careless avatar would hash).

The suite-wide version checks every response of the shared `client` fixture the same way
(`support.PrivacyCheckingClient`); here every public route is driven after distinctive addresses were
submitted."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from support import ADMIN, Client, PrivacyCheckingClient, comment_form, make_app, submit_comment

from service.settings import Settings

#: Routes only tokens reach: they may show moderators the email.
PRIVATE_PREFIXES = ("/v1/moderation", "/v1/feed", "/v1/tokens", "/v1/webhooks", "/metrics")


@dataclass
class Seen:
    method: str
    path: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Watched:
    """The app's TestClient, recording every response to a public route."""

    client: Client
    responses: list[Seen] = field(default_factory=list)
    emails: set[str] = field(default_factory=set)

    async def request(self, method: str, path: str, **kwargs: Any) -> Seen:
        response = await self.client.request(method, path, **kwargs)
        seen = Seen(method, path, response.status, list(response.headers.items()), await response.read())
        if not path.startswith(PRIVATE_PREFIXES):
            self.responses.append(seen)
        return seen

    def forbidden(self) -> set[bytes]:
        needles = set()
        for email in self.emails:
            local, _, domain = email.partition("@")
            for variant in {email, email.lower(), email.upper(), f"{local}@{domain.lower()}"}:
                needles.add(variant.encode())
                for algorithm in (hashlib.md5, hashlib.sha1, hashlib.sha256):
                    needles.add(algorithm(variant.encode()).hexdigest().encode())
            needles.add(local.encode())
        return needles

    def assert_private(self) -> None:
        needles = self.forbidden()
        assert self.responses and needles
        for seen in self.responses:
            blob = seen.body.lower() + b"\n".join(f"{k}: {v}".encode() for k, v in seen.headers).lower()
            for needle in needles:
                assert needle.lower() not in blob, f"{seen.method} {seen.path} ({seen.status}) shows {needle!r}"


@pytest.fixture
async def watched(client: Client) -> AsyncIterator[Watched]:
    recorder = Watched(client)
    yield recorder
    recorder.assert_private()


async def submit(watched: Watched, article: str, email: str, parent_id: str | None = None) -> dict[str, Any]:
    watched.emails.add(email)
    captcha = await watched.request("POST", "/v1/captchas")
    captcha_id = orjson.loads(captcha.body)["id"]
    form = comment_form(captcha_id, name="Độc giả", email=email, body="Bài viết hay", parent_id=parent_id)
    seen = await watched.request("POST", f"/v1/articles/{article}/comments", json=form)
    assert seen.status == 202, seen.body
    result: dict[str, Any] = orjson.loads(seen.body)
    return result


async def moderate(watched: Watched, comment_id: str, action: str) -> None:
    seen = await watched.request("POST", f"/v1/moderation/comments/{comment_id}/decision", json={"action": action},
                                 headers=ADMIN)
    assert seen.status == 200
    assert b"@" in seen.body  # the moderator does see the address: the check below is not vacuous


async def test_no_public_route_returns_an_email(watched: Watched) -> None:
    shown = await submit(watched, "a1", "Tran.Thi.Privacy@Example.com")
    hidden = await submit(watched, "a1", "pending.person.zq@example.org")
    refused = await submit(watched, "a1", "rejected.person.zq@example.net")
    await moderate(watched, shown["id"], "approve")
    await moderate(watched, refused["id"], "reject")
    reply = await submit(watched, "a1", "reply.writer.zq@example.com", parent_id=shown["id"])
    await moderate(watched, reply["id"], "approve")
    await asyncio.sleep(0.25)

    captcha = await watched.request("POST", "/v1/captchas")
    captcha_id = orjson.loads(captcha.body)["id"]
    routes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/v1/captchas/{captcha_id}.png", {}),
        ("GET", f"/v1/captchas/{captcha_id}.wav", {"params": {"lang": "en"}}),
        ("GET", "/v1/articles/a1/comments", {}),
        ("GET", "/v1/articles/a1/comments", {"params": {"order": "newest", "limit": "1"}}),
        ("GET", "/v1/articles/a1/comments", {"headers": {"Origin": "https://news.example"}}),
        ("OPTIONS", "/v1/articles/a1/comments", {"headers": {"Origin": "https://news.example",
                                                             "Access-Control-Request-Method": "POST"}}),
        ("GET", "/v1/counts", {"params": {"article_id": "a1"}}),
        ("GET", "/widget.js", {}),
        ("GET", "/widget.css", {}),
        ("GET", "/demo/articles/a1", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/healthz", {}),
        ("GET", "/readyz", {}),
        ("GET", "/v1/articles/a1/comments", {"params": {"cursor": "x"}}),  # a problem document
        ("GET", "/nope", {}),
    ]
    for item in (shown, hidden, refused, reply):
        routes.append(("GET", f"/v1/comments/{item['id']}/status",
                       {"headers": {"Authorization": f"Receipt {item['receipt']}"}}))
        routes.append(("GET", f"/v1/comments/{item['id']}/status", {}))
    for method, path, kwargs in routes:
        seen = await watched.request(method, path, **kwargs)
        assert seen.status < 500, (path, seen.status)

    statuses = [s for s in watched.responses if s.path.endswith("/status") and s.status == 200]
    assert len(statuses) == 4
    listed = [s for s in watched.responses if s.path == "/v1/articles/a1/comments" and s.status == 200]
    assert any(shown["id"].encode() in s.body and reply["id"].encode() in s.body for s in listed)


async def test_the_check_catches_a_leak(client: Client) -> None:
    """The recorder is not vacuous: a moderator route that shows the address fails it when treated as public."""
    recorder = Watched(client)
    accepted = await submit(recorder, "a1", "caught.leak.zq@example.com")
    seen = await recorder.request("GET", f"/v1/moderation/comments/{accepted['id']}", headers=ADMIN)
    recorder.responses.append(seen)
    with pytest.raises(AssertionError, match="shows"):
        recorder.assert_private()


async def test_every_client_in_the_suite_checks_public_responses(aiohttp_client: Any, settings: Settings) -> None:
    """The suite's client class (`support.PrivacyCheckingClient`) records submitted emails and fails on close if
    a public response showed one; here a leak is planted to show the check can fail."""
    client = await aiohttp_client(make_app(settings))
    assert isinstance(client, PrivacyCheckingClient)
    await submit_comment(client, "a1", email="Planted.Leak@Example.org", title="t", body="b")
    assert client.submitted_emails == {"planted.leak@example.org"}
    client.public_responses.append(("GET /planted 200", b'{"email":"planted.leak@example.org"}'))
    with pytest.raises(AssertionError, match="showed an email"):
        await client.close()
