"""The widget's static files, without a browser: size budget, HTTP caching headers, the demo page's escaping,
and a static scan that the script never turns data into markup or code."""

from __future__ import annotations

import gzip
import json
import re
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from support import make_app

from service import i18n
from service.api.common import not_modified
from service.api.widget import (
    CSS_VERSION_PLACEHOLDER,
    FILES_KEY,
    MESSAGES_PLACEHOLDER,
    STATIC_DIR,
    accepts_gzip,
    render_demo_page,
    setup_routes,
)
from service.settings import Settings

GZIP_BUDGET = 12 * 1024

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def client(aiohttp_client: ClientFactory) -> Client:
    app = web.Application()
    setup_routes(app)
    return await aiohttp_client(app)


def css_version(client: Client) -> str:
    app = client.app
    assert app is not None
    return app[FILES_KEY].css.version


# --- size budget ---


async def test_served_script_fits_the_gzip_budget(client: Client) -> None:
    resp = await client.get("/widget.js", headers={"Accept-Encoding": "identity"})
    assert resp.status == 200
    served = await resp.read()
    size = len(gzip.compress(served, compresslevel=9))
    assert size <= GZIP_BUDGET, f"widget.js is {size} bytes gzipped, budget {GZIP_BUDGET}"
    # and what we actually put on the wire when gzip is accepted is that small too
    resp = await client.get("/widget.js", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert resp.headers["Content-Encoding"] == "gzip"
    wire = await resp.read()
    assert len(wire) <= GZIP_BUDGET
    assert gzip.decompress(wire) == served


# --- headers ---


async def test_script_headers_etag_and_304(client: Client) -> None:
    resp = await client.get("/widget.js", headers={"Accept-Encoding": "identity"})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "Accept-Encoding" in resp.headers["Vary"]
    etag = resp.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{12}"', etag), "a strong ETag"
    assert "Content-Encoding" not in resp.headers

    again = await client.get("/widget.js", headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
    assert again.status == 304
    assert again.headers["ETag"] == etag
    assert await again.read() == b""

    weak = await client.get(
        "/widget.js", headers={"If-None-Match": f'"nope", W/{etag}', "Accept-Encoding": ""}
    )
    assert weak.status == 304

    stale = await client.get("/widget.js", headers={"If-None-Match": '"0123456789ab"', "Accept-Encoding": ""})
    assert stale.status == 200

    gz = await client.get("/widget.js", headers={"Accept-Encoding": "gzip, br"}, auto_decompress=False)
    assert gz.headers["Content-Encoding"] == "gzip"
    assert gz.headers["ETag"] != etag, "a strong ETag differs per content-coding"
    gz304 = await client.get(
        "/widget.js", headers={"Accept-Encoding": "gzip", "If-None-Match": gz.headers["ETag"]}
    )
    assert gz304.status == 304

    refused = await client.get("/widget.js", headers={"Accept-Encoding": "gzip;q=0"}, auto_decompress=False)
    assert "Content-Encoding" not in refused.headers

    head = await client.head("/widget.js")
    assert head.status == 200


async def test_script_points_at_the_versioned_stylesheet(client: Client) -> None:
    text = await (await client.get("/widget.js")).text()
    version = css_version(client)
    assert CSS_VERSION_PLACEHOLDER not in text
    assert f"'{version}'" in text
    assert "/widget.css?v=" in text


async def test_stylesheet_is_immutable_only_by_current_version(client: Client) -> None:
    version = css_version(client)
    resp = await client.get(f"/widget.css?v={version}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/css; charset=utf-8"
    assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert (await resp.read()) == (STATIC_DIR / "widget.css").read_bytes()

    for url in ("/widget.css", "/widget.css?v=000000000000"):
        other = await client.get(url)
        assert other.status == 200
        assert other.headers["Cache-Control"] == "public, max-age=300", url


async def test_pinned_script_url_is_immutable(client: Client) -> None:
    plain = await client.get("/widget.js", headers={"Accept-Encoding": "identity"})
    version = plain.headers["ETag"].strip('"')
    pinned = await client.get(f"/widget.{version}.js", headers={"Accept-Encoding": "identity"})
    assert pinned.status == 200
    assert pinned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert pinned.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert await pinned.read() == await plain.read()
    assert (await client.get("/widget.0123456789ab.js")).status == 404


def test_accept_encoding_and_etag_parsing() -> None:
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("br;q=1.0, gzip;q=0.8")
    assert accepts_gzip("*")
    assert not accepts_gzip("")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("*, gzip;q=0")

    def etag_matches(if_none_match: str, etag: str) -> bool:
        request = make_mocked_request("GET", "/widget.js", headers={"If-None-Match": if_none_match})
        return not_modified(request, etag)

    assert etag_matches("*", '"abc"')
    assert etag_matches('"x", "abc"', '"abc"')
    assert etag_matches('W/"abc"', '"abc"')
    assert not etag_matches('"abcd"', '"abc"')
    assert not etag_matches("", '"abc"')


# --- demo page ---


async def test_demo_page_embeds_the_widget(client: Client) -> None:
    resp = await client.get("/demo/articles/thoi-su:2024.06_a1")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    page = await resp.text()
    assert '<div data-comments-article="thoi-su:2024.06_a1" data-lang="vi"></div>' in page
    assert '<script src="/widget.js" async></script>' in page
    assert "{{" not in page
    en = await (await client.get("/demo/articles/a1?lang=en")).text()
    assert 'data-lang="en"' in en
    odd = await (await client.get("/demo/articles/a1?lang=%22%3E%3Cscript%3E")).text()
    assert 'data-lang="vi"' in odd
    assert "<script>" not in odd


@pytest.mark.parametrize(
    "path",
    [
        "/demo/articles/%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "/demo/articles/a%22onmouseover=%22alert(1)",
        "/demo/articles/a1%0A",
        "/demo/articles/-starts-with-dash",
        "/demo/articles/" + "a" * 129,
        "/demo/articles/%C3%A1",
    ],
)
async def test_demo_page_rejects_invalid_article_ids(client: Client, path: str) -> None:
    resp = await client.get(path)
    assert resp.status == 404
    body = await resp.text()
    assert "<script>alert" not in body
    assert "onmouseover" not in body


async def test_demo_page_accepts_the_longest_valid_id(client: Client) -> None:
    assert (await client.get("/demo/articles/" + "a" * 128)).status == 200


def test_demo_template_escapes_whatever_it_is_given() -> None:
    template = (STATIC_DIR / "demo.html").read_text("utf-8")
    hostile = "\"><script>alert('x')</script><b a='&"
    page = render_demo_page(template, hostile, '/widget.js?a=1&b="2"', "vi")
    assert "<script>alert" not in page
    assert "&quot;&gt;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&lt;b a=&#x27;&amp;" in page
    assert 'src="/widget.js?a=1&amp;b=&quot;2&quot;"' in page


# --- static scan of the script ---

FORBIDDEN = {
    "innerHTML": re.compile(r"\binnerHTML\b"),
    "outerHTML": re.compile(r"\bouterHTML\b"),
    "insertAdjacentHTML": re.compile(r"\binsertAdjacentHTML\b"),
    "document.write": re.compile(r"\bdocument\s*\.\s*write(ln)?\b|\[\s*['\"]write(ln)?['\"]\s*\]"),
    "eval": re.compile(r"(?<![\w$.])eval\s*\(|\[\s*['\"]eval['\"]\s*\]"),
    "new Function": re.compile(r"\bnew\s+Function\b|(?<![\w$.])Function\s*\("),
    "string timer": re.compile(r"\bset(Timeout|Interval)\s*\(\s*['\"`]"),
    "createContextualFragment": re.compile(r"\bcreateContextualFragment\b"),
    "DOMParser": re.compile(r"\bDOMParser\b|\bparseFromString\b"),
    "srcdoc": re.compile(r"\bsrcdoc\b"),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
}


def dangerous_sinks(source: str) -> list[str]:
    return sorted(name for name, pattern in FORBIDDEN.items() if pattern.search(source))


@pytest.mark.parametrize(
    "snippet",
    [
        "el.innerHTML = data.body;",
        "el.outerHTML=x",
        "el.insertAdjacentHTML('beforeend', x)",
        "document.write(x)",
        "document['write'](x)",
        "eval(x)",
        "window['eval'](x)",
        "new Function('return ' + x)()",
        "Function('a', x)",
        "setTimeout('alert(1)', 0)",
        "range.createContextualFragment(x)",
        "new DOMParser().parseFromString(x, 'text/html')",
        "frame.srcdoc = x",
        "a.href = 'javascript:' + x",
    ],
)
def test_scanner_catches_dangerous_sinks(snippet: str) -> None:
    assert dangerous_sinks(snippet), snippet


def test_scanner_ignores_safe_code() -> None:
    safe = (
        "el.textContent = x; el.append(x); setTimeout(fn, 10); retrieval(x); var evaluate = 1; h.eval2 = 3;"
    )
    assert dangerous_sinks(safe) == []


def test_widget_script_never_turns_data_into_markup_or_code() -> None:
    source = Path(STATIC_DIR / "widget.js").read_text("utf-8")
    assert dangerous_sinks(source) == []
    assert "textContent" in source, "the scan would be vacuous if the file were not the widget"
    assert "document.cookie" not in source, "the widget sets no cookies"
    assert "credentials: 'omit'" in source


# --- one source for the widget's words; the demo page's icon ---


async def test_widget_speaks_with_the_service_messages(client: Client) -> None:
    """The widget's messages are service/i18n.py's, put in when served: the widget and the service word the
    same error the same way, and no wording is left in widget.js itself."""
    served = await (await client.get("/widget.js")).text()
    assert MESSAGES_PLACEHOLDER not in served
    match = re.search(r"^  var L = (\{.*\});$", served, re.MULTILINE)
    assert match, "the messages are served as one JSON object"
    messages = json.loads(match.group(1))
    assert messages == i18n.widget_messages()
    for lang in ("vi", "en"):
        assert messages[lang]["field"] == {code: pair[lang == "en"] for code, pair in i18n.FIELD_MESSAGES.items()}
    assert messages["vi"]["field"]["required"].format(noun=messages["vi"]["noun"]["name"]) == i18n.field_message(
        "name", "required", {}, "vi") == "Vui lòng nhập họ tên"
    source = (STATIC_DIR / "widget.js").read_text("utf-8")
    assert "Vui lòng" not in source and "Please" not in source, "wording belongs in service/i18n.py"


async def test_favicon_is_served_and_linked(client: Client) -> None:
    resp = await client.get("/favicon.ico", headers={"Accept-Encoding": "identity"})
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "image/x-icon"
    assert (await resp.read())[:4] == b"\x00\x00\x01\x00", "an ICO file"
    page = await (await client.get("/demo/articles/a1")).text()
    assert '<link rel="icon" href="/favicon.ico"' in page


# --- the README: what a newcomer needs to put the widget on a site, and that its commands and routes exist ---

README = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")


def test_readme_says_how_to_put_the_widget_on_a_site() -> None:
    for needed in ("## The widget on a page", "## On your site", "COMMENTS_ALLOWED_ORIGINS=", "Không tải được",
                   "COMMENTS_TRUSTED_PROXIES=", "X-Forwarded-For $proxy_add_x_forwarded_for", "listen 443 ssl",
                   "--role feed", "next_cursor", "--role moderator", "/v1/moderation/queue"):
        assert needed in README, needed
    # the embed snippet is the one the demo page uses
    template = (STATIC_DIR / "demo.html").read_text("utf-8")
    assert '<div data-comments-article="{{ARTICLE_ID}}" data-lang="{{LANG}}"></div>' in template
    assert re.search(r'<div data-comments-article="[\w.:-]+" data-lang="vi"></div>\n<script src="https://[\w.]+'
                     r'/widget\.js" async></script>', README)


def test_readme_commands_parse(capsys: pytest.CaptureFixture[str]) -> None:
    from service import cli

    commands = re.findall(r"^\.venv/bin/comments-service (.+?)(?:\s+#.*)?$", README, re.MULTILINE)
    assert len(commands) >= 3
    for command in commands:
        # argparse checks each argument as it reads it, and --help then stops before anything runs
        with pytest.raises(SystemExit) as stopped:
            cli.main([*shlex.split(command), "--help"])
        assert stopped.value.code == 0, (command, capsys.readouterr().err)
    for target in re.findall(r"`make (\w+)`", README):
        assert re.search(rf"^{target}:", (STATIC_DIR.parent.parent / "Makefile").read_text(), re.MULTILINE), target


async def test_readme_routes_exist(settings: Settings) -> None:

    app = make_app(settings)
    app.router.freeze()
    routes = re.findall(r"\b(GET|POST|DELETE) (/[\w/{}.-]+)", README)
    routes += [("GET" if "-X POST" not in line else "POST", path) for line, path in
               re.findall(r"^(curl .*?https://[\w.]+(/[\w/$.{}-]+).*)$", README, re.MULTILINE)]
    assert len(routes) >= 20
    for method, path in routes:
        concrete = re.sub(r"\{\w+\}|\$\w+", "a1", path.rstrip("."))
        match = await app.router.resolve(make_mocked_request(method, concrete, app=app))
        assert match.http_exception is None, f"README names {method} {path}, which the service does not serve"
