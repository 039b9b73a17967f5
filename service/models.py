"""What clients may send and what each audience may see.

Input models forbid unknown fields. The public models have no email, no IP hash and no risk signals: a field
that must never leak is absent from them rather than filtered later. Moderators get `ModeratorComment`.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT, EMAIL_MAX_LENGTH
from email_validator.syntax import validate_email_domain_name
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError

from service import text

ARTICLE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
ARTICLE_ID_RE: Final = re.compile(ARTICLE_ID_PATTERN)
COMMENT_ID_PATTERN: Final = r"^[0-9a-f]{2}[0-9a-z]{24}$"
COMMENT_ID_RE: Final = re.compile(COMMENT_ID_PATTERN)
CAPTCHA_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{16,64}$"

NAME_MAX: Final = 80
TITLE_MAX: Final = 200
BODY_MAX: Final = 5000


def _checked(value: str, *, maximum: int, allow_newlines: bool, strip_invisible: bool) -> str:
    # NFC and trimming come before any check: surrounding whitespace (a pasted trailing newline or tab
    # included) is removed, not judged.
    value = text.normalise(text.normalise_newlines(value) if allow_newlines else value)
    if text.has_forbidden_characters(value, allow_newlines=allow_newlines):
        raise PydanticCustomError("invalid_characters", "contains control or bidi override characters")
    if strip_invisible:
        value = text.strip_zero_width(value).strip()
    if not value:
        raise PydanticCustomError("required", "must not be empty")
    if len(value) > maximum:
        raise PydanticCustomError("too_long", "at most {max} characters", {"max": maximum})
    return value


def _name(value: str) -> str:
    return _checked(value, maximum=NAME_MAX, allow_newlines=False, strip_invisible=True)


def _title(value: str) -> str:
    return _checked(value, maximum=TITLE_MAX, allow_newlines=False, strip_invisible=True)


def _body(value: str) -> str:
    return _checked(value, maximum=BODY_MAX, allow_newlines=True, strip_invisible=False)


def _email(value: str) -> str:
    value = text.normalise(value)
    if not value:
        raise PydanticCustomError("required", "must not be empty")
    if len(value) > 254 or text.has_forbidden_characters(value, allow_newlines=False):
        raise PydanticCustomError("invalid_email", "not a valid email address")
    normalised = _normalised_email(value)
    if normalised is None:
        raise PydanticCustomError("invalid_email", "not a valid email address")
    return normalised


def _normalised_email(value: str) -> str | None:
    """email-validator's verdict and normalisation, without paying each time for the domain part.

    email-validator costs about 40 us an address, most of it in the domain (IDNA/UTS-46); readers share a
    handful of domains. An address whose local part is a plain ASCII dot-atom (nearly all) is taken through the
    same steps `validate_email` takes for it, in the same library functions, with the domain's verdict cached;
    any other address goes to `validate_email` whole. tests/test_models.py checks that both give the same
    answers, for generated addresses too.
    """
    local, at, domain = value.partition("@")
    # A local part that is a dot-atom holds no quote, angle bracket or @, and an ASCII character after the @
    # cannot combine with it, so this is where `split_email` splits too.
    if not (at and DOT_ATOM_TEXT.match(local) and domain[:1].isascii() and domain[:1] not in ("", "[")):
        return _validated_email(value)
    parts = _email_domain(domain)
    if parts is None:
        return None
    if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
        local = local.lower()
    normalized = f"{local}@{parts[0]}"
    # `validate_email_length`: the address as given, normalised, and with the domain in IDNA ASCII.
    if max(len(value.encode()), len(normalized.encode()), len(local) + 1 + len(parts[1])) > EMAIL_MAX_LENGTH:
        return None
    return normalized


@functools.lru_cache(maxsize=1024)
def _email_domain(domain: str) -> tuple[str, str] | None:
    """A domain's normalised form and its IDNA ASCII form, or None when email-validator refuses it."""
    try:
        found = validate_email_domain_name(domain, test_environment=False, globally_deliverable=True)
    except EmailNotValidError:
        return None
    return found["domain"], found["ascii_domain"]


@functools.lru_cache(maxsize=1024)
def _validated_email(value: str) -> str | None:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


# The limits count characters after NFC and trimming, so they are checked in the validators; the schema states
# them for clients (in code points, which NFC can only shorten).
Name = Annotated[StrictStr, AfterValidator(_name),
                 WithJsonSchema({"type": "string", "minLength": 1, "maxLength": NAME_MAX})]
Title = Annotated[StrictStr, AfterValidator(_title),
                  WithJsonSchema({"type": "string", "minLength": 1, "maxLength": TITLE_MAX})]
Body = Annotated[StrictStr, AfterValidator(_body),
                 WithJsonSchema({"type": "string", "minLength": 1, "maxLength": BODY_MAX})]
Email = Annotated[StrictStr, Field(max_length=320), AfterValidator(_email)]
CommentId = Annotated[StrictStr, Field(pattern=COMMENT_ID_PATTERN)]
ArticleId = Annotated[StrictStr, Field(pattern=ARTICLE_ID_PATTERN)]


class CommentSubmission(BaseModel):
    """What the comment form sends: `POST /v1/articles/{article_id}/comments`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    email: Email
    title: Title
    body: Body
    captcha_id: Annotated[StrictStr, Field(pattern=CAPTCHA_ID_PATTERN)]
    captcha_answer: Annotated[StrictStr, Field(min_length=1, max_length=32)]
    parent_id: CommentId | None = None
    #: A honeypot: hidden from people, filled in by bots. Anything in it quietly drops the comment.
    website: Annotated[StrictStr, Field(max_length=2000)] = ""


class SubmissionAccepted(BaseModel):
    id: str
    status: Literal["pending"] = "pending"
    #: Signed token with which the author, and only the author, can ask what became of the comment.
    receipt: str


class CaptchaIssued(BaseModel):
    id: str
    image_url: str
    audio_url: str
    expires_in: int


class PublicComment(BaseModel):
    """An approved comment as anyone may see it."""

    id: str
    parent_id: str | None
    name: str
    title: str
    body: str
    created_at: str
    approved_at: str
    #: HMAC of the author's email: a stable seed for an avatar, useless for finding the address.
    avatar: str


class CommentList(BaseModel):
    article_id: str
    open: bool
    total: int
    comments: list[PublicComment]
    next_cursor: str | None


class Counts(BaseModel):
    counts: dict[str, int]


class CommentStatus(BaseModel):
    id: str
    article_id: str
    status: Literal["pending", "approved", "rejected"]
    name: str
    title: str
    body: str
    created_at: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    code: str
    errors: list[dict[str, str]] | None = None


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def json_schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")
