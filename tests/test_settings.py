"""service.settings: one settings object from COMMENTS_* variables; production is strict."""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from service.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("COMMENTS_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings()
    assert settings.env == "development"
    assert settings.redis_url is None
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.rate_limit_enabled is True
    assert settings.min_fill_seconds == 3
    assert settings.captcha_ttl_seconds == 300
    assert settings.captcha_test_answer is None
    assert settings.allowed_origins == [] and settings.trusted_proxies == []


def test_environment_variables_with_the_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COMMENTS_REDIS_URL", "unix:///run/redis.sock")
    monkeypatch.setenv("COMMENTS_HOST", "0.0.0.0")
    monkeypatch.setenv("COMMENTS_PORT", "9090")
    monkeypatch.setenv("COMMENTS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("COMMENTS_RATE_LIMIT_ENABLED", "false")
    monkeypatch.setenv("COMMENTS_MIN_FILL_SECONDS", "0")
    monkeypatch.setenv("COMMENTS_ADMIN_TOKEN", "t" * 40)
    monkeypatch.setenv("COMMENTS_CAPTCHA_TEST_ANSWER", " abcde ")
    settings = Settings()
    assert settings.redis_url == "unix:///run/redis.sock"
    assert (settings.host, settings.port, settings.data_dir) == ("0.0.0.0", 9090, tmp_path)
    assert settings.rate_limit_enabled is False and settings.min_fill_seconds == 0
    assert settings.admin_token is not None and settings.admin_token.get_secret_value() == "t" * 40
    assert settings.captcha_test_answer == "ABCDE"


def test_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMENTS_ALLOWED_ORIGINS", "https://a.example, https://b.example,,")
    monkeypatch.setenv("COMMENTS_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1/32,fd00::/8")
    monkeypatch.setenv("COMMENTS_BLOCKLIST", "đồ ngốc, spam")
    settings = Settings()
    assert settings.allowed_origins == ["https://a.example", "https://b.example"]
    assert settings.trusted_proxies == [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"),
                                        ipaddress.ip_network("fd00::/8")]
    assert settings.blocklist == ["đồ ngốc", "spam"]


def test_a_bad_proxy_network_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMENTS_TRUSTED_PROXIES", "10.0.0.0/8,not-a-network")
    with pytest.raises(ValidationError):
        Settings()


def test_production_requires_a_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMENTS_ENV", "production")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings()
    monkeypatch.setenv("COMMENTS_SECRET_KEY", "too-short")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings()
    monkeypatch.setenv("COMMENTS_SECRET_KEY", "k" * 32)
    assert Settings().secret == b"k" * 32


def test_production_refuses_a_captcha_test_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMENTS_ENV", "production")
    monkeypatch.setenv("COMMENTS_SECRET_KEY", "k" * 48)
    monkeypatch.setenv("COMMENTS_CAPTCHA_TEST_ANSWER", "ABCDE")
    with pytest.raises(ValidationError, match="CAPTCHA_TEST_ANSWER"):
        Settings()


def test_development_generates_a_secret_once_and_keeps_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    with pytest.raises(SettingsError):
        _ = settings.secret
    first = settings.with_secret_key()
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.secret) >= 32
    assert path.read_text().strip().encode() == first.secret
    again = Settings(data_dir=tmp_path / "data").with_secret_key()
    assert again.secret == first.secret


def test_an_explicit_secret_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SecretStr("x" * 40)).with_secret_key()
    assert settings.secret == b"x" * 40
    assert not (tmp_path / "secret_key").exists()


def test_captcha_ttl_bounds() -> None:
    with pytest.raises(ValidationError):
        Settings(captcha_ttl_seconds=5)
    assert Settings(captcha_ttl_seconds=30).captcha_ttl_seconds == 30


# -- production refuses unsafe settings, and says which without their values --------------------------------

SAFE_PRODUCTION = {"COMMENTS_ENV": "production", "COMMENTS_SECRET_KEY": "k" * 48, "COMMENTS_ADMIN_TOKEN": "a" * 40}


def _environment(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    for name, value in {**SAFE_PRODUCTION, **extra}.items():
        monkeypatch.setenv(name, value)


def test_a_safe_production_configuration_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    _environment(monkeypatch, COMMENTS_TRUSTED_PROXIES="10.0.0.0/8,fd00:1234::/32")
    settings = Settings.from_environment()
    assert settings.production_risks() == []
    assert settings.webhook_allowed_networks == []
    assert (settings.http_head_timeout_seconds, settings.http_keepalive_timeout_seconds) == (10.0, 75.0)


@pytest.mark.parametrize(("variable", "value", "risk"), [
    ("COMMENTS_ADMIN_TOKEN", "Q", "short_admin_token"),
    ("COMMENTS_ADMIN_TOKEN", "tail-of-a-31-character-token-XY", "short_admin_token"),
    ("COMMENTS_TRUSTED_PROXIES", "0.0.0.0/0", "broad_trusted_proxies"),
    ("COMMENTS_TRUSTED_PROXIES", "10.0.0.0/8,::/0", "broad_trusted_proxies"),
    ("COMMENTS_TRUSTED_PROXIES", "64.0.0.0/2", "broad_trusted_proxies"),
    ("COMMENTS_TRUSTED_PROXIES", "2001::/16", "broad_trusted_proxies"),
    ("COMMENTS_RATE_LIMIT_ENABLED", "false", "rate_limit_disabled"),
    ("COMMENTS_MIN_FILL_SECONDS", "0", "min_fill_disabled"),
])
def test_production_refuses_each_unsafe_setting_unless_its_risk_is_named(
        monkeypatch: pytest.MonkeyPatch, variable: str, value: str, risk: str) -> None:
    _environment(monkeypatch, **{variable: value})
    with pytest.raises(SettingsError) as refused:
        Settings.from_environment()
    message = str(refused.value)
    assert variable in message and f"COMMENTS_UNSAFE_ALLOW={risk}" in message
    if variable == "COMMENTS_ADMIN_TOKEN":
        assert value not in message and value[-4:] not in message
    monkeypatch.setenv("COMMENTS_UNSAFE_ALLOW", f"{risk}")
    assert Settings.from_environment().production_risks() == [risk]


def test_every_refusal_is_named_at_once_and_no_value_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "short-Secret-QZ7"
    _environment(monkeypatch, COMMENTS_ADMIN_TOKEN=token, COMMENTS_TRUSTED_PROXIES="0.0.0.0/0",
                 COMMENTS_RATE_LIMIT_ENABLED="false", COMMENTS_MIN_FILL_SECONDS="0")
    with pytest.raises(SettingsError) as refused:
        Settings.from_environment()
    message = str(refused.value)
    for name in ("COMMENTS_ADMIN_TOKEN", "COMMENTS_TRUSTED_PROXIES", "COMMENTS_RATE_LIMIT_ENABLED",
                 "COMMENTS_MIN_FILL_SECONDS"):
        assert name in message
    for secret in (token, token[-5:], "k" * 48, "kkkk", "input_value", "0.0.0.0/0"):
        assert secret not in message
    monkeypatch.setenv("COMMENTS_UNSAFE_ALLOW", "short_admin_token,broad_trusted_proxies,rate_limit_disabled,"
                                                "min_fill_disabled")
    assert len(Settings.from_environment().production_risks()) == 4


def test_development_accepts_what_production_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMENTS_ADMIN_TOKEN", "x")
    monkeypatch.setenv("COMMENTS_RATE_LIMIT_ENABLED", "false")
    assert Settings.from_environment().production_risks() == ["short_admin_token", "rate_limit_disabled"]


def test_an_unknown_risk_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMENTS_UNSAFE_ALLOW", "rate_limit_disabled,ratelimit_off")
    with pytest.raises(SettingsError, match="COMMENTS_UNSAFE_ALLOW: unknown risk ratelimit_off"):
        Settings.from_environment()


def test_field_errors_name_the_setting_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMENTS_PORT", "eighty-eighty-secret")
    monkeypatch.setenv("COMMENTS_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/8,not-a-network")
    with pytest.raises(SettingsError) as refused:
        Settings.from_environment()
    message = str(refused.value)
    assert "COMMENTS_PORT" in message and "COMMENTS_WEBHOOK_ALLOWED_NETWORKS" in message
    assert "eighty" not in message and "not-a-network" not in message


def test_webhook_allowed_networks_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMENTS_WEBHOOK_ALLOWED_NETWORKS", "10.20.0.0/16, fd00::/8")
    assert Settings.from_environment().webhook_allowed_networks == [ipaddress.ip_network("10.20.0.0/16"),
                                                                    ipaddress.ip_network("fd00::/8")]
