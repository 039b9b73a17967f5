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
    "required": ("Vui lòng nhập {noun}", "Please enter your {noun}"),
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
        return template.format(label=label, noun=label.lower(), **params)
    except (KeyError, IndexError):
        return template.format_map({"label": label, "noun": label.lower(), "min": "?", "max": "?"})


#: The widget's own words, served inside widget.js by service/api/widget.py. What it says about a field comes
#: from FIELD_MESSAGES and FIELD_LABELS, so the widget and the service word the same error the same way.
#: Placeholders are `{name}`, filled by the widget.
WIDGET_TEXT: Final[dict[str, tuple[str, str]]] = {
    "heading": ("Bình luận", "Comments"),
    "form": ("Gửi bình luận của bạn", "Post your comment"),
    "name": ("Họ Tên", "Name"),
    "email": ("Email", "Email"),
    "title": ("Tiêu Đề", "Title"),
    "body": ("Nội dung", "Comment"),
    "captcha": ("Mã xác nhận", "Verification code"),
    "alt": ("Mã xác nhận dạng ảnh. Có bản âm thanh: bấm nút “Nghe mã” bên cạnh.",
            "Verification code image. An audio version is available: press the “Listen” button next to it."),
    "newCap": ("Đổi mã", "New code"),
    "listen": ("Nghe mã", "Listen"),
    "stop": ("Dừng nghe", "Stop"),
    "send": ("Gửi bình luận", "Post comment"),
    "sending": ("Đang gửi…", "Sending…"),
    "more": ("Xem thêm", "Load more"),
    "reply": ("Trả lời", "Reply"),
    "cancel": ("Hủy trả lời", "Cancel reply"),
    "pending": ("Đang chờ duyệt", "Awaiting moderation"),
    "sent": ("Bình luận của bạn đang chờ duyệt", "Your comment is awaiting moderation"),
    "closed": TITLES["comments_closed"],
    "loading": ("Đang tải bình luận…", "Loading comments…"),
    "empty": ("Chưa có bình luận nào. Hãy là người đầu tiên!", "No comments yet. Be the first!"),
    "loadErr": ("Không tải được bình luận.", "Could not load comments."),
    "retry": ("Thử lại", "Retry"),
    "approved": ("Bình luận của bạn đã được duyệt.", "Your comment has been approved."),
    "rejected": ("Một bình luận của bạn không được duyệt.", "One of your comments was not approved."),
    "capLen": ("Mã xác nhận gồm 5 ký tự", "The code has 5 characters"),
    "capExp": ("Mã xác nhận đã hết hạn, hãy nhập mã mới", "The code has expired, enter the new one"),
    "capLoadErr": ("Không tải được mã xác nhận", "Could not load the verification code"),
    "fix": ("Vui lòng kiểm tra lại các ô được đánh dấu.", "Please check the highlighted fields."),
    "rate": ("Bạn gửi quá nhanh. Vui lòng thử lại sau {seconds} giây.",
             "You are posting too fast. Please try again in {seconds} seconds."),
    "tooBig": ("Bình luận quá dài.", "Your comment is too long."),
    "fail": ("Không gửi được bình luận. Vui lòng thử lại.", "Your comment could not be sent. Please try again."),
    "net": ("Không kết nối được máy chủ. Vui lòng thử lại.", "Could not reach the server. Please try again."),
    "now": ("vừa xong", "just now"),
    "yours": ("Bình luận của bạn", "Your comments"),
}


def widget_messages() -> dict[Lang, dict[str, object]]:
    """Everything the widget says, per language: its own words, the field messages and the field labels (and
    the lowercase nouns that `required` uses), exactly as field_message() words them."""
    langs: tuple[Lang, Lang] = ("vi", "en")
    return {lang: {
        **{key: pair[i] for key, pair in WIDGET_TEXT.items()},
        "field": {code: pair[i] for code, pair in FIELD_MESSAGES.items()},
        "label": {name: pair[i] for name, pair in FIELD_LABELS.items()},
        "noun": {name: pair[i].lower() for name, pair in FIELD_LABELS.items()},
    } for i, lang in enumerate(langs)}

