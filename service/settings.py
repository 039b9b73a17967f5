"""The one settings object: every knob the service has, read from `COMMENTS_*` environment variables.

Only the entry point (`service.cli`) reads the environment; tests build `Settings(...)` directly.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(RuntimeError):
    """The configuration is unsafe or incomplete; the service refuses to start."""


#: Risks production refuses unless `COMMENTS_UNSAFE_ALLOW` names them (an operator who means it says so).
UNSAFE_RISKS: Final = {
    "short_admin_token": "COMMENTS_ADMIN_TOKEN is shorter than 32 characters",
    "broad_trusted_proxies": "COMMENTS_TRUSTED_PROXIES holds a network broader than /8 (IPv4) or /32 (IPv6): "
                             "clients behind it could choose their own address",
    "rate_limit_disabled": "COMMENTS_RATE_LIMIT_ENABLED is false",
    "min_fill_disabled": "COMMENTS_MIN_FILL_SECONDS is 0: forms filled by scripts in no time are accepted",
}
#: Trusted proxy networks broader than these prefixes are refused in production (a /8 is already 16 M clients).
PROXY_MIN_PREFIX: Final = {4: 8, 6: 32}


def _split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COMMENTS_", frozen=True, extra="ignore")

    env: Literal["development", "production"] = "development"
    #: redis://, rediss://, unix://, redis+cluster://h:p,h:p or redis+sentinel://h:p,h:p/master.
    #: Unset: `comments-service run` starts an embedded redis-server under `data_dir`.
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    #: Worker processes sharing the port; 0 means one per CPU core.
    workers: int = Field(default=0, ge=0, le=256)
    data_dir: Path = Path("var")
    secret_key: SecretStr | None = None
    allowed_origins: Annotated[list[str], NoDecode] = []
    trusted_proxies: Annotated[list[IPNetwork], NoDecode] = []
    admin_token: SecretStr | None = None
    #: Where people reach the service (scheme, host, port; no path), for the links of invitations and the
    #: same-origin check of the moderation console; unset: http://{host}:{port}.
    public_url: str | None = Field(default=None, pattern=r"^https?://[A-Za-z0-9.\[\]:-]+$")
    #: A person's session ends after this many seconds without a request (each request starts it again)...
    session_idle_seconds: int = Field(default=30 * 60, ge=1, le=86400)
    #: ...and this many seconds after signing in, however busy.
    session_lifetime_seconds: int = Field(default=12 * 3600, ge=1, le=30 * 86400)
    #: Admin accounts must sign in with a TOTP code (RFC 6238) as well as their password.
    admin_totp_required: bool = False
    #: Failed sign-ins allowed per account and per client address: (count, window seconds). Kept whatever
    #: COMMENTS_RATE_LIMIT_ENABLED says: they guard passwords, not the queue.
    signin_limit_account: tuple[int, int] = (5, 15 * 60)
    signin_limit_client: tuple[int, int] = (20, 15 * 60)
    rate_limit_enabled: bool = True
    min_fill_seconds: float = Field(default=3.0, ge=0)
    captcha_test_answer: str | None = None
    captcha_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    #: Processes rendering captcha images and audio; 0 means one per core divided among the workers.
    captcha_render_processes: int = Field(default=0, ge=0, le=64)
    #: Pre-rendered captcha images kept ready per worker process, for bursts.
    captcha_pool_size: int = Field(default=256, ge=0, le=100_000)
    log_level: str = "INFO"
    #: Seconds a public list or count may be served from a worker's memory before Redis is asked again.
    public_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    feed_retention_seconds: int = Field(default=7 * 86400, ge=60)
    idempotency_ttl_seconds: int = Field(default=86400, ge=60)
    #: The lease the moderation console asks for when it claims. An API client that sends no `lease_seconds`
    #: gets the claim model's documented 300, whatever this says.
    lease_seconds_default: int = Field(default=300, ge=5, le=86400)
    #: Per-window limits for submissions: (count, window seconds).
    rate_limit_ip: tuple[int, int] = (10, 60)
    rate_limit_email: tuple[int, int] = (5, 60)
    rate_limit_article: tuple[int, int] = (120, 60)
    #: Captchas issued per client address (an IPv6 /64) and window: generous, as mobile carriers put many readers
    #: behind one address; a reader needs one per comment (and one more per expiry or wrong answer).
    rate_limit_captcha: tuple[int, int] = (60, 60)
    blocklist: Annotated[list[str], NoDecode] = []
    #: Where the moderation console links an article: `{article_id}` becomes the id (URL-encoded). A path of this
    #: service or an http(s) URL of the newspaper's site.
    article_url_template: str = Field(default="/demo/articles/{article_id}",
                                      pattern=r"^(/[^/]|https?://)[^\s]*\{article_id\}[^\s]*$")
    #: The reasons the console offers when rejecting a comment (comma-separated); free text is always possible.
    reject_reasons: Annotated[list[str], NoDecode] = ["Spam", "Xúc phạm", "Lạc đề", "Thông tin sai"]
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    webhook_max_attempts: int = Field(default=12, ge=1, le=50)
    webhook_backoff_base_seconds: float = Field(default=2.0, gt=0)
    #: Networks webhooks may reach although they are internal (loopback, private...), for deliberate internal
    #: receivers; empty: only public addresses. Cloud metadata addresses are refused whatever this says.
    webhook_allowed_networks: Annotated[list[IPNetwork], NoDecode] = []
    #: Seconds a client has to send a request's head (request line and headers), from connecting or from the
    #: first byte of a request on a kept-alive connection; a slower client is disconnected (slowloris).
    http_head_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: Seconds an idle kept-alive connection stays open waiting for its next request.
    http_keepalive_timeout_seconds: float = Field(default=75.0, gt=0, le=3600)
    #: Production risks accepted on purpose, comma-separated names from `UNSAFE_RISKS`.
    unsafe_allow: Annotated[list[str], NoDecode] = []
    #: Seconds a client has to send its request headers and body before being cut off.
    client_timeout_seconds: float = Field(default=10.0, gt=0)
    redis_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    #: A new comment is acknowledged only once this many replicas have it (Redis WAIT); 0 trusts the primary's
    #: AOF alone. With Sentinel, 1 means a failover loses no acknowledged comment. Not for Redis Cluster.
    redis_replica_acks: int = Field(default=0, ge=0, le=5)
    redis_replica_ack_timeout_ms: int = Field(default=500, ge=10, le=10_000)
    #: Reports of comments a client address may send per window: (count, window seconds). Kept whatever
    #: COMMENTS_RATE_LIMIT_ENABLED says: reports have no captcha.
    rate_limit_report: tuple[int, int] = (10, 3600)
    #: Self-service data requests (“Dữ liệu của tôi”) per client address, and per email address, per window.
    rate_limit_data_request: tuple[int, int] = (5, 3600)
    #: A comment's open reports waiting longer than this many hours raise the alert metric.
    report_alert_hours: int = Field(default=24, ge=1, le=24 * 30)
    #: Rejected and spam comments are deleted this many days after their decision.
    retention_rejected_days: int = Field(default=90, ge=1, le=3650)
    #: IP hashes of decided comments are dropped this many days after the decision.
    retention_ip_days: int = Field(default=30, ge=1, le=3650)
    #: Pending comments older than this many days are reported (metric, stats); never deleted.
    retention_pending_days: int = Field(default=7, ge=1, le=3650)
    #: Seconds between background retention runs (one worker at a time, under a Redis lock); 0 turns it off.
    retention_interval_seconds: int = Field(default=3600, ge=0, le=7 * 86400)
    #: Email (service/mail): smtp://user:password@host:587 (STARTTLS) or smtps://...:465 (TLS from the start);
    #: unset, every email feature is off (and the widget shows no email checkbox).
    smtp_url: SecretStr | None = None
    #: The From address of every email, e.g. "Báo Mẫu <binhluan@bao.example.vn>"; email is off without it.
    mail_from: str | None = Field(default=None, max_length=200)
    mail_reply_to: str | None = Field(default=None, max_length=200)
    #: The digest interval of a moderator who asks for digests without naming one (minutes).
    mail_digest_minutes: int = Field(default=30, ge=1, le=24 * 60)
    #: Emails per recipient address and window (more are dropped, counted `limited`), and in all per window
    #: (more wait for the next window): (count, window seconds).
    mail_limit_address: tuple[int, int] = (20, 3600)
    mail_limit_overall: tuple[int, int] = (600, 60)
    #: Tell authors who asked for email that their comment was rejected, with the moderator's reason.
    mail_rejection_notice: bool = False
    #: Permanent refusals (SMTP 5xx) of an address before it is suppressed for good.
    mail_bounce_limit: int = Field(default=3, ge=1, le=100)
    mail_timeout_seconds: float = Field(default=20.0, gt=0, le=300)
    mail_max_attempts: int = Field(default=12, ge=1, le=50)
    mail_backoff_base_seconds: float = Field(default=5.0, gt=0)
    #: How long a moderator's approve/reject link in an email works.
    mail_link_seconds: int = Field(default=3 * 86400, ge=60, le=30 * 86400)

    @field_validator("allowed_origins", "trusted_proxies", "blocklist", "webhook_allowed_networks", "unsafe_allow",
                     "reject_reasons", mode="before")
    @classmethod
    def _comma_lists(cls, value: object) -> object:
        return _split_commas(value)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        parts = urlsplit(value.get_secret_value())
        try:
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
        except ValueError:
            raise ValueError("the port is not a number") from None
        # The message never quotes the value: it may hold the password.
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("must be smtp://[user:password@]host[:port] or smtps://...")
        return value

    @field_validator("unsafe_allow")
    @classmethod
    def _known_risks(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(UNSAFE_RISKS))
        if unknown:
            # Risk names are not secrets; naming the unknown ones points at the typo.
            raise ValueError(f"unknown risk {', '.join(unknown)}; known: {', '.join(UNSAFE_RISKS)}")
        return value

    @field_validator("captcha_test_answer")
    @classmethod
    def _normalise_test_answer(cls, value: str | None) -> str | None:
        return value.strip().upper() if value and value.strip() else None

    @model_validator(mode="after")
    def _production_is_strict(self) -> Settings:
        if self.env == "production":
            if self.secret_key is None or len(self.secret_key.get_secret_value()) < 32:
                raise ValueError("COMMENTS_SECRET_KEY (at least 32 characters) is required in production")
            if self.captcha_test_answer is not None:
                raise ValueError("COMMENTS_CAPTCHA_TEST_ANSWER is refused in production")
            risks = [name for name in self.production_risks() if name not in self.unsafe_allow]
            if risks:
                raise ValueError("unsafe in production: " + "; ".join(UNSAFE_RISKS[name] for name in risks)
                                 + ". Fix it, or accept the risk by naming it in COMMENTS_UNSAFE_ALLOW="
                                 + ",".join(risks))
        return self

    def production_risks(self) -> list[str]:
        """The names of `UNSAFE_RISKS` this configuration takes (whatever the environment)."""
        risks = []
        if self.admin_token is not None and len(self.admin_token.get_secret_value()) < 32:
            risks.append("short_admin_token")
        if any(net.prefixlen < PROXY_MIN_PREFIX[net.version] for net in self.trusted_proxies):
            risks.append("broad_trusted_proxies")
        if not self.rate_limit_enabled:
            risks.append("rate_limit_disabled")
        if self.min_fill_seconds == 0:
            risks.append("min_fill_disabled")
        return risks

    @classmethod
    def from_environment(cls) -> Settings:
        """The settings from `COMMENTS_*` variables; a refusal names the settings, never their values."""
        try:
            return cls()
        except ValidationError as exc:
            raise SettingsError(describe(exc)) from None

    @property
    def mail_enabled(self) -> bool:
        """Email is on when an SMTP server and a From address are configured (`service.mail`)."""
        return self.smtp_url is not None and bool(self.mail_from)

    @property
    def public_origin(self) -> str:
        """The origin people reach the service at: COMMENTS_PUBLIC_URL, or http://{host}:{port}."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def secret(self) -> bytes:
        if self.secret_key is None:
            raise SettingsError("no secret key: call with_secret_key() first")
        return self.secret_key.get_secret_value().encode()

    def with_secret_key(self) -> Settings:
        """In development, generate the secret once and keep it in the data dir, so receipts survive restarts."""
        if self.secret_key is not None:
            return self
        path = self.data_dir / "secret_key"
        if path.exists():
            key = path.read_text().strip()
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key + "\n")
            log.info("generated a development secret key in %s", path)
        return self.model_copy(update={"secret_key": SecretStr(key)})


def describe(error: ValidationError) -> str:
    """A refused configuration in words, without the values: pydantic's own message quotes the input (the whole
    environment for a model-level error, the admin token included)."""
    lines = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["loc"]:
            message = f"COMMENTS_{str(item['loc'][0]).upper()}: {message}"
        lines.append(message)
    return "\n".join(lines)
