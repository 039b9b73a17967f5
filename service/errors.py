"""Domain errors. They know nothing of HTTP beyond a suggested status; `api.middleware` renders them as
RFC 9457 problem documents, in the reader's language (`i18n`).

A detail is written in English as a template (`"at most {max} webhooks"`) with its values in `params`: the
English text is also the key under which `i18n.DETAILS` keeps its Vietnamese translation, and every code has a
page at `/problems/<code>` (`api.problems`) made from `i18n.EXPLANATIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    code: str
    #: Values for the message template (e.g. the limit that was exceeded).
    params: tuple[tuple[str, str | int], ...] = ()


class ServiceError(Exception):
    """Base of every error a client can cause or see; `code` is stable and documented."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(self, detail: str | None = None, *, params: Mapping[str, str | int] | None = None,
                 retry_after: int | None = None, fields: list[FieldError] | None = None,
                 **extra: object) -> None:
        #: The English template, the key of its translations; `detail` is it filled in (for logs and tests).
        self.template = detail
        self.params = dict(params or {})
        self.detail = detail.format_map(self.params) if detail and params else detail
        super().__init__(self.detail or self.code)
        self.retry_after = retry_after
        self.fields = fields or []
        self.extra = extra


class BadRequest(ServiceError):
    code = "bad_request"
    status = 400


class MalformedJSON(BadRequest):
    code = "malformed_json"


class Unauthenticated(ServiceError):
    code = "unauthenticated"
    status = 401


class SigninFailed(Unauthenticated):
    """Wrong name or password, worded alike whether or not the account exists."""

    code = "signin_failed"


class TotpRequired(Unauthenticated):
    """The password was right; this account also signs in with a code from its authenticator app."""

    code = "totp_required"


class TotpInvalid(Unauthenticated):
    code = "totp_invalid"


class SessionEnded(Unauthenticated):
    """The session cookie names no live session: signed out, timed out, ended by an admin or disabled."""

    code = "session_ended"


class Forbidden(ServiceError):
    code = "forbidden"
    status = 403


class CsrfRefused(Forbidden):
    """A state-changing request made with the session cookie that did not come from the service's own pages."""

    code = "csrf_refused"


class TotpEnrolmentRequired(Forbidden):
    code = "totp_enrolment_required"


class NotFound(ServiceError):
    code = "not_found"
    status = 404


class InvitationInvalid(NotFound):
    """The invitation does not exist, was used or expired (which of these is not told)."""

    code = "invitation_invalid"


class PasswordResetInvalid(NotFound):
    """The password reset link does not exist, was used, expired, was replaced by a newer one, or its account is
    gone or disabled (which of these is not told)."""

    code = "password_reset_invalid"


class MethodNotAllowed(ServiceError):
    code = "method_not_allowed"
    status = 405


class RequestTimeout(ServiceError):
    code = "request_timeout"
    status = 408


class Conflict(ServiceError):
    code = "conflict"
    status = 409


class AlreadyDecided(Conflict):
    code = "already_decided"


class LeasedToOther(Conflict):
    code = "leased_to_other"


class StaleVersion(Conflict):
    code = "stale_version"


class NotApproved(Conflict):
    code = "not_approved"


class UndoNotAllowed(Conflict):
    """Only the last decision, within the undo window, by the moderator who made it (or an admin)."""

    code = "undo_not_allowed"


class CommentsClosed(Conflict):
    code = "comments_closed"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"


class NameTaken(Conflict):
    code = "name_taken"


class AccountDisabled(Conflict):
    """The account is disabled: it cannot sign in, and no password reset is issued for it."""

    code = "account_disabled"


class Gone(ServiceError):
    code = "gone"
    status = 410


class CursorExpired(Gone):
    code = "cursor_expired"


class MailLinkInvalid(Gone):
    """A link of an email that is not ours, expired, or (a moderator's one-click link) used already: which of
    these is not told."""

    code = "mail_link_invalid"


class PayloadTooLarge(ServiceError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"
    status = 415


class Unprocessable(ServiceError):
    status = 422


class ValidationFailed(Unprocessable):
    code = "validation_failed"
    #: The detail of a body whose invalid fields say it all: rendered as one clause per field.
    FIELDS_DETAIL: ClassVar[str] = "some fields are not valid"


class CaptchaInvalid(Unprocessable):
    code = "captcha_invalid"


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"


class InvalidParent(Unprocessable):
    code = "invalid_parent"


class WeakPassword(Unprocessable):
    code = "weak_password"


class RateLimited(ServiceError):
    code = "rate_limited"
    status = 429


class SigninLimited(RateLimited):
    code = "signin_limited"


class Unavailable(ServiceError):
    """Redis is down, full or failing over: the client should retry; nothing was acknowledged."""

    code = "unavailable"
    status = 503


class ListenersFull(Unavailable):
    """A worker serves a bounded number of event streams (`live.MAX_LISTENERS`); one more is refused."""

    code = "listeners_full"


class InternalError(ServiceError):
    """A defect: what the client sees of an unexpected exception (the log has the rest)."""

    code = "internal_error"
    status = 500


class StorageCorrupt(InternalError):
    """Stored data is damaged (a key of the wrong type, a record that cannot be read): the scripts check before
    they write, so the operation changed nothing. `comments-service doctor` finds and mends such data."""

    code = "storage_corrupt"


def registry() -> dict[str, type[ServiceError]]:
    """Every code a problem document can carry, with its class; an abstract class without a code of its own
    (`Unprocessable`) is not one."""
    found: dict[str, type[ServiceError]] = {ServiceError.code: ServiceError}
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        for sub in pending.pop().__subclasses__():
            if "code" in vars(sub):
                found.setdefault(sub.code, sub)
            pending.append(sub)
    return found
