"""What clients may send and what each audience may see: the models shared by several audiences or owned by no
one domain module (a reader's submission, the public views of comments, captchas and problems, health, the
console's settings), and the id patterns of the API.

Where a model lives: in the domain module that owns its concept (`moderation.ClaimRequest`,
`tokens.TokenView`, `accounts.SessionView`, `webhooks.Webhook`); here when it is shared or no domain module owns
it; never in a handler module (`service/api/`), which only parses into and serialises these
(docs/architecture.md).

Input models forbid unknown fields. The public models have no email, no IP hash and no risk signals: a field
that must never leak is absent from them rather than filtered later. Moderators get `ModeratorComment`.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT, EMAIL_MAX_LENGTH
from email_validator.syntax import validate_email_domain_name
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError

from service import text


def whole_string(pattern: str) -> re.Pattern[str]:
    r"""A schema pattern compiled for Python so that it matches whole strings only.

    The `*_PATTERN` strings are written `^...$` for the OpenAPI document (ECMA-262) and pydantic (Rust regex),
    where `$` is the end of the text. In Python `$` also matches before a final newline, so `"bai-viet-7\n"`
    would pass: the compiled form is `\A(?:...)\Z` instead, whole-string with `match` and `fullmatch` alike
    (call `fullmatch` anyway: it says what is meant).
    """
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise ValueError(f"a shared pattern is anchored ^...$: {pattern!r}")
    return re.compile(rf"\A(?:{pattern[1:-1]})\Z")


#: Every id, cursor and token pattern of the API, in one place (the schema strings and their Python forms).
ARTICLE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
ARTICLE_ID_RE: Final = whole_string(ARTICLE_ID_PATTERN)
COMMENT_ID_PATTERN: Final = r"^[0-9a-f]{2}[0-9a-z]{24}$"
COMMENT_ID_RE: Final = whole_string(COMMENT_ID_PATTERN)
CAPTCHA_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{16,64}$"
#: Access tokens and webhooks are named by 16 hex digits.
HEX_ID_PATTERN: Final = r"^[0-9a-f]{16}$"
HEX_ID_RE: Final = whole_string(HEX_ID_PATTERN)

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


@functools.lru_cache(maxsize=4096)
def _normalised_email(value: str) -> str | None:
    """email-validator's verdict and normalisation, without paying each time for the domain part (and, for an
    address seen lately, at all: a reader comes back with the same address; docs/benchmarks.md).

    email-validator's cost is mostly in the domain (IDNA/UTS-46; docs/benchmarks.md), and readers share a
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

    name: Name = Field(description="The name shown with the comment (the author's choice, not verified); "
                                   "surrounding spaces are trimmed.")
    email: Email = Field(description="The author's email, for moderators only: never published, never in the "
                                     "feed or webhooks.")
    title: Title = Field(description="The comment's title, one line.")
    body: Body = Field(description="The comment's text; line breaks are kept, HTML is shown as text.")
    captcha_id: Annotated[StrictStr, Field(pattern=CAPTCHA_ID_PATTERN)] = Field(
        description="The `id` of a captcha from `POST /v1/captchas`; each captcha can be used once.")
    captcha_answer: Annotated[StrictStr, Field(min_length=1, max_length=32)] = Field(
        description="The characters the reader read in the captcha picture (or heard); case does not matter.")
    parent_id: CommentId | None = Field(
        default=None, description="The id of the approved comment of the same article that this one replies "
                                  "to; absent or null for a top-level comment.")
    notify: StrictBool = Field(
        default=False, description="True when the author asks for an email once a moderator approves the comment "
                                   "(the widget's checkbox, off by default; ignored when the service sends no "
                                   "email). The address is used for nothing else.")
    lang: Literal["vi", "en"] | None = Field(
        default=None, description="The reader's language (the widget's), for the emails about this comment; "
                                  "Vietnamese when absent.")
    #: A honeypot: hidden from people, filled in by bots. Anything in it quietly drops the comment.
    website: Annotated[StrictStr, Field(max_length=2000)] = Field(
        default="", description="Leave empty: a field hidden from people that bots fill in. A comment with "
                                "anything here is answered 202 but never queued.")


class SubmissionAccepted(BaseModel):
    id: str = Field(description="The new comment's id.")
    status: Literal["pending"] = Field(
        default="pending", description="Always `pending`: every comment waits for a moderator before it is "
                                       "published.")
    #: Signed token with which the author, and only the author, can ask what became of the comment.
    receipt: str = Field(description="A signed token with which the author, and only the author, can ask what "
                                     "became of the comment: `GET /v1/comments/{id}/status` with "
                                     "`Authorization: Receipt <receipt>`.")


class CaptchaIssued(BaseModel):
    id: str = Field(description="Send it back as `captcha_id` with the comment.")
    image_url: str = Field(description="Path of the captcha's PNG picture on this service.")
    audio_url: str = Field(description="Path of the captcha read aloud (WAV); add `?lang=en` for English.")
    expires_in: int = Field(description="Seconds from now until the captcha expires; after that, ask for a "
                                        "new one.")


class PublicComment(BaseModel):
    """An approved comment as anyone may see it."""

    id: str = Field(description="The comment's id.")
    parent_id: str | None = Field(description="The id of the comment this one replies to; null for a top-level "
                                              "comment.")
    name: str = Field(description="The author's name as they gave it.")
    title: str = Field(description="The comment's title.")
    body: str = Field(description="The comment's text, plain (render it as text, not HTML).")
    created_at: str = Field(description="When the comment was submitted (ISO 8601, UTC).")
    approved_at: str = Field(description="When a moderator approved it (ISO 8601, UTC).")
    #: HMAC of the author's email: a stable seed for an avatar, useless for finding the address.
    avatar: str = Field(description="A keyed hash of the author's email: the same author gets the same value, "
                                    "so it can seed an avatar; it cannot be turned back into the address.")


class CommentList(BaseModel):
    article_id: str = Field(description="The article the comments belong to.")
    open: bool = Field(description="Whether the article takes new comments (a moderator can close it).")
    total: int = Field(description="Approved comments of the article in all, not only on this page.")
    comments: list[PublicComment] = Field(description="This page of approved comments, in the requested order.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page (same `order` and `limit`); "
                                                "null on the last page.")


class Counts(BaseModel):
    counts: dict[str, int] = Field(description="Approved comments per requested article id; an article "
                                               "without any has 0.")


class CommentStatus(BaseModel):
    id: str = Field(description="The comment's id.")
    article_id: str = Field(description="The article it was submitted to.")
    status: Literal["pending", "approved", "rejected"] = Field(
        description="`pending` until a moderator decides; `rejected` also when it was marked as spam or "
                    "unpublished after approval.")
    name: str = Field(description="The name the author gave.")
    title: str = Field(description="The comment's title.")
    body: str = Field(description="The comment's text.")
    created_at: str = Field(description="When it was submitted (ISO 8601, UTC).")


class Health(BaseModel):
    status: str = Field(description="`ok` from /healthz (the process answers), `ready` from /readyz (Redis is "
                                    "reachable and configured safely).")


class ConsoleSettings(BaseModel):
    article_url_template: str = Field(description="How to link an article: `{article_id}` is replaced by the "
                                                  "article's id, URL-encoded (COMMENTS_ARTICLE_URL_TEMPLATE).")
    reject_reasons: list[str] = Field(description="The reasons offered when rejecting (COMMENTS_REJECT_REASONS); "
                                                  "free text is always possible as well.")
    blocklist: list[str] = Field(description="The blocklisted words and phrases, folded (lower case, without "
                                             "diacritics), for highlighting them in a comment's text.")
    undo_seconds: int = Field(description="How long after a decision it may be undone.")
    lease_seconds: int = Field(description="How long a claim on a comment lasts unless renewed.")
    poll_seconds: int = Field(description="How often the console looks at the queue again.")



class FieldProblem(BaseModel):
    """One invalid field of a problem document's `errors`."""

    field: str = Field(description="The field's name in the request body (dotted for nested fields), or "
                                   "`body` for the body as a whole.")
    code: str = Field(description="A stable code: required, too_short, too_long, invalid_characters, "
                                  "invalid_email, invalid_format, invalid_type, unknown_field, captcha_invalid "
                                  "or invalid.")
    message: str = Field(description="A message for the reader, in the request's language, meant to be shown "
                                     "beside the field.")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = Field(description="URL of a page on this service that explains `code` in Vietnamese and "
                                  "English (`/problems/<code>`).")
    title: str = Field(description="A short summary of the code, in the request's language (Accept-Language: "
                                   "Vietnamese by default, or English).")
    status: int = Field(description="The HTTP status of the response.")
    detail: str | None = Field(default=None, description="What went wrong with this request, in the request's "
                                                          "language; for invalid fields, one clause per field.")
    code: str = Field(description="A stable, machine-readable error code; GET /problems lists them all.")
    errors: list[FieldProblem] | None = Field(
        default=None, description="For invalid fields (`validation_failed`, `captcha_invalid`): one entry per "
                                  "field.")


def iso(ms: int) -> str:
    # The date and time of the second are made once a second, not once a request (about 5 µs: docs/benchmarks.md);
    # tests/test_submission_fast_paths.py checks it against the datetime form.
    second, milli = divmod(ms, 1000)
    return f"{_iso_second(second)}.{milli:03d}Z"


@functools.lru_cache(maxsize=16)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds").removesuffix("+00:00")
