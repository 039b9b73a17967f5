"""Messages a reader or client sees, in Vietnamese (the default) and English."""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

from service.negotiation import quality_values

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
    "undo_not_allowed": ("Không thể hoàn tác quyết định này", "This decision cannot be undone"),
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
    "listeners_full": ("Máy chủ đang phục vụ quá nhiều luồng sự kiện", "Too many open event streams"),
    "internal_error": ("Lỗi hệ thống", "Internal error"),
    "storage_corrupt": ("Dữ liệu đã lưu bị hỏng", "Stored data is damaged"),
    "signin_failed": ("Sai tên đăng nhập hoặc mật khẩu", "Wrong name or password"),
    "signin_limited": ("Đăng nhập sai quá nhiều lần, vui lòng thử lại sau",
                       "Too many failed sign-ins, try again later"),
    "totp_required": ("Cần mã xác thực từ ứng dụng", "A code from the authenticator app is required"),
    "totp_invalid": ("Mã xác thực sai hoặc đã dùng", "The code is wrong or was already used"),
    "totp_enrolment_required": ("Cần cài đặt ứng dụng xác thực trước", "Enrol an authenticator app first"),
    "session_ended": ("Phiên đăng nhập đã kết thúc", "The session has ended"),
    "csrf_refused": ("Yêu cầu không đến từ trang của dịch vụ", "The request did not come from the service's pages"),
    "invitation_invalid": ("Lời mời không còn hiệu lực", "The invitation is not valid"),
    "name_taken": ("Tên này đã có người dùng", "This name is taken"),
    "weak_password": ("Mật khẩu chưa đủ mạnh", "The password is too weak"),
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
    "destination_not_allowed": ("{label} trỏ tới một địa chỉ nội bộ, không được phép",
                                "{label} points to an internal address, which is not allowed"),
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
    "password": ("Mật khẩu", "Password"),
    "totp": ("Mã xác thực", "Authentication code"),
    "code": ("Mã xác thực", "Authentication code"),
    "role": ("Vai trò", "Role"),
}


def negotiate(accept_language: str | None) -> Lang:
    """Vietnamese unless the client prefers English over Vietnamese."""
    if not accept_language:
        return "vi"
    best: tuple[float, Lang] = (-1.0, "vi")
    for tag, quality in quality_values(accept_language):
        primary = tag.split("-")[0]
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
    "notify": ("Gửi email cho tôi khi bình luận được duyệt", "Email me when my comment is approved"),
    "report": ("Báo vi phạm", "Report"),
    "reportOf": ("Báo vi phạm bình luận của {name}", "Report the comment by {name}"),
    "reason": ("Lý do", "Reason"),
    "r_spam": ("Spam, quảng cáo", "Spam"),
    "r_offensive": ("Xúc phạm", "Offensive"),
    "r_false": ("Sai sự thật", "False information"),
    "r_unlawful": ("Vi phạm pháp luật", "Unlawful"),
    "r_other": ("Khác", "Other"),
    "reportText": ("Mô tả thêm (không bắt buộc)", "More details (optional)"),
    "reportSend": ("Gửi báo cáo", "Send report"),
    "reportCancel": ("Hủy", "Cancel"),
    "reported": ("Cảm ơn bạn. Ban biên tập sẽ xem xét bình luận này.",
                 "Thank you. The newsroom will look at this comment."),
    "reportFail": ("Không gửi được báo cáo. Vui lòng thử lại.", "The report could not be sent. Please try again."),
    "reportRate": ("Bạn đã gửi nhiều báo cáo. Vui lòng thử lại sau {seconds} giây.",
                   "You have sent many reports. Please try again in {seconds} seconds."),
    "myData": ("Dữ liệu của tôi", "My data"),
    "myDataHint": ("Nhập email bạn đã dùng khi bình luận: chúng tôi gửi tới địa chỉ đó một liên kết, có hiệu lực "
                   "24 giờ.", "Enter the email you commented with: we send a link there, valid for 24 hours."),
    "myDataEmail": ("Email đã dùng khi bình luận", "Email you commented with"),
    "myDataKind": ("Bạn muốn", "You want to"),
    "myDataExport": ("Tải về dữ liệu của tôi", "Download my data"),
    "myDataErase": ("Xóa dữ liệu của tôi", "Erase my data"),
    "myDataSend": ("Gửi liên kết", "Send the link"),
    "myDataSent": ("Nếu địa chỉ này có dữ liệu, liên kết đã được gửi tới đó.",
                   "If this address has any data, the link is on its way there."),
}

#: The pages of a reader's data request link (service/api/privacy.py): `{email}`, `{count}` are filled in.
PRIVACY_TEXT: Final[dict[str, tuple[str, str]]] = {
    "for": ("Địa chỉ email: {email}", "Email address: {email}"),
    "export_title": ("Dữ liệu của bạn", "Your data"),
    "download": ("Tải về (JSON)", "Download (JSON)"),
    "erase_title": ("Xóa dữ liệu của bạn", "Erase your data"),
    "erase_explain": ("Chọn một cách. Xóa hẳn: bình luận của bạn không còn ở đâu, kể cả nội dung. Ẩn danh: nội "
                      "dung ở lại, tên thành “Bạn đọc”, email và dấu vết địa chỉ mạng bị xóa. Không hoàn tác được.",
                      "Choose one. Delete: your comments are gone everywhere, text included. Anonymise: the text "
                      "stays, the name becomes “Bạn đọc”, the email and the network address's trace are removed. "
                      "This cannot be undone."),
    "delete": ("Xóa hẳn", "Delete"),
    "anonymise": ("Ẩn danh", "Anonymise"),
    "erased": ("Đã xong: {count} bình luận.", "Done: {count} comments."),
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


#: The moderation console's words (service/static/console/console.js), served inside console.js by
#: service/api/console.py: one table for every string the console shows. Placeholders are `{name}`.
CONSOLE_TEXT: Final[dict[str, tuple[str, str]]] = {
    "app.title": ("Kiểm duyệt bình luận", "Comment moderation"),
    "app.skip": ("Bỏ qua, tới nội dung chính", "Skip to the main content"),
    "app.signed_in": ("{name} ({role})", "{name} ({role})"),
    "app.sign_out": ("Đăng xuất", "Sign out"),
    "app.switch_lang": ("English", "Tiếng Việt"),
    "loading": ("Đang tải…", "Loading…"),
    "signin.title": ("Đăng nhập kiểm duyệt", "Moderator sign-in"),
    "signin.hint": ("Dùng tên và mật khẩu bạn đã đặt khi nhận lời mời.",
                    "Use the name and the password you set when you accepted your invitation."),
    "signin.name": ("Tên đăng nhập", "Name"),
    "signin.password": ("Mật khẩu", "Password"),
    "signin.totp": ("Mã xác thực (6 chữ số)", "Authentication code (6 digits)"),
    "signin.submit": ("Đăng nhập", "Sign in"),
    "signin.signed_out": ("Bạn đã đăng xuất.", "You have signed out."),
    "signin.ended": ("Phiên đăng nhập đã kết thúc. Vui lòng đăng nhập lại.",
                     "Your session has ended. Please sign in again."),
    "invite.title": ("Nhận lời mời kiểm duyệt", "Accept your invitation"),
    "invite.for": ("Lời mời cho {name}, vai trò {role}. Đặt mật khẩu để dùng tài khoản.",
                   "An invitation for {name}, as {role}. Set a password to use the account."),
    "invite.name": ("Tên đăng nhập của bạn", "Your name for signing in"),
    "invite.password": ("Mật khẩu mới", "New password"),
    "invite.password_hint": ("Ít nhất 12 ký tự, không phải mật khẩu phổ biến, không chứa tên của bạn. Vài từ ghép "
                             "lại là dễ nhớ nhất.",
                             "At least 12 characters, not a common password, without your name. A few words "
                             "together are easiest to remember."),
    "invite.again": ("Nhập lại mật khẩu mới", "The new password again"),
    "invite.submit": ("Đặt mật khẩu", "Set the password"),
    "invite.mismatch": ("Hai mật khẩu không giống nhau.", "The two passwords differ."),
    "invite.done": ("Đã đặt mật khẩu. Mời bạn đăng nhập.", "Your password is set. Please sign in."),
    "invite.to_signin": ("Tới trang đăng nhập", "To the sign-in page"),
    "totp.title": ("Cài đặt xác thực hai bước", "Set up two-step sign-in"),
    "totp.explain": ("Tài khoản quản trị cần mã từ ứng dụng xác thực. Tạo mã bí mật, nhập vào ứng dụng, rồi gõ mã "
                     "6 chữ số ứng dụng hiện ra.",
                     "Admin accounts need a code from an authenticator app. Create a secret, add it to the app, "
                     "then type the 6-digit code the app shows."),
    "totp.begin": ("Tạo mã bí mật", "Create a secret"),
    "totp.secret": ("Mã bí mật", "Secret"),
    "totp.uri": ("Địa chỉ otpauth (cho mã QR)", "otpauth address (for a QR code)"),
    "totp.code": ("Mã 6 chữ số", "6-digit code"),
    "totp.confirm": ("Xác nhận", "Confirm"),
    "nav.label": ("Các trang kiểm duyệt", "Moderation pages"),
    "nav.queue": ("Hàng đợi", "Queue"),
    "nav.approved": ("Đã duyệt", "Approved"),
    "nav.rejected": ("Đã từ chối", "Rejected"),
    "nav.spam": ("Spam", "Spam"),
    "nav.retracted": ("Đã rút lại", "Retracted"),
    "nav.reported": ("Báo vi phạm", "Reported"),
    "nav.search": ("Tìm kiếm", "Search"),
    "nav.stats": ("Thống kê", "Stats"),
    "nav.admin": ("Quản trị", "Admin"),
    "live.loading": ("Đang xem hàng đợi…", "Looking at the queue…"),
    "live.none_waiting": ("Không có bình luận nào đang chờ", "No comment is waiting"),
    "live.oldest": ("Chờ lâu nhất: {age}", "Oldest waiting: {age}"),
    "live.count_pending": ("Bình luận đang chờ duyệt", "Comments waiting for a decision"),
    "live.count_total": ("Tổng số bình luận ở trạng thái này", "All comments in this state"),
    "time.seconds": ("{n} giây", "{n} s"),
    "time.minutes": ("{n} phút", "{n} min"),
    "time.hours": ("{n} giờ", "{n} h"),
    "time.hours_minutes": ("{h} giờ {m} phút", "{h} h {m} min"),
    "time.days": ("{n} ngày", "{n} days"),
    "queue.title": ("Hàng đợi duyệt", "Moderation queue"),
    "queue.hint": ("Cũ nhất trước. Những bình luận này đang được giữ cho bạn; người khác không thấy chúng.",
                   "Oldest first. These comments are held for you; no other moderator sees them."),
    "queue.cards": ("Bình luận bạn đang giữ", "Comments you hold"),
    "queue.status": ("Bạn đang giữ {n} bình luận · {depth} bình luận đang chờ trong hàng đợi",
                     "You hold {n} comments · {depth} waiting in the queue"),
    "queue.status_held": ("Bạn đang giữ {n} bình luận", "You hold {n} comments"),
    "queue.empty": ("Không còn bình luận nào chờ bạn duyệt. Bình luận mới sẽ tự hiện ra.",
                    "Nothing is waiting for you. New comments will appear by themselves."),
    "queue.empty_filtered": ("Không có bình luận nào khớp bộ lọc trong số bạn đang giữ.",
                             "None of the comments you hold matches the filter."),
    "queue.lost": ("{n} bình luận đã hết thời gian giữ và được trả lại hàng đợi.",
                   "{n} comments ran out of their hold and went back to the queue."),
    "filter.label": ("Bộ lọc", "Filters"),
    "filter.article": ("Mã bài viết", "Article id"),
    "filter.risk": ("Tín hiệu rủi ro", "Risk signal"),
    "filter.any_risk": ("Tất cả", "Any"),
    "filter.sort": ("Sắp xếp", "Sort"),
    "filter.apply": ("Áp dụng", "Apply"),
    "sort.age": ("Cũ nhất trước", "Oldest first"),
    "sort.risk": ("Rủi ro cao trước", "Riskiest first"),
    "bulk.label": ("Xử lý các bình luận đã chọn", "Decide the selected comments"),
    "bulk.selected": ("Đã chọn {n} bình luận", "{n} comments selected"),
    "bulk.approve": ("Duyệt các bình luận đã chọn", "Approve selected"),
    "bulk.reject": ("Từ chối các bình luận đã chọn", "Reject selected"),
    "bulk.spam": ("Đánh dấu spam các bình luận đã chọn", "Mark selected as spam"),
    "bulk.clear": ("Bỏ chọn", "Clear selection"),
    "bulk.none": ("Chưa chọn bình luận nào (phím x để chọn).", "Nothing is selected (x selects)."),
    "card.untitled": ("(không có tiêu đề)", "(no title)"),
    "card.name": ("Người gửi:", "From:"),
    "card.email": ("Email:", "Email:"),
    "card.ip": ("IP:", "IP:"),
    "card.ip_search": ("Mã IP {ip}: tìm các bình luận cùng địa chỉ", "IP hash {ip}: find comments from this address"),
    "card.article": ("Bài viết:", "Article:"),
    "card.waiting": ("Đã chờ:", "Waiting:"),
    "card.decided_by": ("bởi {who}, {at}", "by {who}, {at}"),
    "card.select": ("Chọn", "Select"),
    "card.reply_to": ("Trả lời bình luận:", "In reply to:"),
    "card.risks": ("Vì sao cần chú ý:", "Why it was flagged:"),
    "card.author": ("Lịch sử người gửi", "The author's record"),
    "card.author_later": ("Sẽ tải khi bạn xem bình luận này.", "Loads when you look at this comment."),
    "author.by_email": ("Cùng email:", "Same email:"),
    "author.by_ip": ("Cùng địa chỉ IP:", "Same address:"),
    "author.none": ("chưa có bình luận nào trước đây", "no earlier comments"),
    "author.summary": ("{n} bình luận trước đây ({states})", "{n} earlier comments ({states})"),
    "author.state_count": ("{n} {state}", "{n} {state}"),
    "highlight.link": ("Liên kết", "Link"),
    "highlight.blocked": ("Từ trong danh sách chặn", "Blocklisted word"),
    "risk.links": ("Có liên kết trong nội dung", "Contains a link"),
    "risk.many_links": ("Có nhiều liên kết (từ 3 trở lên)", "Contains many links (3 or more)"),
    "risk.blocklisted_words": ("Có từ trong danh sách chặn", "Contains blocklisted words"),
    "risk.shouting": ("Viết toàn chữ in hoa", "Written all in capitals"),
    "risk.repeated_text": ("Nội dung giống hệt bình luận gửi gần đây", "Same text as a recent comment"),
    "risk.ip_reputation": ("Địa chỉ IP này từng gửi spam", "This address has sent spam before"),
    "risk.email_reputation": ("Email này từng gửi spam", "This email has sent spam before"),
    "state.pending": ("Chờ duyệt", "Pending"),
    "state.approved": ("Đã duyệt", "Approved"),
    "state.rejected": ("Đã từ chối", "Rejected"),
    "state.spam": ("Spam", "Spam"),
    "state.retracted": ("Đã rút lại", "Retracted"),
    "action.approve": ("Duyệt", "Approve"),
    "action.reject": ("Từ chối", "Reject"),
    "action.spam": ("Spam", "Spam"),
    "action.retract": ("Rút lại", "Retract"),
    "action.keep": ("Giữ lại", "Keep"),
    "action.history": ("Lịch sử", "History"),
    "action.undo": ("Hoàn tác (u)", "Undo (u)"),
    "action.cancel": ("Huỷ", "Cancel"),
    "action.close": ("Đóng", "Close"),
    "action.dismiss": ("Ẩn", "Dismiss"),
    "done.approve": ("Đã duyệt", "Approved"),
    "done.reject": ("Đã từ chối", "Rejected"),
    "done.spam": ("Đã đánh dấu spam", "Marked as spam"),
    "done.approve_many": ("Đã duyệt {n} bình luận", "Approved {n} comments"),
    "done.reject_many": ("Đã từ chối {n} bình luận", "Rejected {n} comments"),
    "done.spam_many": ("Đã đánh dấu spam {n} bình luận", "Marked {n} comments as spam"),
    "done.retract": ("Đã rút lại bình luận", "The comment was retracted"),
    "done.keep": ("Đã giữ lại bình luận; các báo cáo đã được bác", "Kept; its reports are dismissed"),
    "toast.decided": ("{what}: “{title}”", "{what}: “{title}”"),
    "undo.done": ("Đã hoàn tác: {n} bình luận trở lại hàng đợi", "Undone: {n} comments are back in the queue"),
    "undo.nothing": ("Không có quyết định nào để hoàn tác", "There is no decision to undo"),
    "undo.expired": ("Đã quá thời gian hoàn tác", "Too late to undo"),
    "reason.title_one": ("Từ chối bình luận", "Reject the comment"),
    "reason.title_many": ("Từ chối {n} bình luận đã chọn", "Reject the {n} selected comments"),
    "reason.title_retract": ("Rút lại bình luận đã duyệt", "Retract the approved comment"),
    "reason.legend": ("Lý do (phím số để chọn nhanh)", "Reason (a number key picks one)"),
    "reason.other": ("Lý do khác", "Another reason"),
    "reason.other_text": ("Lý do khác (tự nhập)", "Another reason (free text)"),
    "keys.title": ("Phím tắt", "Keyboard shortcuts"),
    "keys.show": ("Phím tắt (?)", "Shortcuts (?)"),
    "keys.next": ("Bình luận tiếp theo", "Next comment"),
    "keys.previous": ("Bình luận trước", "Previous comment"),
    "keys.approve": ("Duyệt", "Approve"),
    "keys.reject": ("Từ chối (chọn lý do)", "Reject (pick a reason)"),
    "keys.spam": ("Đánh dấu spam", "Mark as spam"),
    "keys.select": ("Chọn hoặc bỏ chọn", "Select or deselect"),
    "keys.approve_selected": ("Duyệt các bình luận đã chọn", "Approve the selected comments"),
    "keys.undo": ("Hoàn tác quyết định vừa rồi (trong 10 giây)", "Undo the last decision (within 10 s)"),
    "keys.search": ("Tìm kiếm", "Search"),
    "keys.help": ("Danh sách phím tắt", "This list"),
    "keys.close": ("Đóng hộp thoại", "Close a dialog"),
    "keys.keep": ("Báo vi phạm: giữ lại bình luận, bác các báo cáo", "Reported: keep the comment, dismiss its reports"),
    "keys.retract": ("Báo vi phạm: rút lại bình luận (chọn lý do)", "Reported: retract the comment (pick a reason)"),
    "view.approved": ("Bình luận đã duyệt", "Approved comments"),
    "view.rejected": ("Bình luận đã từ chối", "Rejected comments"),
    "view.spam": ("Bình luận spam", "Spam"),
    "view.retracted": ("Bình luận đã rút lại", "Retracted comments"),
    "view.approved_hint": ("Mới xử lý nhất trước. “Rút lại” gỡ bình luận khỏi trang.",
                           "Newest decisions first. “Retract” takes a comment off the page."),
    "view.rejected_hint": ("Mới xử lý nhất trước.", "Newest decisions first."),
    "view.spam_hint": ("Mới xử lý nhất trước.", "Newest decisions first."),
    "view.retracted_hint": ("Mới xử lý nhất trước.", "Newest decisions first."),
    "view.reported": ("Bình luận bị báo vi phạm", "Reported comments"),
    "view.reported_hint": ("Nhiều lượt báo nhất trước, rồi chờ lâu nhất. “Giữ lại” (g) bác các báo cáo; “Rút lại” (t) "
                           "gỡ bình luận khỏi trang.", "Most reported first, then the longest waiting. “Keep” (g) "
                           "dismisses the reports; “Retract” (t) takes the comment off the page."),
    "reported.count": ("{n} bình luận bị báo vi phạm", "{n} reported comments"),
    "reported.empty": ("Không có bình luận nào bị báo vi phạm.", "No reported comments."),
    "reported.summary": ("{n} lượt báo · lượt đầu đã chờ {age}", "{n} reports · the first has waited {age}"),
    "reported.reason": ("{reason}: {n}", "{reason}: {n}"),
    "reported.texts": ("Bạn đọc viết", "Readers wrote"),
    "report_reason.spam": ("Spam", "Spam"),
    "report_reason.offensive": ("Xúc phạm", "Offensive"),
    "report_reason.false": ("Sai sự thật", "False"),
    "report_reason.unlawful": ("Vi phạm pháp luật", "Unlawful"),
    "report_reason.other": ("Khác", "Other"),
    "list.empty": ("Không có bình luận nào.", "No comments."),
    "page.label": ("Các trang kết quả", "Result pages"),
    "page.previous": ("Trang trước", "Previous page"),
    "page.next": ("Trang sau", "Next page"),
    "page.number": ("Trang {n} · {count} bình luận", "Page {n} · {count} comments"),
    "search.title": ("Tìm bình luận", "Find comments"),
    "search.q": ("Từ khoá", "Words"),
    "search.q_hint": ("Có dấu hay không dấu đều được: “duong” tìm thấy “đường”.",
                      "With or without diacritics: “duong” finds “đường”."),
    "search.name": ("Tên người gửi", "Author's name"),
    "search.email": ("Email", "Email"),
    "search.ip_hash": ("Mã IP", "IP hash"),
    "search.article": ("Mã bài viết", "Article id"),
    "search.state": ("Trạng thái", "State"),
    "search.any_state": ("Mọi trạng thái", "Any state"),
    "search.since": ("Từ ngày", "From"),
    "search.until": ("Đến ngày", "Until"),
    "search.submit": ("Tìm", "Search"),
    "search.help": ("Nhập ít nhất một điều kiện.", "Enter at least one criterion."),
    "search.results": ("Kết quả", "Results"),
    "search.none": ("Không tìm thấy bình luận nào.", "No comment found."),
    "comment.title": ("Bình luận và lịch sử", "A comment and its history"),
    "comment.history": ("Lịch sử xử lý", "History"),
    "comment.no_history": ("Chưa có quyết định nào.", "No decision yet."),
    "history.at": ("Thời điểm", "When"),
    "history.by": ("Người xử lý", "By"),
    "history.action": ("Hành động", "Action"),
    "history.change": ("Trạng thái", "State"),
    "history.reason": ("Lý do", "Reason"),
    "history.approve": ("Duyệt", "Approve"),
    "history.reject": ("Từ chối", "Reject"),
    "history.spam": ("Spam", "Spam"),
    "history.retract": ("Rút lại", "Retract"),
    "history.undo": ("Hoàn tác", "Undo"),
    "stats.title": ("Thống kê", "Stats"),
    "stats.depth": ("Bình luận đang chờ", "Comments waiting"),
    "stats.oldest": ("Chờ lâu nhất", "Oldest waiting"),
    "stats.day_decisions": ("Quyết định trong 24 giờ", "Decisions in 24 hours"),
    "stats.week_decisions": ("Quyết định trong 7 ngày", "Decisions in 7 days"),
    "stats.per_hour": ("Quyết định mỗi giờ, theo người kiểm duyệt (24 giờ qua)",
                       "Decisions per hour by moderator (last 24 hours)"),
    "stats.per_hour_chart": ("Biểu đồ cột: quyết định mỗi giờ theo người kiểm duyệt, cao nhất {max}",
                             "Bar chart: decisions per hour by moderator, highest {max}"),
    "stats.bar_title": ("{who}, {hour}: {n} quyết định", "{who}, {hour}: {n} decisions"),
    "stats.wait": ("Thời gian từ lúc gửi đến lúc xử lý", "Time from submission to decision"),
    "stats.wait_chart": ("Biểu đồ: trung vị và phân vị 90 của thời gian chờ, trong ngày và trong tuần",
                         "Chart: median and 90th percentile of the wait, over a day and over a week"),
    "stats.day_median": ("24 giờ, trung vị", "Day, median"),
    "stats.day_p90": ("24 giờ, p90", "Day, p90"),
    "stats.week_median": ("7 ngày, trung vị", "Week, median"),
    "stats.week_p90": ("7 ngày, p90", "Week, p90"),
    "stats.per_moderator": ("Theo người kiểm duyệt (24 giờ qua)", "By moderator (last 24 hours)"),
    "stats.moderator": ("Người kiểm duyệt", "Moderator"),
    "stats.none": ("Chưa có quyết định nào.", "No decisions yet."),
    "role.moderator": ("kiểm duyệt viên", "moderator"),
    "role.admin": ("quản trị viên", "admin"),
    "role.feed": ("đọc luồng duyệt", "feed reader"),
    "table.label": ("Bảng (cuộn ngang nếu cần)", "Table (scrolls sideways if needed)"),
    "admin.title": ("Quản trị", "Administration"),
    "admin.only": ("Chỉ quản trị viên dùng được trang này.", "Only admins can use this page."),
    "admin.people": ("Người dùng", "People"),
    "admin.tokens": ("Mã truy cập cho máy", "Machine tokens"),
    "admin.webhooks": ("Webhook", "Webhooks"),
    "admin.articles": ("Mở và đóng bình luận của bài viết", "Open and close articles"),
    "admin.name": ("Tên", "Name"),
    "admin.role": ("Vai trò", "Role"),
    "admin.status": ("Trạng thái", "Status"),
    "admin.actions": ("Thao tác", "Actions"),
    "admin.created": ("Tạo lúc", "Created"),
    "admin.expires": ("Hết hạn", "Expires"),
    "admin.never": ("Không bao giờ", "Never"),
    "admin.active": ("Đang hoạt động", "Active"),
    "admin.disabled": ("Đã vô hiệu hoá", "Disabled"),
    "admin.make_admin": ("Đổi thành quản trị viên", "Make admin"),
    "admin.make_moderator": ("Đổi thành kiểm duyệt viên", "Make moderator"),
    "admin.disable": ("Vô hiệu hoá", "Disable"),
    "admin.confirm_disable": ("Vô hiệu hoá tài khoản {name}? Mọi phiên đăng nhập của họ sẽ kết thúc.",
                              "Disable {name}? Their sessions end at once."),
    "admin.end_sessions": ("Kết thúc phiên", "End sessions"),
    "admin.sessions_ended": ("Đã kết thúc {n} phiên của {name}", "Ended {n} sessions of {name}"),
    "admin.invite": ("Mời người mới", "Invite a person"),
    "admin.invite_send": ("Tạo lời mời", "Create the invitation"),
    "admin.invite_link": ("Đường dẫn mời cho {name} (gửi cho họ; dùng được một lần trong 72 giờ)",
                          "Invitation link for {name} (send it to them; it works once, for 72 hours)"),
    "admin.shown_once": ("Chỉ hiện một lần.", "Shown only once."),
    "admin.token_new": ("Tạo mã truy cập", "Create a token"),
    "admin.token_days": ("Hết hạn sau (ngày)", "Expires after (days)"),
    "admin.token_days_hint": ("Để trống: không hết hạn.", "Empty: never expires."),
    "admin.token_create": ("Tạo mã", "Create"),
    "admin.token_value": ("Mã truy cập của {name}", "The token of {name}"),
    "admin.no_tokens": ("Chưa có mã truy cập nào.", "No tokens yet."),
    "admin.revoke": ("Thu hồi", "Revoke"),
    "admin.confirm_revoke": ("Thu hồi mã {name}?", "Revoke the token {name}?"),
    "admin.webhook_new": ("Đăng ký webhook", "Register a webhook"),
    "admin.webhook_url": ("Địa chỉ nhận (URL)", "Receiver URL"),
    "admin.webhook_events": ("Sự kiện", "Events"),
    "admin.webhook_secret": ("Khoá ký", "Signing secret"),
    "admin.webhook_secret_hint": ("Ít nhất 16 ký tự; không hiện lại.", "At least 16 characters; never shown again."),
    "admin.webhook_create": ("Đăng ký", "Register"),
    "admin.webhook_created": ("Đã đăng ký webhook", "The webhook is registered"),
    "admin.no_webhooks": ("Chưa có webhook nào.", "No webhooks yet."),
    "admin.deliveries": ("Lần gửi", "Deliveries"),
    "admin.deliveries_of": ("Các lần gửi tới {url}", "Deliveries to {url}"),
    "admin.no_deliveries": ("Chưa có lần gửi nào.", "No deliveries yet."),
    "admin.delete": ("Xoá", "Delete"),
    "admin.confirm_delete_webhook": ("Xoá webhook {url}?", "Delete the webhook {url}?"),
    "admin.event": ("Sự kiện", "Event"),
    "admin.attempts": ("Số lần thử", "Attempts"),
    "admin.last_status": ("Mã trả về", "Last status"),
    "admin.last_error": ("Lỗi", "Last error"),
    "admin.updated": ("Cập nhật", "Updated"),
    "admin.open": ("Mở bình luận", "Open comments"),
    "admin.close": ("Đóng bình luận", "Close comments"),
    "admin.article_open": ("Bài viết {id} đang mở bình luận.", "Article {id} takes comments."),
    "admin.article_closed": ("Bài viết {id} đã đóng bình luận.", "Article {id} is closed to comments."),
    "error.network": ("Không kết nối được máy chủ. Vui lòng thử lại.", "Could not reach the server. Please try again."),
    "error.some_failed": ("{n} bình luận không xử lý được (có thể đã được người khác xử lý).",
                          "{n} comments could not be decided (someone else may have decided them)."),
}


def console_messages() -> dict[Lang, dict[str, str]]:
    """Everything the moderation console says, per language (a problem's own words come with the problem)."""
    langs: tuple[Lang, Lang] = ("vi", "en")
    return {lang: {key: pair[i] for key, pair in CONSOLE_TEXT.items()} for i, lang in enumerate(langs)}


# -- problem details and the pages at /problems/<code> -------------------------------------------------------

#: A detail's English template (as `errors.ServiceError` is raised with it) -> its Vietnamese translation. The
#: placeholders are the same in both; tests/test_problems.py finds every template raised in `service` here.
DETAILS: Final[dict[str, str]] = {
    "send a valid token as 'Authorization: Bearer <token>'":
        "Hãy gửi một mã truy cập hợp lệ trong tiêu đề 'Authorization: Bearer <token>'",
    "this token's role ({role}) may not do this": "Vai trò của mã truy cập này ({role}) không được làm việc này",
    "too many failed attempts": "Thử sai quá nhiều lần",
    "tokens are refused in the query string: send them as 'Authorization: Bearer'":
        "Không nhận mã truy cập trong chuỗi truy vấn: hãy gửi trong tiêu đề 'Authorization: Bearer'",
    "send the body as application/json": "Hãy gửi nội dung dưới dạng application/json",
    "the body may be at most {max} bytes": "Nội dung gửi lên tối đa {max} byte",
    "the body is too large": "Nội dung gửi lên quá lớn",
    "the body repeats a key": "Nội dung JSON lặp lại một khóa (key)",
    "the body is not valid JSON (or not UTF-8)": "Nội dung không phải JSON hợp lệ (hoặc không phải UTF-8)",
    "the body is nested too deeply": "Nội dung JSON lồng nhau quá sâu",
    "the body did not arrive in time": "Nội dung không được gửi đến kịp thời hạn",
    "{name} must be an integer from {low} to {high}": "{name} phải là số nguyên từ {low} đến {high}",
    "some fields are not valid": "Một số trường chưa hợp lệ",
    "no such resource": "Không có tài nguyên này",
    "this method is not allowed here": "Địa chỉ này không nhận phương thức HTTP này",
    "the database is unreachable; nothing was saved": "Không kết nối được cơ sở dữ liệu; chưa có gì được lưu",
    "the database refuses writes; nothing was saved": "Cơ sở dữ liệu đang từ chối ghi; chưa có gì được lưu",
    "the database connection was reset; nothing was saved":
        "Kết nối tới cơ sở dữ liệu bị ngắt; chưa có gì được lưu",
    "an unexpected error occurred; it has been logged": "Đã xảy ra lỗi ngoài dự kiến; lỗi đã được ghi lại",
    "Redis is not safe for comments: {problems}": "Redis chưa được cấu hình an toàn để lưu bình luận: {problems}",
    "no such comment": "Không có bình luận này",
    "no such article": "Không có bài viết này",
    "no such token": "Không có mã truy cập này",
    "no such webhook": "Không có webhook này",
    "no such problem type": "Không có loại lỗi này",
    "article_id has the wrong format": "article_id không đúng định dạng",
    "an article_id has the wrong format": "Một article_id không đúng định dạng",
    "an id has the wrong format": "Một mã bình luận (id) không đúng định dạng",
    "give 1 to {max} article_id parameters": "Hãy gửi từ 1 đến {max} tham số article_id",
    "lang must be vi or en": "lang phải là vi hoặc en",
    "order must be oldest or newest": "order phải là oldest hoặc newest",
    "Idempotency-Key must be 1-200 printable ASCII characters":
        "Idempotency-Key phải gồm 1 đến 200 ký tự ASCII in được",
    "send the receipt as 'Authorization: Receipt <receipt>'":
        "Hãy gửi biên nhận trong tiêu đề 'Authorization: Receipt <receipt>'",
    "this receipt is not for this comment": "Biên nhận này không thuộc về bình luận này",
    "this captcha does not exist or expired": "Mã xác nhận này không tồn tại hoặc đã hết hạn",
    "the captcha does not exist, was already used or expired":
        "Mã xác nhận không tồn tại, đã được dùng hoặc đã hết hạn",
    "the answer is wrong": "Mã xác nhận nhập chưa đúng",
    "the cursor is not one this service gave out": "Vị trí đọc (cursor) này không do dịch vụ cấp",
    "events after this cursor were dropped by retention; start again":
        "Các sự kiện sau vị trí đọc này đã bị xoá vì quá hạn lưu giữ; hãy đọc lại từ đầu",
    "the comment is at version {version}": "Bình luận hiện ở phiên bản {version}",
    "the comment is already {state}": "Bình luận đã ở trạng thái {state}",
    "the comment is {state}, not approved": "Bình luận đang ở trạng thái {state}, không phải approved (đã duyệt)",
    "the comment is {state}: only an approval, a rejection or a spam decision can be undone":
        "Bình luận đang ở trạng thái {state}: chỉ hoàn tác được quyết định duyệt, từ chối hoặc đánh dấu rác",
    "the decision is more than {seconds} s old and can no longer be undone":
        "Quyết định đã quá {seconds} giây nên không hoàn tác được nữa",
    "only {moderator}, who made the decision, or an admin can undo it":
        "Chỉ {moderator}, người đã ra quyết định, hoặc quản trị viên mới hoàn tác được",
    "state must be pending, approved, rejected, spam or retracted":
        "state phải là pending, approved, rejected, spam hoặc retracted",
    "{name} must be a date or an instant in ISO 8601": "{name} phải là một ngày hoặc thời điểm theo ISO 8601",
    "{name} must be 1 to {high} characters of text": "{name} phải là văn bản dài từ 1 đến {high} ký tự",
    "q must hold at least one word": "q phải có ít nhất một từ",
    "email is not a valid address": "email không phải là địa chỉ hợp lệ",
    "ip_hash has the wrong format": "ip_hash không đúng định dạng",
    "{holder} holds this comment": "{holder} đang giữ bình luận này",
    "too many comments, try again later": "Bạn gửi quá nhiều bình luận, vui lòng thử lại sau",
    "this server already serves {max} event streams; try again later":
        "Máy chủ này đang phục vụ {max} luồng sự kiện; vui lòng thử lại sau",
    "this Idempotency-Key was used for a different request": "Idempotency-Key này đã được dùng cho một yêu cầu khác",
    "comments are closed for this article": "Bài viết này đã đóng bình luận",
    "the comment replied to is not an approved comment of this article":
        "Bình luận được trả lời không phải bình luận đã duyệt của bài viết này",
    "the comment is not yet on a replica; retry with the same Idempotency-Key":
        "Bình luận chưa được chép sang máy chủ dự phòng; hãy gửi lại với cùng Idempotency-Key",
    "a different request holds this id": "Một yêu cầu khác đang giữ mã này",
    "at most {max} webhooks": "Tối đa {max} webhook",
    "too many captchas for this address": "Địa chỉ mạng này đã xin quá nhiều mã xác nhận",
    "too many captchas are being drawn or spoken right now; try again in a moment":
        "Đang có quá nhiều mã xác nhận chờ được vẽ hoặc đọc; hãy thử lại sau giây lát",
    "audio captchas cannot be spoken right now; use the picture":
        "Hiện không đọc được mã xác nhận bằng giọng nói; hãy dùng hình ảnh",
    "the stored data is damaged ({what}); nothing was changed":
        "Dữ liệu đã lưu bị hỏng ({what}); chưa có gì bị thay đổi",
    "your role ({role}) may not do this": "Vai trò của bạn ({role}) không được làm việc này",
    "admins sign in with a code: enrol an authenticator app first":
        "Quản trị viên đăng nhập kèm mã xác thực: hãy cài đặt ứng dụng xác thực trước",
    "sign in first": "Hãy đăng nhập trước",
    "your session has ended; sign in again": "Phiên đăng nhập đã kết thúc; hãy đăng nhập lại",
    "send the session's CSRF token in the X-CSRF-Token header":
        "Hãy gửi mã CSRF của phiên đăng nhập trong tiêu đề X-CSRF-Token",
    "this request did not come from the service's own pages": "Yêu cầu này không đến từ các trang của dịch vụ",
    "a name has 2 to 40 letters, digits, '.', '_' or '-'": "Tên gồm 2 đến 40 chữ cái, chữ số, '.', '_' hoặc '-'",
    "the name {name} is taken": "Tên {name} đã có người dùng",
    "this invitation does not exist, was used or expired": "Lời mời này không tồn tại, đã được dùng hoặc đã hết hạn",
    "the password needs at least {min} characters": "Mật khẩu cần ít nhất {min} ký tự",
    "the password may have at most {max} characters": "Mật khẩu tối đa {max} ký tự",
    "this password is one of the most common ones; choose another":
        "Mật khẩu này là một trong những mật khẩu phổ biến nhất; hãy chọn mật khẩu khác",
    "the password must not contain the name": "Mật khẩu không được chứa tên đăng nhập",
    "no such account": "Không có tài khoản này",
    "too many failed sign-ins; try again later": "Đăng nhập sai quá nhiều lần; vui lòng thử lại sau",
    "wrong name or password": "Sai tên đăng nhập hoặc mật khẩu",
    "enter the code from your authenticator app": "Hãy nhập mã từ ứng dụng xác thực của bạn",
    "the code is wrong or was already used": "Mã xác thực sai hoặc đã được dùng",
    "the comment kept changing while it was being erased; try again":
        "Bình luận liên tục thay đổi trong lúc xóa; hãy thử lại",
    "this link does not exist, was used or expired": "Liên kết này không tồn tại, đã được dùng hoặc đã hết hạn",
    "too many reports, try again later": "Bạn gửi quá nhiều báo cáo, vui lòng thử lại sau",
    "too many data requests, try again later": "Bạn gửi quá nhiều yêu cầu về dữ liệu, vui lòng thử lại sau",
    "mode must be delete or anonymise": "mode phải là delete hoặc anonymise",
}


class Explanation(NamedTuple):
    """What a problem code means and what a client should do about it, in both languages."""

    meaning: tuple[str, str]
    action: tuple[str, str]


#: The page at /problems/<code> for every code in `errors.registry()`; `meaning` is also the detail of a
#: problem raised without one (or with a template not in `DETAILS`).
EXPLANATIONS: Final[dict[str, Explanation]] = {
    "error": Explanation(
        ("Yêu cầu không thực hiện được vì một lý do chung, không thuộc mã lỗi cụ thể nào.",
         "The request failed for a general reason that has no more specific code."),
        ("Đọc `status` và `detail` của phản hồi; nếu không rõ, hãy báo cho quản trị viên kèm X-Request-ID.",
         "Read the response's `status` and `detail`; if unclear, report it with the X-Request-ID header.")),
    "bad_request": Explanation(
        ("Yêu cầu sai cách gửi, ví dụ mã truy cập đặt trong chuỗi truy vấn thay vì tiêu đề Authorization.",
         "The request is malformed, for example a token sent in the query string instead of the "
         "Authorization header."),
        ("Sửa yêu cầu theo `detail` rồi gửi lại; gửi lại y nguyên sẽ bị từ chối như cũ.",
         "Fix the request as `detail` says and send it again; the same request will be refused again.")),
    "malformed_json": Explanation(
        ("Nội dung gửi lên không phải JSON hợp lệ: sai cú pháp, không phải UTF-8, lồng nhau quá sâu hoặc lặp "
         "lại một khóa.",
         "The body is not valid JSON: a syntax error, not UTF-8, nested too deeply, or a key repeated."),
        ("Gửi đúng một đối tượng JSON mã hoá UTF-8, mỗi khóa một lần (JSON.stringify làm đúng như vậy).",
         "Send one UTF-8 JSON object with each key once (JSON.stringify does exactly that).")),
    "unauthenticated": Explanation(
        ("Thao tác này cần mã truy cập (hoặc biên nhận của bình luận) mà yêu cầu không có, hoặc mã đã hết hạn "
         "hay bị thu hồi.",
         "This operation needs an access token (or the comment's receipt) that the request lacks, or the token "
         "expired or was revoked."),
        ("Gửi tiêu đề 'Authorization: Bearer <token>' với mã do quản trị viên cấp; xin mã mới nếu mã cũ hết hạn.",
         "Send 'Authorization: Bearer <token>' with a token an admin created; ask for a new one if it "
         "expired.")),
    "forbidden": Explanation(
        ("Mã truy cập hợp lệ nhưng vai trò của nó (feed, moderator, admin) không được làm thao tác này.",
         "The token is valid but its role (feed, moderator, admin) may not do this operation."),
        ("Dùng mã có vai trò phù hợp; mô tả của từng thao tác trong /openapi.json ghi vai trò cần có.",
         "Use a token with the right role; each operation in /openapi.json names the role it needs.")),
    "not_found": Explanation(
        ("Không có tài nguyên ở địa chỉ này: bài viết, bình luận, mã xác nhận, mã truy cập hoặc webhook không "
         "tồn tại hoặc đã hết hạn.",
         "Nothing is at this address: the article, comment, captcha, token or webhook does not exist or "
         "expired."),
        ("Kiểm tra mã trong địa chỉ; với mã xác nhận đã hết hạn, hãy xin mã mới (POST /v1/captchas).",
         "Check the id in the URL; for an expired captcha, request a new one (POST /v1/captchas).")),
    "method_not_allowed": Explanation(
        ("Địa chỉ này tồn tại nhưng không nhận phương thức HTTP đã dùng (ví dụ PUT thay vì POST).",
         "This address exists but does not accept the HTTP method used (for example PUT instead of POST)."),
        ("Dùng phương thức mà /openapi.json ghi cho địa chỉ này; tiêu đề Allow của phản hồi liệt kê chúng.",
         "Use a method /openapi.json lists for this path; the response's Allow header names them.")),
    "request_timeout": Explanation(
        ("Nội dung yêu cầu đến quá chậm nên kết nối bị cắt, để một kết nối chậm không giữ tài nguyên máy chủ.",
         "The request body arrived too slowly and the connection was cut, so a slow sender cannot hold the "
         "server's resources."),
        ("Gửi lại khi mạng ổn định hơn; một bình luận gửi lại với cùng Idempotency-Key không bị lưu hai lần.",
         "Send it again on a steadier connection; a comment resent with the same Idempotency-Key is not stored "
         "twice.")),
    "conflict": Explanation(
        ("Yêu cầu mâu thuẫn với trạng thái hiện tại, ví dụ đã đạt số webhook tối đa.",
         "The request conflicts with the current state, for example the maximum number of webhooks is reached."),
        ("Đọc `detail`, thay đổi trạng thái (ví dụ xoá một webhook cũ) rồi thử lại.",
         "Read `detail`, change the state (for example delete an old webhook) and try again.")),
    "already_decided": Explanation(
        ("Bình luận không còn chờ duyệt: một người kiểm duyệt đã duyệt, từ chối hoặc đánh dấu rác.",
         "The comment is no longer pending: a moderator already approved, rejected or marked it as spam."),
        ("Tải lại bình luận để xem quyết định; chỉ bình luận đã duyệt mới gỡ được (retract).",
         "Reload the comment to see the decision; only an approved comment can be retracted.")),
    "leased_to_other": Explanation(
        ("Một người kiểm duyệt khác đã nhận (claim) bình luận này và thời hạn giữ chưa hết. Nhận bình luận là "
         "không bắt buộc; nó chỉ để hai người không xử lý cùng một bình luận.",
         "Another moderator claimed this comment and the lease has not run out. Claiming is optional; claims "
         "only keep two moderators off the same comment."),
        ("Chọn bình luận khác, hoặc chờ hết hạn giữ (lease_expires_at) rồi thử lại.",
         "Pick another comment, or wait until its lease expires (lease_expires_at) and try again.")),
    "stale_version": Explanation(
        ("Bình luận đã thay đổi kể từ khi bạn đọc: `version` gửi kèm quyết định khác phiên bản hiện tại.",
         "The comment changed since you read it: the `version` sent with the decision is not the current one."),
        ("Tải lại bình luận, xem thay đổi, rồi quyết định lại với `version` mới (hoặc bỏ `version` để không "
         "kiểm tra).",
         "Reload the comment, look at what changed, and decide again with the new `version` (or omit `version` "
         "to skip the check).")),
    "undo_not_allowed": Explanation(
        ("Chỉ hoàn tác được quyết định cuối cùng của một bình luận (duyệt, từ chối, rác; không phải gỡ), trong "
         "vòng 10 giây sau khi ra quyết định, và chỉ bởi chính người đã quyết định hoặc quản trị viên.",
         "Only a comment's last decision (approve, reject, spam; not a retraction) can be undone, within 10 "
         "seconds of it, and only by the moderator who made it or an admin."),
        ("Tải lại bình luận để xem trạng thái; một bình luận đã duyệt vẫn gỡ được (retract).",
         "Reload the comment to see its state; an approved comment can still be retracted.")),
    "not_approved": Explanation(
        ("Chỉ gỡ (retract) được bình luận đã duyệt; bình luận này đang ở trạng thái khác.",
         "Only an approved comment can be retracted; this one is in another state."),
        ("Tải lại bình luận để xem trạng thái; bình luận chờ duyệt thì từ chối thay vì gỡ.",
         "Reload the comment to see its state; reject a pending comment instead of retracting it.")),
    "comments_closed": Explanation(
        ("Ban biên tập đã đóng bình luận cho bài viết này; bình luận mới không được nhận.",
         "The newsroom closed comments on this article; no new comment is accepted."),
        ("Không gửi lại. Người kiểm duyệt có thể mở lại bình luận (POST .../open).",
         "Do not resend. A moderator can reopen comments (POST .../open).")),
    "idempotency_in_progress": Explanation(
        ("Một yêu cầu với cùng Idempotency-Key đang được xử lý.",
         "A request with the same Idempotency-Key is still being processed."),
        ("Chờ một chút rồi gửi lại đúng yêu cầu đó với cùng Idempotency-Key; bạn sẽ nhận kết quả của lần đầu.",
         "Wait a moment and resend the same request with the same Idempotency-Key; you get the first one's "
         "result.")),
    "gone": Explanation(
        ("Thứ được yêu cầu đã từng tồn tại nhưng không còn nữa.",
         "What was asked for existed once and no longer does."),
        ("Bắt đầu lại từ đầu thay vì dùng lại địa chỉ hoặc vị trí cũ.",
         "Start again from the beginning instead of reusing the old address or position.")),
    "cursor_expired": Explanation(
        ("Vị trí đọc (cursor) của luồng duyệt cũ hơn thời hạn lưu giữ: các sự kiện sau nó đã bị xoá.",
         "The feed cursor is older than the feed's retention: events after it were dropped."),
        ("Đọc lại luồng từ đầu (GET /v1/feed không có `after`) và đối chiếu với dữ liệu đã có.",
         "Read the feed again from the beginning (GET /v1/feed without `after`) and reconcile with what you "
         "have.")),
    "payload_too_large": Explanation(
        ("Nội dung gửi lên vượt giới hạn kích thước (16 KiB cho JSON).",
         "The request body is larger than the limit (16 KiB for JSON)."),
        ("Rút ngắn nội dung; một bình luận tối đa 5000 ký tự.",
         "Send less; a comment has at most 5000 characters.")),
    "unsupported_media_type": Explanation(
        ("Nội dung không được gửi dưới dạng application/json.",
         "The body was not sent as application/json."),
        ("Gửi tiêu đề 'Content-Type: application/json' và nội dung JSON.",
         "Send 'Content-Type: application/json' and a JSON body.")),
    "validation_failed": Explanation(
        ("Một hoặc nhiều trường hay tham số chưa hợp lệ; `errors` liệt kê từng trường với mã và thông báo.",
         "One or more fields or parameters are not valid; `errors` lists each field with a code and a "
         "message."),
        ("Hiện thông báo của từng trường cạnh ô nhập tương ứng, sửa rồi gửi lại.",
         "Show each field's message beside its input, correct it and send again.")),
    "captcha_invalid": Explanation(
        ("Mã xác nhận nhập sai, đã được dùng hoặc đã hết hạn; mỗi mã chỉ dùng được một lần.",
         "The captcha answer is wrong, or the captcha was used or expired; each captcha works once."),
        ("Xin mã mới (POST /v1/captchas), cho người đọc nhập lại và gửi lại bình luận.",
         "Request a new captcha (POST /v1/captchas), let the reader answer it and submit again.")),
    "idempotency_key_reused": Explanation(
        ("Idempotency-Key này đã được dùng cho một yêu cầu có nội dung khác.",
         "This Idempotency-Key was already used for a request with a different body."),
        ("Tạo khóa mới cho mỗi bình luận mới; chỉ dùng lại khóa khi gửi lại đúng yêu cầu cũ.",
         "Make a new key for each new comment; reuse a key only to resend the very same request.")),
    "invalid_parent": Explanation(
        ("Bình luận được trả lời (parent_id) không phải bình luận đã duyệt của bài viết này.",
         "The comment replied to (parent_id) is not an approved comment of this article."),
        ("Trả lời một bình luận đang hiển thị của cùng bài viết, hoặc bỏ parent_id.",
         "Reply to a comment shown on the same article, or leave parent_id out.")),
    "rate_limited": Explanation(
        ("Quá nhiều yêu cầu từ cùng một nguồn trong thời gian ngắn.",
         "Too many requests from the same source in a short time."),
        ("Chờ số giây ghi trong tiêu đề Retry-After rồi thử lại.",
         "Wait the number of seconds in the Retry-After header, then try again.")),
    "unavailable": Explanation(
        ("Cơ sở dữ liệu tạm thời không dùng được (mất kết nối, đầy, hoặc đang chuyển máy chủ); không có gì được "
         "lưu.",
         "The database is briefly unavailable (unreachable, full or failing over); nothing was saved."),
        ("Chờ số giây trong tiêu đề Retry-After rồi gửi lại; bình luận gửi lại với cùng Idempotency-Key không "
         "bị lưu hai lần.",
         "Wait the seconds in the Retry-After header and resend; a comment resent with the same "
         "Idempotency-Key is not stored twice.")),
    "listeners_full": Explanation(
        ("Mỗi tiến trình của máy chủ chỉ giữ một số luồng sự kiện trực tiếp (GET /v1/moderation/events) cùng lúc; "
         "luồng này vượt quá giới hạn đó. Không có gì thay đổi.",
         "Each server process keeps a bounded number of live event streams (GET /v1/moderation/events) open at "
         "once; this one was past that bound. Nothing changed."),
        ("Thử lại sau số giây trong tiêu đề Retry-After; trong lúc chờ, đọc GET /v1/moderation/stats định kỳ.",
         "Try again after the seconds in the Retry-After header; meanwhile, read GET /v1/moderation/stats "
         "now and then.")),
    "internal_error": Explanation(
        ("Lỗi của chính dịch vụ; chi tiết đã được ghi vào nhật ký, không gửi cho người dùng.",
         "A defect in the service; the details were logged, not sent to the client."),
        ("Thử lại sau; nếu lỗi lặp lại, báo cho quản trị viên kèm giá trị tiêu đề X-Request-ID.",
         "Try again later; if it recurs, report it with the value of the X-Request-ID header.")),
    "storage_corrupt": Explanation(
        ("Dữ liệu đã lưu cho thao tác này bị hỏng (một khóa sai kiểu hoặc một bản ghi không đọc được); thao tác "
         "không thay đổi gì.",
         "The data stored for this operation is damaged (a key of the wrong type, or a record that cannot be "
         "read); the operation changed nothing."),
        ("Báo cho quản trị viên kèm giá trị tiêu đề X-Request-ID; quản trị viên chạy `comments-service doctor` "
         "để tìm và sửa dữ liệu hỏng.",
         "Report it with the value of the X-Request-ID header; an operator runs `comments-service doctor` to "
         "find and mend the damaged data.")),
}

EXPLANATIONS.update({
    "signin_failed": Explanation(
        ("Tên đăng nhập hoặc mật khẩu không đúng (không nói rõ cái nào, để không lộ tài khoản nào tồn tại), hoặc "
         "tài khoản đã bị khoá.",
         "The name or the password is wrong (which one is not said, so as not to reveal which accounts exist), or "
         "the account is disabled."),
        ("Kiểm tra lại rồi thử lại; sau nhiều lần sai, đăng nhập bị tạm chặn. Quên mật khẩu thì nhờ quản trị viên "
         "gửi lời mời mới.",
         "Check and try again; after several failures sign-in is paused. If the password is forgotten, ask an "
         "admin for a new invitation.")),
    "signin_limited": Explanation(
        ("Đã có quá nhiều lần đăng nhập sai cho tài khoản này hoặc từ địa chỉ mạng này trong 15 phút.",
         "Too many failed sign-ins for this account or from this network address in 15 minutes."),
        ("Chờ số giây trong tiêu đề Retry-After rồi thử lại.",
         "Wait the number of seconds in the Retry-After header, then try again.")),
    "totp_required": Explanation(
        ("Mật khẩu đúng, nhưng tài khoản này đăng nhập kèm mã 6 chữ số từ ứng dụng xác thực.",
         "The password is right, but this account signs in with a 6-digit code from an authenticator app too."),
        ("Gửi lại tên, mật khẩu và mã hiện tại của ứng dụng trong trường `totp`.",
         "Send the name and password again with the app's current code in `totp`.")),
    "totp_invalid": Explanation(
        ("Mã xác thực không đúng, đã quá hạn, hoặc đã được dùng một lần (mỗi mã chỉ dùng được một lần).",
         "The code is wrong, too old, or was used already (each code works once)."),
        ("Chờ mã mới hiện trên ứng dụng rồi thử lại; kiểm tra đồng hồ của điện thoại.",
         "Wait for the app's next code and try again; check the phone's clock.")),
    "totp_enrolment_required": Explanation(
        ("Quản trị viên phải đăng nhập kèm mã xác thực, và tài khoản này chưa cài đặt ứng dụng xác thực.",
         "Admins must sign in with a code, and this account has not enrolled an authenticator app yet."),
        ("Cài đặt ứng dụng: POST /v1/session/totp, thêm bí mật vào ứng dụng, rồi xác nhận bằng mã "
         "(POST /v1/session/totp/confirm).",
         "Enrol: POST /v1/session/totp, add the secret to the app, then confirm with a code "
         "(POST /v1/session/totp/confirm).")),
    "session_ended": Explanation(
        ("Cookie phiên không ứng với phiên nào đang mở: đã đăng xuất, quá thời gian chờ, hết thời hạn, bị quản trị "
         "viên kết thúc hoặc tài khoản bị khoá.",
         "The session cookie names no live session: signed out, idle too long, past its lifetime, ended by an "
         "admin, or the account was disabled."),
        ("Đăng nhập lại (POST /v1/session).", "Sign in again (POST /v1/session).")),
    "csrf_refused": Explanation(
        ("Yêu cầu thay đổi dữ liệu bằng cookie phiên phải đến từ chính trang của dịch vụ (cùng Origin) và mang "
         "mã CSRF của phiên trong tiêu đề X-CSRF-Token.",
         "A request that changes something with the session cookie must come from the service's own pages (the "
         "same Origin) and carry the session's CSRF token in the X-CSRF-Token header."),
        ("Gửi yêu cầu từ trang kiểm duyệt của dịch vụ, kèm `csrf_token` lấy từ GET /v1/session; máy dùng "
         "'Authorization: Bearer'.",
         "Send it from the service's moderation pages with the `csrf_token` of GET /v1/session; machines use "
         "'Authorization: Bearer'.")),
    "invitation_invalid": Explanation(
        ("Lời mời không tồn tại, đã được dùng hoặc đã quá 72 giờ; mỗi lời mời chỉ dùng được một lần.",
         "The invitation does not exist, was used, or is older than 72 hours; each invitation works once."),
        ("Nhờ quản trị viên gửi lời mời mới.", "Ask an admin for a new invitation.")),
    "name_taken": Explanation(
        ("Đã có tài khoản mang tên này (không phân biệt chữ hoa, chữ thường).",
         "An account already has this name (whatever the case)."),
        ("Chọn tên khác.", "Choose another name.")),
    "weak_password": Explanation(
        ("Mật khẩu quá ngắn, quá dài, là một mật khẩu phổ biến, hoặc chứa tên đăng nhập.",
         "The password is too short, too long, one of the common passwords, or contains the name."),
        ("Chọn mật khẩu dài hơn, khó đoán (ví dụ vài từ ngẫu nhiên ghép lại).",
         "Choose a longer password that is hard to guess (a few random words together, for example).")),
})

FIELD_DETAIL: Final = ("Trường {field}: {message}", "Field {field}: {message}")


def _pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[0] if lang == "vi" else pair[1]


def detail(code: str, template: str | None, params: dict[str, str | int], lang: Lang) -> str:
    """A problem's detail in `lang`: the raised template translated and filled in; the code's meaning when it
    was raised without one, or (in Vietnamese) with a template that has no translation yet."""
    vi = DETAILS.get(template) if template else None
    if template is None or (lang == "vi" and vi is None):
        return _pick(EXPLANATIONS.get(code, EXPLANATIONS["error"]).meaning, lang)
    chosen = vi if lang == "vi" and vi is not None else template
    try:
        return chosen.format_map(params)
    except (KeyError, IndexError, ValueError):
        return chosen


def fields_detail(messages: list[tuple[str, str]], lang: Lang) -> str:
    """The detail of a validation problem: each (field, localised message) as one clause."""
    return "; ".join(_pick(FIELD_DETAIL, lang).format(field=field, message=message) for field, message in messages)


# -- email (`service.mail`, `api.mail`) ------------------------------------------------------------------------

TITLES["mail_link_invalid"] = ("Liên kết không còn hiệu lực", "The link is no longer valid")
EXPLANATIONS["mail_link_invalid"] = Explanation(
    ("Liên kết trong email không đúng, đã quá hạn, hoặc (liên kết duyệt của người kiểm duyệt) đã được dùng một lần; "
     "mỗi liên kết duyệt chỉ dùng được một lần.",
     "The email's link is not one of ours, has expired, or (a moderator's decision link) was used already; each "
     "decision link works once."),
    ("Mở trang kiểm duyệt để xử lý bình luận, hoặc chờ email tiếp theo.",
     "Open the moderation console to decide the comment, or wait for the next email."))
DETAILS.update({
    "this link is not valid, was already used or expired":
        "Liên kết này không hợp lệ, đã được dùng hoặc đã hết hạn",
    "this service sends no email": "Dịch vụ này không gửi email",
    "no such approved comment": "Không có bình luận đã duyệt này",
    "the comment changed meanwhile; try again": "Bình luận vừa thay đổi; hãy thử lại",
    "you may set only your own notifications": "Bạn chỉ có thể đặt thông báo của chính mình",
})


# -- password resets (`accounts.Accounts.issue_reset`, `api.accounts`) -------------------------------------------

TITLES["password_reset_invalid"] = ("Liên kết đặt lại mật khẩu không còn hiệu lực",
                                    "The password reset link is not valid")
TITLES["account_disabled"] = ("Tài khoản đã bị vô hiệu hóa", "The account is disabled")
EXPLANATIONS["password_reset_invalid"] = Explanation(
    ("Liên kết đặt lại mật khẩu không tồn tại, đã được dùng, đã hết hạn (1 giờ nếu bạn tự yêu cầu, 24 giờ nếu quản "
     "trị viên tạo), đã bị thay bằng một liên kết mới hơn, hoặc tài khoản đã bị vô hiệu hóa; mỗi liên kết chỉ dùng "
     "được một lần.",
     "The password reset link does not exist, was used, has expired (1 hour when you asked for it, 24 hours when "
     "an admin made it), was replaced by a newer link, or the account is disabled; each link works once."),
    ("Yêu cầu liên kết mới từ trang đăng nhập (“Quên mật khẩu?”) hoặc nhờ quản trị viên.",
     "Ask for a new link on the sign-in page (“Forgot your password?”) or ask an admin."))
EXPLANATIONS["account_disabled"] = Explanation(
    ("Tài khoản này đã bị quản trị viên vô hiệu hóa: không đăng nhập được và không thể đặt lại mật khẩu.",
     "An admin disabled this account: it cannot sign in, and its password cannot be reset."),
    ("Nếu tài khoản cần dùng lại, hãy mời người đó bằng một tên mới.",
     "If the person needs an account again, invite them under a new name."))
DETAILS.update({
    "this password reset link does not exist, was used or expired":
        "Liên kết đặt lại mật khẩu này không tồn tại, đã được dùng hoặc đã hết hạn",
    "the account {name} is disabled": "Tài khoản {name} đã bị vô hiệu hóa",
    "too many password reset requests; try again later": "Quá nhiều yêu cầu đặt lại mật khẩu; vui lòng thử lại sau",
})
CONSOLE_TEXT.update({
    "signin.forgot": ("Quên mật khẩu?", "Forgot your password?"),
    "forgot.title": ("Quên mật khẩu", "Forgot your password"),
    "forgot.explain": ("Nhập tên đăng nhập. Nếu tài khoản có địa chỉ email nhận thông báo, chúng tôi sẽ gửi tới "
                       "đó một liên kết đặt lại mật khẩu, có hiệu lực trong 1 giờ. Nếu không, hãy nhờ quản trị viên.",
                       "Enter your name. If the account has an email address for notifications, we send a link "
                       "there to reset the password, valid for 1 hour. Otherwise, ask an admin."),
    "forgot.submit": ("Gửi liên kết", "Send the link"),
    "forgot.sent": ("Nếu tên này có tài khoản với địa chỉ email, một liên kết đã được gửi tới đó.",
                    "If this name has an account with an email address, a link is on its way there."),
    "forgot.back": ("Quay lại đăng nhập", "Back to sign-in"),
    "admin.reset": ("Liên kết đặt lại mật khẩu", "Password reset link"),
    "admin.reset_link": ("Liên kết đặt lại mật khẩu cho {name} (24 giờ, một lần):",
                         "Password reset link for {name} (24 hours, once):"),
})
DETAILS["the account changed meanwhile; try again"] = "Tài khoản vừa thay đổi; hãy thử lại"
