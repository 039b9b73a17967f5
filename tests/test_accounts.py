"""People's accounts (`service.accounts`, `service.api.accounts`, `lua/account_accept.lua`, `comments-service
users`) against a real redis-server over real HTTP: names, invitations (single use, expiry), passwords, the admin
routes, the invitation page, the command line, and TOTP (RFC 6238) with its enrolment and sign-in."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from people import (
    ADMIN,
    PASSWORD,
    Client,
    accept,
    accounts,
    browser,
    invite,
    origin,
    person,
    sign_in,
)
from pytest_aiohttp import AiohttpClient
from redis.asyncio import Redis
from support import make_app

from service import keys
from service.accounts import (
    INVITATION_SECONDS,
    check_password,
    common_passwords,
    digest,
    fold,
    totp_code,
    totp_match,
    valid_name,
)
from service.errors import WeakPassword
from service.settings import Settings

PROBLEM = "application/problem+json"
COMMAND = str(Path(sys.executable).parent / "comments-service")


async def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    problem: dict[str, Any] = await response.json(content_type=PROBLEM)
    assert problem["code"] == code, problem
    return problem


# -- names -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Lan", "Hương", "lan.nguyen", "lan_2", "Trần-Thị-Thu", "ab", "x" * 40])
def test_valid_names(name: str) -> None:
    assert valid_name(name) == name


@pytest.mark.parametrize("name", ["L", "x" * 41, "Lan\n", "Lan ", "lan:admin", "lan{acct}", "a/b", "٣٣", "Lan²",
                                  "Ⅷtám", "", "Lan\x00", "🙂🙂"])
def test_invalid_names(name: str) -> None:
    assert valid_name(name) is None


def test_names_are_one_person_whatever_the_case_or_normal_form() -> None:
    assert fold("LAN") == fold("lan") == fold("Lan")
    assert fold("HƯƠNG") == fold("hương") == fold("hu\u031bo\u031bng")  # NFD input too
    assert valid_name("hu\u031bo\u031bng") == "hương"


async def test_a_name_is_unique_whatever_its_case(client: Client) -> None:
    await person(client, "Lan")
    response = await client.post("/v1/accounts/invitations", json={"name": "LAN", "role": "moderator"},
                                 headers=ADMIN)
    problem = await _problem(response, 409, "name_taken")
    assert "LAN" in problem["detail"]
    for name in ("lan:x", "Lan\n", "٣٣"):
        response = await client.post("/v1/accounts/invitations", json={"name": name, "role": "moderator"},
                                     headers=ADMIN)
        await _problem(response, 422, "validation_failed")


async def test_two_invitations_for_one_name_make_one_account(client: Client) -> None:
    first, second = await invite(client, "Lan"), await invite(client, "lan")
    await accept(client, first)
    problem = await accept(client, second, expect=409)
    assert problem["code"] == "name_taken"


# -- invitations -------------------------------------------------------------------------------------------------

async def test_an_invitation_shows_who_it_is_for_and_works_once(client: Client, redis: Redis) -> None:
    response = await client.post("/v1/accounts/invitations", json={"name": "Lan", "role": "admin"}, headers=ADMIN)
    assert response.status == 201 and response.headers["Cache-Control"] == "no-store"
    made = await response.json()
    assert made["link"].startswith("http://127.0.0.1:8080/moderation/invite/cmi_")
    token = made["link"].rsplit("/", 1)[1]
    # Stored only as its SHA-256, for 72 hours.
    assert token.encode() not in b"".join([k async for k in redis.scan_iter()])
    assert 0 < await redis.ttl(keys.invitation(digest(token))) <= INVITATION_SECONDS

    shown = await (await client.get(f"/v1/accounts/invitations/{token}")).json()
    assert (shown["name"], shown["role"], shown["expires_at"]) == ("Lan", "admin", made["expires_at"])
    account = await accept(client, token)
    assert (account["name"], account["role"], account["disabled"], account["totp"]) == ("Lan", "admin", False, False)
    problem = await accept(client, token, expect=404)
    assert problem["code"] == "invitation_invalid"
    await _problem(await client.get(f"/v1/accounts/invitations/{token}"), 404, "invitation_invalid")
    raw: Any = redis  # redis-py types replies as bytes | str; this client returns bytes
    stored = await raw.hgetall(keys.account(fold("Lan")))
    assert stored[b"password"].startswith(b"$argon2id$") and PASSWORD.encode() not in stored[b"password"]


async def test_racing_acceptances_make_one_account(client: Client) -> None:
    token = await invite(client, "Lan")
    statuses = await asyncio.gather(*(
        client.post(f"/v1/accounts/invitations/{token}/accept", json={"password": f"{PASSWORD} {n}"})
        for n in range(4)))
    assert sorted(r.status for r in statuses) == [201, 404, 404, 404]
    winner = next(n for n, r in enumerate(statuses) if r.status == 201)
    await sign_in(client, "Lan", f"{PASSWORD} {winner}")


async def test_an_invitation_expires(client: Client, redis: Redis) -> None:
    token = await invite(client, "Lan")
    people = accounts(client)
    start = people.clock()
    people.clock = lambda: start + INVITATION_SECONDS + 1  # Redis would also drop the key by then (its TTL)
    await _problem(await client.get(f"/v1/accounts/invitations/{token}"), 404, "invitation_invalid")
    assert (await accept(client, token, expect=404))["code"] == "invitation_invalid"


@pytest.mark.parametrize("token", ["cmi_" + "A" * 43, "x", "cmi_" + "A" * 200, "%2F..%2F"])
async def test_an_unknown_invitation_is_invalid(client: Client, token: str) -> None:
    response = await client.get(f"/v1/accounts/invitations/{token}")
    assert response.status == 404


# -- passwords ---------------------------------------------------------------------------------------------------

def test_the_common_password_list() -> None:
    common = common_passwords()
    assert len(common) >= 1000
    for password in ("matkhau123", "123456789", "anhyeuem", "password", "emyeuanh", "matkhau12345"):
        assert password in common
    assert all(p == p.casefold() for p in common)


@pytest.mark.parametrize("password", ["ngắn quá", "x" * 11, "matkhau12345", "MATKHAU12345", "Anhyeuem1234",
                                      "qwertyuiop123", "lan-nguyen-2024!", "x" * 257])
def test_weak_passwords_are_refused(password: str) -> None:
    with pytest.raises(WeakPassword):
        check_password(password, "Lan-Nguyen")


async def test_a_refused_password_leaves_the_invitation_usable(client: Client) -> None:
    token = await invite(client, "Lan")
    response = await client.post(f"/v1/accounts/invitations/{token}/accept", json={"password": "matkhau12345"},
                                 headers={"Accept-Language": "en"})
    problem = await _problem(response, 422, "weak_password")
    assert problem["detail"] == "this password is one of the most common ones; choose another"
    response = await client.post(f"/v1/accounts/invitations/{token}/accept", json={"password": "ngắn"})
    problem = await _problem(response, 422, "weak_password")
    assert problem["detail"] == "Mật khẩu cần ít nhất 12 ký tự"
    await accept(client, token)


# -- the admin routes --------------------------------------------------------------------------------------------

async def test_admins_list_and_manage_accounts_and_moderators_may_not(client: Client) -> None:
    await person(client, "Lan")
    await person(client, "Hương", "admin")
    listed = await (await client.get("/v1/accounts", headers=ADMIN)).json()
    assert [(a["name"], a["role"], a["disabled"]) for a in listed["accounts"]] == [
        ("Hương", "admin", False), ("Lan", "moderator", False)]

    lan, session = await sign_in(client, "Lan")
    as_lan = browser(client, lan, session["csrf_token"])
    await _problem(await client.get("/v1/accounts", headers=as_lan), 403, "forbidden")
    response = await client.post("/v1/accounts/invitations", json={"name": "Minh", "role": "admin"}, headers=as_lan)
    problem = await _problem(response, 403, "forbidden")
    assert problem["detail"] == "Vai trò của bạn (moderator) không được làm việc này"

    huong, session = await sign_in(client, "HƯƠNG")
    as_huong = browser(client, huong, session["csrf_token"])
    response = await client.post("/v1/accounts/invitations", json={"name": "Minh", "role": "moderator"},
                                 headers=as_huong)
    assert response.status == 201
    assert (await client.post("/v1/accounts/khong-co/disable", headers=as_huong)).status == 404
    assert (await client.patch("/v1/accounts/khong-co", json={"role": "admin"}, headers=as_huong)).status == 404
    assert (await client.post("/v1/accounts/lan/disable", headers=as_huong)).status == 200
    listed = await (await client.get("/v1/accounts", headers=as_huong)).json()
    assert [a["disabled"] for a in listed["accounts"]] == [False, True]


# -- the invitation page -----------------------------------------------------------------------------------------

async def test_the_invitation_page_sets_the_password_without_script(client: Client) -> None:
    token = await invite(client, "Lan")
    page = await client.get(f"/moderation/invite/{token}")
    assert page.status == 200 and page.content_type == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "same-origin"
    text = await page.text()
    assert "<script" not in text and 'type="password"' in text and "Lan" in text

    weak = await client.post(f"/moderation/invite/{token}", data={"password": "matkhau123"},
                             headers={"Origin": origin(client)})
    assert weak.status == 422 and "phổ biến" in await weak.text()
    done = await client.post(f"/moderation/invite/{token}", data={"password": PASSWORD},
                             headers={"Origin": origin(client)})
    assert done.status == 201, await done.text()
    await sign_in(client, "Lan")
    assert (await client.get(f"/moderation/invite/{token}")).status == 404


async def test_the_invitation_page_refuses_another_sites_form(client: Client) -> None:
    token = await invite(client, "Lan")
    response = await client.post(f"/moderation/invite/{token}", data={"password": PASSWORD},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403
    assert (await client.get(f"/v1/accounts/invitations/{token}")).status == 200


# -- the command line --------------------------------------------------------------------------------------------

def _cli(redis_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COMMENTS_REDIS_URL": redis_url, "COMMENTS_DATA_DIR": str(tmp_path),
           "COMMENTS_PUBLIC_URL": "https://binhluan.example"}
    return subprocess.run([COMMAND, "users", *args], env=env, capture_output=True, text=True, timeout=60)


async def test_users_invite_list_and_disable_from_the_command_line(client: Client, settings: Settings,
                                                                   tmp_path: Path) -> None:
    assert settings.redis_url
    invited = await asyncio.to_thread(_cli, settings.redis_url, tmp_path, "invite", "--role", "moderator",
                                      "--name", "Lan")
    assert invited.returncode == 0, invited.stderr
    link = invited.stdout.strip()
    assert link.startswith("https://binhluan.example/moderation/invite/cmi_") and "72 hours" in invited.stderr
    admin = await asyncio.to_thread(_cli, settings.redis_url, tmp_path, "invite", "--role", "admin", "--name", "Minh")
    assert admin.returncode == 0, admin.stderr

    await accept(client, link.rsplit("/", 1)[1])
    cookie, _ = await sign_in(client, "Lan")
    listed = await asyncio.to_thread(_cli, settings.redis_url, tmp_path, "list")
    assert listed.returncode == 0 and listed.stdout == "Lan\tmoderator\tactive\t-\n"

    disabled = await asyncio.to_thread(_cli, settings.redis_url, tmp_path, "disable", "LAN")
    assert disabled.returncode == 0, disabled.stderr
    response = await client.get("/v1/moderation/queue", headers=browser(client, cookie))
    assert response.status == 401
    listed = await asyncio.to_thread(_cli, settings.redis_url, tmp_path, "list")
    assert listed.stdout == "Lan\tmoderator\tdisabled\t-\n"

    taken = await asyncio.to_thread(_cli, settings.redis_url, tmp_path, "invite", "--role", "admin", "--name", "lan")
    assert taken.returncode == 1 and "taken" in taken.stderr
    unknown = await asyncio.to_thread(_cli, settings.redis_url, tmp_path, "disable", "khong-co")
    assert unknown.returncode == 1 and "no such account" in unknown.stderr


# -- TOTP --------------------------------------------------------------------------------------------------------

#: RFC 6238 appendix B: the SHA-1 secret "12345678901234567890", 8 digits, 30 s steps.
RFC_6238_SHA1 = [(59, "94287082"), (1111111109, "07081804"), (1111111111, "14050471"), (1234567890, "89005924"),
                 (2000000000, "69279037"), (20000000000, "65353130")]


@pytest.mark.parametrize(("when", "code"), RFC_6238_SHA1)
def test_totp_matches_the_rfc_vectors(when: int, code: str) -> None:
    assert totp_code(b"12345678901234567890", when // 30, digits=8) == code


def test_totp_accepts_one_step_either_side_only() -> None:
    secret = b"12345678901234567890"
    now = 1_800_000_000.0
    step = int(now // 30)
    for offset in (-1, 0, 1):
        assert totp_match(secret, totp_code(secret, step + offset), now) == step + offset
    for offset in (-2, 2):
        assert totp_match(secret, totp_code(secret, step + offset), now) is None
    for odd in ("", "12345", "1234567", "12345a", "١٢٣٤٥٦", " 12345"):
        assert totp_match(secret, odd, now) is None


def _secret(enrolment: dict[str, Any]) -> bytes:
    text: str = enrolment["secret"]
    return base64.b32decode(text + "=" * (-len(text) % 8))


async def _enrol(client: Client, cookie: str, csrf: str, now: float) -> bytes:
    response = await client.post("/v1/session/totp", headers=browser(client, cookie, csrf))
    assert response.status == 200, await response.text()
    enrolment = await response.json()
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/Comments%3A")
    assert f"secret={enrolment['secret']}" in enrolment["otpauth_uri"] and "period=30" in enrolment["otpauth_uri"]
    secret = _secret(enrolment)
    wrong = await client.post("/v1/session/totp/confirm", json={"code": "000000"},
                              headers=browser(client, cookie, csrf))
    if wrong.status != 204:  # 000000 is the right code once in a million
        await _problem(wrong, 401, "totp_invalid")
    confirmed = await client.post("/v1/session/totp/confirm", json={"code": totp_code(secret, int(now // 30))},
                                  headers=browser(client, cookie, csrf))
    assert confirmed.status == 204, await confirmed.text()
    return secret


async def test_enrolling_totp_then_signing_in_with_a_code_once(client: Client) -> None:
    await person(client, "Lan")
    now = [1_800_000_000.0]
    accounts(client).clock = lambda: now[0]
    cookie, session = await sign_in(client, "Lan")
    secret = await _enrol(client, cookie, session["csrf_token"], now[0])
    listed = await (await client.get("/v1/accounts", headers=ADMIN)).json()
    assert listed["accounts"][0]["totp"] is True

    now[0] += 30  # the enrolment used this step's code: the next one signs in
    _, problem = await sign_in(client, "Lan", expect=401)
    assert problem["code"] == "totp_required"
    _, problem = await sign_in(client, "Lan", "sai mật khẩu rồi", totp=totp_code(secret, int(now[0] // 30)),
                               expect=401)
    assert problem["code"] == "signin_failed"
    code = totp_code(secret, int(now[0] // 30))
    await sign_in(client, "Lan", totp=code)
    _, problem = await sign_in(client, "Lan", totp=code, expect=401)  # the same code again: a replay
    assert problem["code"] == "totp_invalid"
    now[0] += 30
    _, problem = await sign_in(client, "Lan", totp=code, expect=401)  # an older step than the last used
    assert problem["code"] == "totp_invalid"
    await sign_in(client, "Lan", totp=totp_code(secret, int(now[0] // 30) + 1))  # the clock a step behind


async def test_admins_must_enrol_when_the_setting_says_so(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    client = await aiohttp_client(make_app(settings.model_copy(update={"admin_totp_required": True})))
    await person(client, "Minh", "admin")
    await person(client, "Lan")
    now = [1_800_000_000.0]
    accounts(client).clock = lambda: now[0]
    lan, _ = await sign_in(client, "Lan")  # moderators are not held to it
    assert (await client.get("/v1/moderation/queue", headers=browser(client, lan))).status == 200

    cookie, session = await sign_in(client, "Minh")
    assert session["totp_enrolment_required"] is True
    await _problem(await client.get("/v1/tokens", headers=browser(client, cookie)), 403, "totp_enrolment_required")
    await _problem(await client.get("/v1/moderation/queue", headers=browser(client, cookie)), 403,
                   "totp_enrolment_required")
    secret = await _enrol(client, cookie, session["csrf_token"], now[0])
    assert (await client.get("/v1/tokens", headers=browser(client, cookie))).status == 200

    now[0] += 30
    _, problem = await sign_in(client, "Minh", expect=401)
    assert problem["code"] == "totp_required"
    _, session = await sign_in(client, "Minh", totp=totp_code(secret, int(now[0] // 30)))
    assert session["totp_enrolment_required"] is False
