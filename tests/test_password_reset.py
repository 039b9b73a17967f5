"""Password resets (`service.accounts`, `lua/account_reset_issue.lua`, `lua/account_reset.lua`, `api.accounts`,
`comments-service users reset`) against a real redis-server over real HTTP, and the emailed link through a real
SMTP server (aiosmtpd): an admin's link, a link asked for by name, single use, expiry, a newer link voiding the
older, sessions ended, the second factor kept, limits, and the plain page of the link."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from people import ADMIN, PASSWORD, Client, accounts, browser, origin, person, sign_in
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis
from support import make_app
from test_accounts import _cli, _enrol, _problem
from test_mail import Sink, mail_settings, text_part

from service import keys
from service.accounts import RESET_LIMIT_ACCOUNT, RESET_LIMIT_CLIENT, RESET_SECONDS_ADMIN, Notifications, digest, fold
from service.appkeys import MAIL
from service.settings import Settings

NEW_PASSWORD = "con mèo trèo cây cau hỏi thăm"
LINK_RE = re.compile(r"https://binhluan\.example\.vn/moderation/reset/(cmr_[A-Za-z0-9_-]{43})")


async def _issue(client: Client, name: str, expect: int = 201, headers: dict[str, str] | None = None) -> str:
    """An admin's reset link for `name`; returns its token."""
    response = await client.post(f"/v1/accounts/{name}/password-reset", headers=headers or ADMIN)
    assert response.status == expect, await response.text()
    if expect != 201:
        return ""
    assert response.headers["Cache-Control"] == "no-store"
    made = await response.json()
    assert fold(made["name"]) == fold(name) and made["link"].startswith("http://127.0.0.1:8080/moderation/reset/")
    token: str = made["link"].rsplit("/", 1)[1]
    return token


async def _use(client: Client, token: str, password: str = NEW_PASSWORD, expect: int = 200) -> dict[str, Any]:
    response = await client.post(f"/v1/session/password-reset/{token}", json={"password": password})
    assert response.status == expect, await response.text()
    body: dict[str, Any] = await response.json(content_type=None)
    return body


async def _ask(client: Client, name: str, expect: int = 202) -> dict[str, Any]:
    response = await client.post("/v1/session/password-reset", json={"name": name},
                                 headers={"Origin": origin(client)})
    assert response.status == expect, await response.text()
    body: dict[str, Any] = await response.json(content_type=None)
    return body


# -- an admin's link -----------------------------------------------------------------------------------------------

async def test_an_admin_link_sets_a_new_password_once_and_ends_every_session(client: Client, redis: Redis) -> None:
    await person(client, "Lan")
    old_cookie, _ = await sign_in(client, "Lan")
    for _ in range(3):  # failed sign-ins the reset clears
        await sign_in(client, "Lan", "không phải mật khẩu", expect=401)
    counter = keys.rate_limit("signin-account", fold("Lan"), accounts(client)._limit_account[1])
    assert await redis.exists(counter)

    token = await _issue(client, "lan")
    assert token.encode() not in b"".join([k async for k in redis.scan_iter()])  # only its SHA-256 is kept
    assert 0 < await redis.ttl(keys.password_reset(digest(token))) <= RESET_SECONDS_ADMIN
    shown = await client.get(f"/v1/session/password-reset/{token}")
    assert shown.status == 200 and shown.headers["Cache-Control"] == "no-store"
    assert set(await shown.json()) == {"name", "expires_at"} and (await shown.json())["name"] == "Lan"

    assert (await _use(client, token, "Lan123456789", expect=422))["code"] == "weak_password"
    account = await _use(client, token)  # a refused password left the link usable
    assert account["name"] == "Lan" and account["disabled"] is False

    assert (await client.get("/v1/session", headers=browser(client, old_cookie))).status == 401
    assert not await redis.exists(keys.account_sessions(fold("Lan")))
    assert not await redis.exists(counter)
    _, problem = await sign_in(client, "Lan", PASSWORD, expect=401)
    assert problem["code"] == "signin_failed"
    await sign_in(client, "Lan", NEW_PASSWORD)

    assert (await _use(client, token, "một mật khẩu khác hẳn nữa", expect=404))["code"] == "password_reset_invalid"
    await _problem(await client.get(f"/v1/session/password-reset/{token}"), 404, "password_reset_invalid")


async def test_a_newer_link_voids_the_older_and_links_expire(client: Client, redis: Redis) -> None:
    await person(client, "Lan")
    first = await _issue(client, "Lan")
    second = await _issue(client, "Lan")
    assert not await redis.exists(keys.password_reset(digest(first)))
    assert (await _use(client, first, expect=404))["code"] == "password_reset_invalid"

    people = accounts(client)
    start = people.clock()
    people.clock = lambda: start + RESET_SECONDS_ADMIN + 1  # Redis would also drop the key by then (its TTL)
    await _problem(await client.get(f"/v1/session/password-reset/{second}"), 404, "password_reset_invalid")
    assert (await _use(client, second, expect=404))["code"] == "password_reset_invalid"
    people.clock = lambda: start
    await sign_in(client, "Lan", PASSWORD)  # nothing changed


async def test_a_sign_in_checked_before_a_reset_gets_no_session(client: Client, redis: Redis) -> None:
    """The old password is verified, then (before the session starts) the password is reset: the sign-in is
    refused and leaves no session behind."""
    await person(client, "Lan")
    token = await _issue(client, "Lan")
    people = accounts(client)
    verify = people._verify

    async def reset_meanwhile(hashed: str, password: str) -> bool:
        verified = await verify(hashed, password)
        await people.use_reset(token, NEW_PASSWORD)
        return verified

    people._verify = reset_meanwhile  # type: ignore[method-assign]
    _, problem = await sign_in(client, "Lan", PASSWORD, expect=401)
    assert problem["code"] == "signin_failed"
    people._verify = verify  # type: ignore[method-assign]
    assert await redis.zcard(keys.account_sessions(fold("Lan"))) == 0
    assert not [k async for k in redis.scan_iter(match=keys.session("*"))]
    await sign_in(client, "Lan", NEW_PASSWORD)


async def test_racing_uses_of_one_link_set_one_password(client: Client) -> None:
    await person(client, "Lan")
    token = await _issue(client, "Lan")
    replies = await asyncio.gather(*(client.post(f"/v1/session/password-reset/{token}",
                                                 json={"password": f"{NEW_PASSWORD} {n}"}) for n in range(4)))
    assert sorted(r.status for r in replies) == [200, 404, 404, 404]
    winner = next(n for n, r in enumerate(replies) if r.status == 200)
    await sign_in(client, "Lan", f"{NEW_PASSWORD} {winner}")


async def test_who_may_issue_and_for_whom(client: Client) -> None:
    await person(client, "Lan")
    await person(client, "Minh")
    cookie, session = await sign_in(client, "Lan")
    response = await client.post("/v1/accounts/Minh/password-reset", headers=browser(client, cookie,
                                                                                     session["csrf_token"]))
    await _problem(response, 403, "forbidden")
    await _problem(await client.post("/v1/accounts/khong-co/password-reset", headers=ADMIN), 404, "not_found")

    token = await _issue(client, "Minh")
    assert (await client.post("/v1/accounts/Minh/disable", headers=ADMIN)).status == 200
    problem = await _problem(await client.post("/v1/accounts/Minh/password-reset", headers=ADMIN), 409,
                             "account_disabled")
    assert "Minh" in problem["detail"]
    # A link made before the account was disabled no longer works.
    await _problem(await client.get(f"/v1/session/password-reset/{token}"), 404, "password_reset_invalid")
    assert (await _use(client, token, expect=404))["code"] == "password_reset_invalid"


async def test_a_damaged_key_changes_nothing(client: Client, redis: Redis) -> None:
    """lua/account_reset.lua checks every key it was given before its first write."""
    await person(client, "Lan")
    cookie, _ = await sign_in(client, "Lan")
    token = await _issue(client, "Lan")
    account = keys.account(fold("Lan"))
    before = await redis.hgetall(account)
    damaged = "d" * 64
    await redis.zadd(keys.account_sessions(fold("Lan")), {damaged: 9e15})
    await redis.set(keys.session(damaged), "not a hash")
    await _problem(await client.post(f"/v1/session/password-reset/{token}", json={"password": NEW_PASSWORD}), 500,
                   "storage_corrupt")
    assert await redis.hgetall(account) == before and await redis.exists(keys.password_reset(digest(token)))
    assert (await client.get("/v1/session", headers=browser(client, cookie))).status == 200


@pytest.mark.parametrize("token", ["cmr_" + "A" * 43, "cmr_" + "A" * 42, "cmr_" + "A" * 44, "cmi_" + "A" * 43,
                                   "cmr_" + "A" * 42 + "%0A", "cmr_" + "A" * 42 + "%21", "x", "%2F..%2F"])
async def test_an_unknown_or_malformed_link_is_invalid(client: Client, token: str) -> None:
    await _problem(await client.get(f"/v1/session/password-reset/{token}"), 404, "password_reset_invalid")
    response = await client.post(f"/v1/session/password-reset/{token}", json={"password": NEW_PASSWORD})
    await _problem(response, 404, "password_reset_invalid")


async def test_a_reset_keeps_the_second_factor(client: Client) -> None:
    await person(client, "Lan")
    now = [1_800_000_000.0]
    accounts(client).clock = lambda: now[0]
    cookie, session = await sign_in(client, "Lan")
    await _enrol(client, cookie, session["csrf_token"], now[0])
    await _use(client, await _issue(client, "Lan"))
    now[0] += 30
    _, problem = await sign_in(client, "Lan", NEW_PASSWORD, expect=401)
    assert problem["code"] == "totp_required"
    listed = await (await client.get("/v1/accounts", headers=ADMIN)).json()
    assert listed["accounts"][0]["totp"] is True


async def test_the_link_page_sets_the_password_without_script(client: Client) -> None:
    await person(client, "Lan")
    token = await _issue(client, "Lan")
    page = await client.get(f"/moderation/reset/{token}")
    assert page.status == 200 and page.headers["Cache-Control"] == "no-store"
    text = await page.text()
    assert "Lan" in text and 'autocomplete="new-password"' in text and '<label for="password">' in text
    assert "<script" not in text
    form = {"password": NEW_PASSWORD, "again": NEW_PASSWORD + "x"}
    mismatch = await client.post(f"/moderation/reset/{token}", data=form, headers={"Origin": origin(client)})
    assert mismatch.status == 422 and 'role="alert"' in await mismatch.text()
    evil = await client.post(f"/moderation/reset/{token}", data={**form, "again": NEW_PASSWORD},
                             headers={"Origin": "https://evil.example"})
    assert evil.status == 403
    done = await client.post(f"/moderation/reset/{token}", data={**form, "again": NEW_PASSWORD},
                             headers={"Origin": origin(client), "Accept-Language": "en"})
    assert done.status == 201 and 'href="/moderation/"' in await done.text()
    await sign_in(client, "Lan", NEW_PASSWORD)
    assert (await client.get(f"/moderation/reset/{token}")).status == 404


async def test_users_reset_from_the_command_line(client: Client, settings: Settings, tmp_path: Path) -> None:
    assert settings.redis_url
    await person(client, "Lan")
    made = await asyncio.to_thread(_cli, settings.redis_url, tmp_path, "reset", "--name", "LAN")
    assert made.returncode == 0, made.stderr
    link = made.stdout.strip()
    assert re.fullmatch(r"https://binhluan\.example/moderation/reset/cmr_[A-Za-z0-9_-]{43}", link), link
    assert "24 hours" in made.stderr
    await _use(client, link.rsplit("/", 1)[1])
    await sign_in(client, "Lan", NEW_PASSWORD)
    unknown = await asyncio.to_thread(_cli, settings.redis_url, tmp_path, "reset", "--name", "khong-co")
    assert unknown.returncode == 1 and "no such account" in unknown.stderr


# -- asked for by name -----------------------------------------------------------------------------------------------

@pytest.fixture
async def sink() -> Any:
    server = Sink()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def mailing(aiohttp_client: AiohttpClient, settings: Settings, sink: Sink) -> Client:
    made: Client = await aiohttp_client(make_app(mail_settings(settings, sink.url)))
    return made


async def test_a_request_by_name_answers_alike_and_emails_a_working_link(mailing: Client, sink: Sink,
                                                                        redis: Redis) -> None:
    client = mailing
    await person(client, "Lan")
    await person(client, "Minh")  # no address
    await person(client, "Huong")
    people = accounts(client)
    await people.set_notifications("Lan", Notifications(email="lan@bao.example.vn", lang="en"))
    await people.set_notifications("Huong", Notifications(email="huong@bao.example.vn"))
    assert (await client.post("/v1/accounts/Huong/disable", headers=ADMIN)).status == 200
    old_cookie, _ = await sign_in(client, "Lan")

    answers = [await _ask(client, name) for name in ("Lan", "Minh", "Huong", "khong-co", "x:y")]
    assert all(answer == answers[0] for answer in answers)
    messages = await sink.wait_for(1)
    await asyncio.sleep(0.3)  # nothing else is on its way
    assert [m["To"] for m in sink.messages] == ["lan@bao.example.vn"]
    message = messages[0]
    assert message["Subject"] == "Reset your moderation password" and message["List-Unsubscribe"] is None
    found = LINK_RE.findall(text_part(message))
    assert len(found) == 1
    assert (await redis.hget(keys.account(fold("Huong")), "reset")) is None
    assert (await redis.hget(keys.account(fold("Minh")), "reset")) is None

    token = found[0]
    assert (await (await client.get(f"/v1/session/password-reset/{token}")).json())["name"] == "Lan"
    await _use(client, token)
    assert (await client.get("/v1/session", headers=browser(client, old_cookie))).status == 401
    await sign_in(client, "Lan", NEW_PASSWORD)


async def test_requests_by_name_are_limited_per_client_and_per_name(mailing: Client, redis: Redis) -> None:
    client = mailing
    await person(client, "Lan")
    await accounts(client).set_notifications("Lan", Notifications(email="lan@bao.example.vn"))
    assert RESET_LIMIT_ACCOUNT[0] < RESET_LIMIT_CLIENT[0]
    issued = set()
    for _ in range(RESET_LIMIT_ACCOUNT[0]):
        await _ask(client, "Lan")
        issued.add(await redis.hget(keys.account(fold("Lan")), "reset"))
    assert len(issued) == RESET_LIMIT_ACCOUNT[0]
    await _ask(client, "Lan")  # past the name's limit: the same answer, and no new link
    assert await redis.hget(keys.account(fold("Lan")), "reset") in issued
    for _ in range(RESET_LIMIT_CLIENT[0] - RESET_LIMIT_ACCOUNT[0] - 1):
        await _ask(client, "khong-co")
    response = await client.post("/v1/session/password-reset", json={"name": "Lan"},
                                 headers={"Origin": origin(client)})
    await _problem(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    assert client.app[MAIL].enabled


async def test_without_email_a_request_answers_alike_and_issues_nothing(client: Client, redis: Redis) -> None:
    await person(client, "Lan")
    await accounts(client).set_notifications("Lan", Notifications(email="lan@bao.example.vn"))
    assert not client.app[MAIL].enabled
    assert (await _ask(client, "Lan")) == (await _ask(client, "khong-co"))
    assert await redis.hget(keys.account(fold("Lan")), "reset") is None
    assert not [k async for k in redis.scan_iter(match=keys.password_reset("*"))]
    await _problem(await client.post("/v1/session/password-reset", json={"name": "Lan", "email": "x"},
                                     headers={"Origin": origin(client)}), 422, "validation_failed")
