"""Signing in and the session cookie (`service.accounts`, `service.api.accounts`, `service.api.auth`,
`lua/session_start.lua`, `lua/session_touch.lua`) against a real redis-server over real HTTP: the cookie's
attributes, the CSRF defence, rotation, the idle timeout and the lifetime, ending sessions, sign-in limits, and
decisions that name the person."""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

import pytest
from people import (
    ADMIN,
    COOKIE,
    PASSWORD,
    Client,
    accounts,
    browser,
    invite,
    origin,
    person,
    sign_in,
)
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis
from support import make_app
from test_moderation import submit

from service import keys
from service.settings import Settings

QUEUE = "/v1/moderation/queue"
PROBLEM = "application/problem+json"


async def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    problem: dict[str, Any] = await response.json(content_type=PROBLEM)
    assert problem["code"] == code, problem
    return problem


def _decision(comment_id: str) -> str:
    return f"/v1/moderation/comments/{comment_id}/decision"


async def test_invite_accept_sign_in_sets_a_strict_cookie(client: Client) -> None:
    await person(client, "Lan")
    body = {"name": "Lan", "password": PASSWORD}
    response = await client.post("/v1/session", json=body, headers={"Origin": origin(client)})
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    [header] = response.headers.getall("Set-Cookie")
    cookie = SimpleCookie()
    cookie.load(header)
    morsel = cookie[COOKIE]
    assert len(morsel.value) >= 43
    assert morsel["httponly"] is True and morsel["samesite"] == "Strict" and morsel["path"] == "/"
    assert not morsel["secure"]  # development: served over plain http
    assert morsel["max-age"] == str(12 * 3600) and not morsel["domain"]
    session = await response.json()
    assert (session["name"], session["role"], session["totp_enrolment_required"]) == ("Lan", "moderator", False)
    client.session.cookie_jar.clear()

    shown = await client.get("/v1/session", headers=browser(client, morsel.value))
    assert shown.status == 200 and shown.headers["Cache-Control"] == "no-store"
    assert await shown.json() == session


async def test_the_cookie_is_secure_with_the_host_prefix_outside_development(aiohttp_client: AiohttpClient,
                                                                             settings: Settings) -> None:
    production = settings.model_copy(update={
        "env": "production", "captcha_test_answer": None, "admin_token": SecretStr("a" * 40),
        "unsafe_allow": ["rate_limit_disabled", "min_fill_disabled"]})
    client = await aiohttp_client(make_app(production))
    token = await invite(client, "Lan", headers={"Authorization": f"Bearer {'a' * 40}"})
    await client.post(f"/v1/accounts/invitations/{token}/accept", json={"password": PASSWORD})
    response = await client.post("/v1/session", json={"name": "lan", "password": PASSWORD})
    assert response.status == 200, await response.text()
    cookie = SimpleCookie()
    cookie.load(response.headers["Set-Cookie"])
    morsel = cookie["__Host-cm_session"]
    assert morsel["secure"] is True and morsel["httponly"] is True and morsel["samesite"] == "Strict"
    assert morsel["path"] == "/" and not morsel["domain"]


async def test_a_moderator_decides_with_the_cookie_and_the_decision_names_the_person(client: Client) -> None:
    await person(client, "Lan")
    cookie, session = await sign_in(client, "lan")  # names are matched without case
    assert session["name"] == "Lan"
    first, second = (await submit(client))["id"], (await submit(client))["id"]

    # Reading needs no CSRF token; the person's own page may read the queue.
    queue = await client.get(QUEUE, headers=browser(client, cookie))
    assert queue.status == 200 and len((await queue.json())["comments"]) == 2

    decided = await client.post(_decision(first), json={"action": "approve"},
                                headers=browser(client, cookie, session["csrf_token"]))
    assert decided.status == 200, await decided.text()
    assert (await decided.json())["decided_by"] == "Lan"
    # Without Origin, Sec-Fetch-Site: same-origin stands in for it (the CSRF token is still needed).
    decided = await client.post(_decision(second), json={"action": "reject", "reason": "Lạc đề"},
                                headers=browser(client, cookie, session["csrf_token"], Origin="",
                                                **{"Sec-Fetch-Site": "same-origin"}))
    assert decided.status == 200, await decided.text()

    record = await (await client.get(f"/v1/moderation/comments/{first}", headers=ADMIN)).json()
    assert [entry["by"] for entry in record["history"]] == ["Lan"]
    stats = await (await client.get("/v1/moderation/stats", headers=ADMIN)).json()
    assert stats["decisions_per_moderator"]["Lan"] == {"approve": 1, "reject": 1}


async def test_a_cookie_request_that_changes_something_needs_the_same_origin_and_the_token(client: Client) -> None:
    await person(client, "Lan")
    cookie, session = await sign_in(client, "Lan")
    csrf = session["csrf_token"]
    comment = (await submit(client))["id"]
    approve = {"action": "approve"}
    refusals = {
        "no token": browser(client, cookie),
        "another session's token": browser(client, cookie, "x" * 43),
        "cross-site origin": browser(client, cookie, csrf, Origin="https://evil.example"),
        "sibling subdomain": browser(client, cookie, csrf, Origin="http://news.127.0.0.1.nip.io"),
        "null origin": browser(client, cookie, csrf, Origin="null"),
        "cross-site fetch": browser(client, cookie, csrf, Origin="", **{"Sec-Fetch-Site": "cross-site"}),
        "same-site fetch": browser(client, cookie, csrf, Origin="", **{"Sec-Fetch-Site": "same-site"}),
        "neither origin nor fetch site": browser(client, cookie, csrf, Origin=""),
    }
    for why, headers in refusals.items():
        response = await client.post(_decision(comment), json=approve, headers=headers)
        assert response.status == 403, why
        assert (await response.json(content_type=PROBLEM))["code"] == "csrf_refused", why
    sign_out = await client.delete("/v1/session", headers=browser(client, cookie))
    await _problem(sign_out, 403, "csrf_refused")
    record = await (await client.get(f"/v1/moderation/comments/{comment}", headers=ADMIN)).json()
    assert record["state"] == "pending" and record["history"] == []

    # A machine's bearer token needs none of this.
    response = await client.post(_decision(comment), json=approve, headers=ADMIN)
    assert response.status == 200


async def test_the_public_url_is_the_services_origin_too(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    behind = settings.model_copy(update={"public_url": "https://comments.example"})
    client = await aiohttp_client(make_app(behind))
    await person(client, "Lan")
    cookie, session = await sign_in(client, "Lan")
    response = await client.post("/v1/moderation/articles/a1/close",
                                 headers=browser(client, cookie, session["csrf_token"],
                                                 Origin="https://comments.example"))
    assert response.status != 403, await response.text()


async def test_sign_in_from_another_site_is_refused(client: Client) -> None:
    await person(client, "Lan")
    response = await client.post("/v1/session", json={"name": "Lan", "password": PASSWORD},
                                 headers={"Origin": "https://evil.example"})
    await _problem(response, 403, "csrf_refused")
    assert "Set-Cookie" not in response.headers


async def test_each_sign_in_gets_a_new_cookie_and_sign_out_ends_it(client: Client) -> None:
    await person(client, "Lan")
    old, old_session = await sign_in(client, "Lan")
    new, new_session = await sign_in(client, "Lan")
    assert old != new and old_session["csrf_token"] != new_session["csrf_token"]

    response = await client.delete("/v1/session", headers=browser(client, old, old_session["csrf_token"]))
    assert response.status == 204
    cleared = SimpleCookie()
    cleared.load(response.headers["Set-Cookie"])
    assert cleared[COOKIE].value == "" and cleared[COOKIE]["max-age"] == "0"
    await _problem(await client.get("/v1/session", headers=browser(client, old)), 401, "session_ended")
    await _problem(await client.get(QUEUE, headers=browser(client, old)), 401, "session_ended")
    # The other sign-in's session is another session, and lives on.
    assert (await client.get(QUEUE, headers=browser(client, new))).status == 200


async def test_no_cookie_and_no_token_is_unauthenticated(client: Client) -> None:
    await _problem(await client.get("/v1/session"), 401, "session_ended")
    await _problem(await client.get(QUEUE), 401, "unauthenticated")
    await _problem(await client.get(QUEUE, headers={"Cookie": f"{COOKIE}=made-up-value-of-some-length-0000"}), 401,
                   "session_ended")


@pytest.fixture
def short_sessions(settings: Settings) -> Settings:
    return settings.model_copy(update={"session_idle_seconds": 60, "session_lifetime_seconds": 300})


async def test_the_idle_timeout_slides_and_the_lifetime_does_not(aiohttp_client: AiohttpClient,
                                                                 short_sessions: Settings, redis: Redis) -> None:
    client = await aiohttp_client(make_app(short_sessions))
    await person(client, "Lan")
    now = [1_800_000_000.0]
    accounts(client).clock = lambda: now[0]
    cookie, _ = await sign_in(client, "Lan")
    ttl = await redis.pttl(keys.session(_digest(cookie)))
    assert 0 < ttl <= 60_000  # Redis forgets an idle session by itself too

    for _ in range(5):  # a request every 50 s keeps it alive past the idle timeout...
        now[0] += 50
        assert (await client.get(QUEUE, headers=browser(client, cookie))).status == 200
    now[0] += 50  # ...until the absolute lifetime, 300 s after signing in, however busy
    await _problem(await client.get(QUEUE, headers=browser(client, cookie)), 401, "session_ended")
    assert not await redis.exists(keys.session(_digest(cookie)))

    cookie, _ = await sign_in(client, "Lan")
    now[0] += 59
    assert (await client.get("/v1/session", headers=browser(client, cookie))).status == 200
    now[0] += 60  # 60 s without a request
    await _problem(await client.get("/v1/session", headers=browser(client, cookie)), 401, "session_ended")


def _digest(cookie: str) -> str:
    from service.accounts import digest

    return digest(cookie)


async def test_disabling_an_account_ends_its_sessions_at_once(client: Client) -> None:
    await person(client, "Lan")
    first, _ = await sign_in(client, "Lan")
    second, _ = await sign_in(client, "Lan")
    response = await client.post("/v1/accounts/lan/disable", headers=ADMIN)
    assert response.status == 200 and (await response.json())["disabled"] is True
    for cookie in (first, second):
        await _problem(await client.get(QUEUE, headers=browser(client, cookie)), 401, "session_ended")
    # And the password no longer signs in, with the same answer as a wrong one.
    _, refused = await sign_in(client, "Lan", expect=401)
    assert refused["code"] == "signin_failed"


async def test_an_admin_ends_a_persons_sessions(client: Client) -> None:
    await person(client, "Lan")
    await person(client, "Minh", "admin")
    lan, _ = await sign_in(client, "Lan")
    minh, minh_session = await sign_in(client, "Minh")
    response = await client.post("/v1/accounts/Lan/sessions/revoke",
                                 headers=browser(client, minh, minh_session["csrf_token"]))
    assert response.status == 200, await response.text()
    assert await response.json() == {"ended": 1}
    await _problem(await client.get(QUEUE, headers=browser(client, lan)), 401, "session_ended")
    assert (await client.get(QUEUE, headers=browser(client, minh))).status == 200
    # Lan may sign in again: ending sessions is not disabling.
    await sign_in(client, "Lan")


async def test_a_change_of_role_ends_the_sessions_and_the_new_role_applies(client: Client) -> None:
    await person(client, "Lan")
    cookie, _ = await sign_in(client, "Lan")
    await _problem(await client.get("/v1/tokens", headers=browser(client, cookie)), 403, "forbidden")
    response = await client.patch("/v1/accounts/Lan", json={"role": "admin"}, headers=ADMIN)
    assert response.status == 200 and (await response.json())["role"] == "admin"
    await _problem(await client.get("/v1/tokens", headers=browser(client, cookie)), 401, "session_ended")
    cookie, _ = await sign_in(client, "Lan")
    assert (await client.get("/v1/tokens", headers=browser(client, cookie))).status == 200


@pytest.fixture
def limited(settings: Settings) -> Settings:
    return settings.model_copy(update={"signin_limit_account": (5, 900), "signin_limit_client": (8, 900)})


async def test_failed_sign_ins_are_limited_per_account(aiohttp_client: AiohttpClient, limited: Settings) -> None:
    client = await aiohttp_client(make_app(limited))
    await person(client, "Lan")
    await person(client, "Minh")
    for _ in range(5):
        _, problem = await sign_in(client, "Lan", "sai mật khẩu rồi", expect=401)
        assert problem["code"] == "signin_failed"
    response = await client.post("/v1/session", json={"name": "Lan", "password": PASSWORD},
                                 headers={"Origin": origin(client), "Accept-Language": "en"})
    problem = await _problem(response, 429, "signin_limited")
    assert 0 < int(response.headers["Retry-After"]) <= 900
    assert problem["detail"] == "too many failed sign-ins; try again later"
    vi = await client.post("/v1/session", json={"name": "Lan", "password": PASSWORD},
                           headers={"Origin": origin(client)})
    assert (await vi.json(content_type=PROBLEM))["detail"] == "Đăng nhập sai quá nhiều lần; vui lòng thử lại sau"
    # Another account, from the same client, is not held up by Lan's.
    await sign_in(client, "Minh")


async def test_failed_sign_ins_are_limited_per_client(aiohttp_client: AiohttpClient, limited: Settings) -> None:
    client = await aiohttp_client(make_app(limited))
    await person(client, "Lan")
    for n in range(8):  # 8 different names, a wrong password each: no account reaches its own limit
        await sign_in(client, f"ai-do-{n}", "sai mật khẩu rồi", expect=401)
    response = await client.post("/v1/session", json={"name": "Lan", "password": PASSWORD},
                                 headers={"Origin": origin(client)})
    await _problem(response, 429, "signin_limited")
    assert int(response.headers["Retry-After"]) > 0


async def test_a_success_clears_the_accounts_count(aiohttp_client: AiohttpClient, limited: Settings) -> None:
    client = await aiohttp_client(make_app(limited.model_copy(update={"signin_limit_client": (20, 900)})))
    await person(client, "Lan")
    for _ in range(3):
        for _ in range(4):
            await sign_in(client, "Lan", "sai mật khẩu rồi", expect=401)
        await sign_in(client, "Lan")  # the owner, typing it right at last, is never locked out by their typos


async def test_a_wrong_password_and_an_unknown_name_get_the_same_answer(client: Client,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    await person(client, "Lan")
    verified: list[str] = []
    people = accounts(client)
    original = people._verify

    async def counting(hashed: str, password: str) -> bool:
        verified.append(hashed)
        return await original(hashed, password)

    monkeypatch.setattr(people, "_verify", counting)
    _, wrong = await sign_in(client, "Lan", "sai mật khẩu rồi", expect=401)
    _, unknown = await sign_in(client, "Không-Ai", PASSWORD, expect=401)
    _, malformed = await sign_in(client, "x:y{z}", PASSWORD, expect=401)
    for body in (wrong, unknown, malformed):
        body.pop("instance", None)
    assert wrong == unknown == malformed
    assert wrong["code"] == "signin_failed" and wrong["detail"] == "Sai tên đăng nhập hoặc mật khẩu"
    # An argon2id hash was verified every time, a dummy one for names without an account: alike in cost.
    assert len(verified) == 3 and all(h.startswith("$argon2id$") for h in verified)
