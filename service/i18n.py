"""Messages a reader or client sees, in Vietnamese (the default) and English."""

from __future__ import annotations

from typing import Final, Literal

Lang = Literal["vi", "en"]

TITLES: Final[dict[str, tuple[str, str]]] = {
    # code: (Vietnamese, English)
    "error": ("Đã có lỗi xảy ra", "Something went wrong"),
    "bad_request": ("Yêu cầu không hợp lệ", "Bad request"),
    "malformed_json": ("Dữ liệu gửi lên không phải JSON hợp lệ", "The body is not valid JSON"),
    "unauthenticated": ("Cần đăng nhập bằng mã truy cập hợp lệ", "A valid access token is required"),
    "forbidden": ("Mã truy cập này không có quyền làm việc này", "This token may not do this"),
    "not_found": ("Không tìm thấy", "Not found"),
    "method_not_allowed": ("Phương thức không được hỗ trợ", "Method not allowed"),
    "conflict": ("Xung đột", "Conflict"),
    "request_timeout": ("Gửi dữ liệu quá chậm", "The request body arrived too slowly"),
    "already_decided": ("Bình luận này đã được xử lý", "This comment has already been decided"),
    "leased_to_other": ("Bình luận này đang được người khác duyệt", "Another moderator holds this comment"),
    "stale_version": ("Bình luận đã thay đổi, hãy tải lại", "The comment changed since you read it"),
    "not_approved": ("Bình luận này chưa được duyệt", "This comment is not approved"),
    "comments_closed": ("Bài viết này đã đóng bình luận", "Comments are closed for this article"),
    "idempotency_in_progress": ("Yêu cầu giống hệt đang được xử lý", "The same request is still in progress"),
    "gone": ("Không còn tồn tại", "Gone"),
    "cursor_expired": ("Vị trí đọc đã quá hạn lưu giữ", "The cursor is older than the feed's retention"),
    "payload_too_large": ("Dữ liệu gửi lên quá lớn", "The request body is too large"),
    "unsupported_media_type": ("Chỉ nhận dữ liệu JSON", "Only application/json is accepted"),
    "validation_failed": ("Thông tin chưa hợp lệ", "Some fields are not valid"),
    "captcha_invalid": ("Mã xác nhận không đúng hoặc đã hết hạn", "The captcha is wrong, used or expired"),
    "idempotency_key_reused": ("Idempotency-Key đã dùng cho một yêu cầu khác",
                               "This Idempotency-Key was used for a different request"),
    "invalid_parent": ("Bình luận được trả lời không tồn tại", "The comment replied to does not exist"),
    "rate_limited": ("Bạn gửi quá nhanh, vui lòng thử lại sau", "Too many requests, try again later"),
    "unavailable": ("Hệ thống đang bận, vui lòng thử lại sau giây lát",
                    "The service is briefly unavailable, try again shortly"),
    "internal_error": ("Lỗi hệ thống", "Internal error"),
}

FIELD_MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "required": ("Vui lòng nhập {label}", "{label} is required"),
    "too_short": ("{label} cần ít nhất {min} ký tự", "{label} needs at least {min} characters"),
    "too_long": ("{label} tối đa {max} ký tự", "{label} can have at most {max} characters"),
    "invalid_characters": ("{label} chứa ký tự không được phép", "{label} contains characters that are not allowed"),
    "invalid_email": ("Địa chỉ email không hợp lệ", "The email address is not valid"),
    "invalid_format": ("{label} không đúng định dạng", "{label} has the wrong format"),
    "invalid_type": ("{label} không đúng kiểu dữ liệu", "{label} has the wrong type"),
    "unknown_field": ("Trường {label} không được chấp nhận", "The field {label} is not accepted"),
    "captcha_invalid": ("Mã xác nhận không đúng hoặc đã hết hạn, hãy nhập mã mới",
                        "The code is wrong or expired, enter the new one"),
    "invalid": ("{label} không hợp lệ", "{label} is not valid"),
}

FIELD_LABELS: Final[dict[str, tuple[str, str]]] = {
    "name": ("Họ tên", "Name"),
    "email": ("Email", "Email"),
    "title": ("Tiêu đề", "Title"),
    "body": ("Nội dung", "Comment"),
    "captcha_id": ("Mã xác nhận", "Captcha"),
    "captcha_answer": ("Mã xác nhận", "Captcha code"),
    "parent_id": ("Bình luận được trả lời", "Reply target"),
}


def negotiate(accept_language: str | None) -> Lang:
    """Vietnamese unless the client prefers English over Vietnamese."""
    if not accept_language:
        return "vi"
    best: tuple[float, Lang] = (-1.0, "vi")
    for part in accept_language.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in ("vi", "en") and quality > best[0]:
            best = (quality, "vi" if primary == "vi" else "en")
    return best[1]


def title(code: str, lang: Lang) -> str:
    vi, en = TITLES.get(code, TITLES["error"])
    return vi if lang == "vi" else en


def field_message(field: str, code: str, params: dict[str, str | int], lang: Lang) -> str:
    vi, en = FIELD_MESSAGES.get(code, FIELD_MESSAGES["invalid"])
    labels = FIELD_LABELS.get(field)
    label = (labels[0] if lang == "vi" else labels[1]) if labels else field
    template = vi if lang == "vi" else en
    try:
        return template.format(label=label, **params)
    except (KeyError, IndexError):
        return template.format_map({"label": label, "min": "?", "max": "?"})
