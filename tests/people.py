"""Helpers for tests of people's accounts and sessions (`test_accounts.py`, `test_sessions.py`): invite, accept,
sign in over real HTTP, and the headers a page of the service's own origin sends."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from service.accounts import Accounts
from service.appkeys import ACCOUNTS

Client = TestClient[web.Request, web.Application]
Json = dict[str, Any]
ADMIN = {"Authorization": "Bearer test-admin-token"}
PASSWORD = "ngựa vằn ăn cỏ buổi sáng"
COOKIE = "cm_session"


def origin(client: Client) -> str:
    return str(client.make_url("/").origin())


async def invite(client: Client, name: str, role: str = "moderator", headers: dict[str, str] | None = None) -> str:
    """An admin (by bearer token) invites `name`; returns the invitation's token (the link's last part)."""
    response = await client.post("/v1/accounts/invitations", json={"name": name, "role": role},
                                 headers=headers or ADMIN)
    assert response.status == 201, await response.text()
    link: str = (await response.json())["link"]
    return link.rsplit("/", 1)[1]


async def accept(client: Client, token: str, password: str = PASSWORD, expect: int = 201) -> Json:
    response = await client.post(f"/v1/accounts/invitations/{token}/accept", json={"password": password})
    assert response.status == expect, await response.text()
    body: Json = await response.json(content_type=None)
    return body


async def person(client: Client, name: str, role: str = "moderator", password: str = PASSWORD) -> None:
    await accept(client, await invite(client, name, role), password)


async def sign_in(client: Client, name: str, password: str = PASSWORD, totp: str | None = None,
                  expect: int = 200, headers: dict[str, str] | None = None) -> tuple[str, Json]:
    """Sign in as a page of the service would; returns the cookie's value ("" when refused) and the body."""
    body: Json = {"name": name, "password": password}
    if totp is not None:
        body["totp"] = totp
    response = await client.post("/v1/session", json=body, headers={"Origin": origin(client), **(headers or {})})
    assert response.status == expect, await response.text()
    cookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        cookie.load(header)
    value = cookie[COOKIE].value if COOKIE in cookie else ""
    client.session.cookie_jar.clear()  # each test sends the cookie it means, explicitly (`browser`)
    return value, await response.json(content_type=None)


def browser(client: Client, cookie: str, csrf: str | None = None, **extra: str) -> dict[str, str]:
    """The headers of a request from the service's own page: the cookie, the Origin and the CSRF token (an
    `extra` header given as "" is left out)."""
    headers = {"Cookie": f"{COOKIE}={cookie}", "Origin": origin(client)}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    headers.update(extra)
    return {k: v for k, v in headers.items() if v}


def accounts(client: Client) -> Accounts:
    return client.app[ACCOUNTS]
