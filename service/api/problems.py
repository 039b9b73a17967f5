"""The pages that a problem document's `type` points at: GET /problems lists every code, GET /problems/{code}
explains one in Vietnamese and English (what it means, what the client should do).

Pages are plain HTML without script or inline style, so they pass a strict Content-Security-Policy. The text
lives in `i18n` (`TITLES`, `EXPLANATIONS`), the codes in `errors.registry()`.
"""

from __future__ import annotations

import functools
import html
import ipaddress
import re
from typing import Final

from aiohttp import web

from service import i18n
from service.api.docs import Param, operation
from service.appkeys import SETTINGS
from service.errors import NotFound, ServiceError, registry

PATH: Final = "/problems"
CODE_PATTERN: Final = r"^[a-z_]{1,40}$"
_CODE_RE: Final = re.compile(r"[a-z_]{1,40}")
#: A Host header that can go into a URL as it is: a DNS name or an IP literal, with an optional port.
_HOST_RE: Final = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_CACHE: Final = "public, max-age=3600"
_HTML: Final = "text/html"


def type_url(request: web.Request, code: str) -> str:
    """The absolute URL of `code`'s page on this service, as RFC 9457 recommends for `type`: the scheme and
    host the client used (`X-Forwarded-Proto` believed only from a trusted proxy, as `X-Forwarded-For` is).
    A Host header that is not a plain host[:port] gets the relative reference `/problems/<code>` instead, which
    RFC 9457 section 3.1.1 allows and a client resolves against the request's URL."""
    host = request.host
    if not _HOST_RE.fullmatch(host):
        return f"{PATH}/{code}"
    return f"{_scheme(request)}://{host}{PATH}/{code}"


def _scheme(request: web.Request) -> str:
    forwarded = request.headers.get("X-Forwarded-Proto")
    if forwarded in ("http", "https") and request.transport is not None:
        peer = request.transport.get_extra_info("peername")
        if peer and _trusted(peer[0], tuple(request.app[SETTINGS].trusted_proxies)):
            return forwarded
    return request.scheme


@functools.lru_cache(maxsize=256)
def _trusted(peer: str, proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in proxies)


def _page(title: str, body: str) -> str:
    return ("<!doctype html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n")


def _section(code: str, error: type[ServiceError], lang: i18n.Lang) -> str:
    explanation = i18n.EXPLANATIONS[code]
    index = 0 if lang == "vi" else 1
    labels = (("Ý nghĩa", "Nên làm gì", "Mã HTTP"), ("What it means", "What to do", "HTTP status"))[index]
    heading = "Tiếng Việt" if lang == "vi" else "English"
    return (f"<section lang=\"{lang}\">\n<h2>{heading}: {html.escape(i18n.title(code, lang))}</h2>\n"
            f"<dl>\n<dt>{labels[2]}</dt><dd>{error.status}</dd>\n"
            f"<dt>{labels[0]}</dt><dd>{html.escape(explanation.meaning[index])}</dd>\n"
            f"<dt>{labels[1]}</dt><dd>{html.escape(explanation.action[index])}</dd>\n</dl>\n</section>\n")


@functools.cache
def problem_page(code: str) -> bytes | None:
    """The page of one code, or None when no problem carries it."""
    error = registry().get(code)
    if error is None or code not in i18n.EXPLANATIONS:
        return None
    body = (f"<h1><code>{code}</code></h1>\n{_section(code, error, 'vi')}{_section(code, error, 'en')}"
            f"<p><a href=\"{PATH}\">Tất cả mã lỗi / All problem codes</a></p>\n")
    return _page(f"{code}: {i18n.title(code, 'vi')} / {i18n.title(code, 'en')}", body).encode()


@functools.cache
def index_page() -> bytes:
    rows = "".join(
        f"<tr><td><a href=\"{PATH}/{code}\"><code>{code}</code></a></td><td>{error.status}</td>"
        f"<td lang=\"vi\">{html.escape(i18n.title(code, 'vi'))}</td>"
        f"<td lang=\"en\">{html.escape(i18n.title(code, 'en'))}</td></tr>\n"
        for code, error in sorted(registry().items()))
    body = ("<h1>Mã lỗi / Problem codes</h1>\n"
            "<p lang=\"vi\">Mỗi lỗi của API là một tài liệu application/problem+json (RFC 9457); trường "
            "<code>type</code> trỏ tới trang giải thích mã lỗi đó.</p>\n"
            "<p lang=\"en\">Every API error is an application/problem+json document (RFC 9457); its "
            "<code>type</code> links to the page that explains its code.</p>\n"
            "<table>\n<thead><tr><th>code</th><th>HTTP</th><th lang=\"vi\">Tiêu đề</th><th lang=\"en\">Title</th>"
            f"</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>\n")
    return _page("Mã lỗi / Problem codes", body).encode()


@operation(summary="Every problem code, with its status and title in Vietnamese and English", tag="problems",
           responses={200: "text"}, media={200: _HTML})
async def list_problems(request: web.Request) -> web.Response:
    return web.Response(body=index_page(), content_type=_HTML, charset="utf-8", headers={"Cache-Control": _CACHE})


@operation(summary="What a problem code means and what to do about it (the `type` of a problem document)",
           tag="problems", responses={200: "text"}, media={200: _HTML},
           params=(Param("code", "path", {"type": "string", "pattern": CODE_PATTERN}, True,
                         description="A problem document's `code` (the last segment of its `type`); "
                                     "GET /problems lists them all."),),
           errors=(404,))
async def show_problem(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    # Only known codes reach the cache, so made-up ones cannot grow it.
    page = problem_page(code) if _CODE_RE.fullmatch(code) and code in registry() else None
    if page is None:
        raise NotFound("no such problem type")
    return web.Response(body=page, content_type=_HTML, charset="utf-8", headers={"Cache-Control": _CACHE})


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, list_problems)
    app.router.add_get(PATH + "/{code}", show_problem)
