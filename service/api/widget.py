"""Serve the embeddable comments widget (script, stylesheet) and a demo article page.

The files are read, versioned and gzip-compressed once, when the routes are set up:

* ``/widget.js``         short cache (``max-age=300``), strong ETag, ``If-None-Match`` -> 304
* ``/widget.<hash>.js``  the same bytes under a pinned, immutable URL
* ``/widget.css?v=<h>``  immutable when ``v`` is the stylesheet's current hash (the script refers to it so)
* ``/demo/articles/{article_id}``  a newspaper-like page embedding the widget exactly as a publisher would
* ``/favicon.ico``       the demo page's icon
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from service import i18n
from service.api.common import not_modified
from service.api.docs import Param, operation
from service.appkeys import SETTINGS
from service.models import ARTICLE_ID_PATTERN, ARTICLE_ID_RE
from service.negotiation import quality_values

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
CSS_VERSION_PLACEHOLDER = "__WIDGET_CSS_VERSION__"
#: Where widget.js receives its messages (service/i18n.py, as JSON): one source for the widget and the service.
MESSAGES_PLACEHOLDER = "{/*__WIDGET_MESSAGES__*/}"
MAIL_PLACEHOLDER = "/*__WIDGET_MAIL__*/false"

SHORT_CACHE = "public, max-age=300"
IMMUTABLE = "public, max-age=31536000, immutable"
JS_TYPE = "text/javascript; charset=utf-8"
CSS_TYPE = "text/css; charset=utf-8"


def short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file, precompressed, with a strong ETag per encoding."""

    body: bytes
    gzipped: bytes
    content_type: str
    version: str

    @classmethod
    def build(cls, body: bytes, content_type: str) -> Asset:
        return cls(body, gzip.compress(body, compresslevel=9, mtime=0), content_type, short_hash(body))

    def etag(self, gz: bool) -> str:
        return f'"{self.version}-gz"' if gz else f'"{self.version}"'


@dataclass(frozen=True, slots=True)
class WidgetFiles:
    js: Asset
    css: Asset
    demo_template: str
    favicon: Asset

    @classmethod
    def load(cls, static_dir: Path = STATIC_DIR, *, mail: bool = False) -> WidgetFiles:
        css = Asset.build((static_dir / "widget.css").read_bytes(), CSS_TYPE)
        script = (static_dir / "widget.js").read_text("utf-8")
        if CSS_VERSION_PLACEHOLDER not in script or MESSAGES_PLACEHOLDER not in script:
            raise RuntimeError("widget.js lost its stylesheet version or messages placeholder")
        messages = json.dumps(i18n.widget_messages(), ensure_ascii=False, separators=(",", ":"))
        script = script.replace(CSS_VERSION_PLACEHOLDER, css.version).replace(MESSAGES_PLACEHOLDER, messages)
        if mail:  # the service sends email: the widget shows its checkbox (service.mail)
            script = script.replace(MAIL_PLACEHOLDER, "true")
        js = Asset.build(script.encode("utf-8"), JS_TYPE)
        favicon = Asset.build((static_dir / "favicon.ico").read_bytes(), "image/x-icon")
        return cls(js, css, (static_dir / "demo.html").read_text("utf-8"), favicon)


FILES_KEY = web.AppKey("widget_files", WidgetFiles)


def accepts_gzip(header: str) -> bool:
    """True if an Accept-Encoding header allows gzip (explicitly, or through ``*``) with q > 0."""
    allowed = {name: quality > 0 for name, quality in quality_values(header)}
    return allowed.get("gzip", allowed.get("x-gzip", allowed.get("*", False)))


def asset_response(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    gz = accepts_gzip(request.headers.get("Accept-Encoding", ""))
    headers = {
        "Cache-Control": cache_control,
        "ETag": asset.etag(gz),
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if not_modified(request, asset.etag(gz)):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = asset.content_type
    if gz:
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=asset.gzipped if gz else asset.body, headers=headers)


def render_demo_page(template: str, article_id: str, widget_src: str, lang: str = "vi") -> str:
    """Fill the demo template; every inserted value is HTML-escaped (attribute-safe)."""
    values = {"ARTICLE_ID": article_id, "WIDGET_SRC": widget_src, "LANG": lang}
    return re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: html.escape(values[m.group(1)], quote=True), template)


_ASSET_ERRORS = (404,)


@operation(summary="The embeddable widget script", tag="widget", responses={200: "text", 304: None},
           media={200: "text/javascript"})
async def widget_js(request: web.Request) -> web.Response:
    return asset_response(request, request.app[FILES_KEY].js, SHORT_CACHE)


@operation(summary="The widget script under a pinned, immutable URL", tag="widget",
           responses={200: "text", 304: None}, media={200: "text/javascript"},
           params=(Param("version", "path", {"type": "string", "pattern": "^[0-9a-f]{12}$"}, True,
                         description="The script's content hash; another value gets 404."),),
           errors=_ASSET_ERRORS)
async def widget_js_pinned(request: web.Request) -> web.Response:
    asset = request.app[FILES_KEY].js
    if request.match_info["version"] != asset.version:
        raise web.HTTPNotFound()
    return asset_response(request, asset, IMMUTABLE)


@operation(summary="The widget stylesheet (immutable with ?v=<version>)", tag="widget",
           responses={200: "text", 304: None}, media={200: "text/css"},
           params=(Param("v", "query", {"type": "string"},
                         description="the stylesheet version; any other value gets a short cache"),))
async def widget_css(request: web.Request) -> web.Response:
    asset = request.app[FILES_KEY].css
    pinned = request.query.get("v") == asset.version
    return asset_response(request, asset, IMMUTABLE if pinned else SHORT_CACHE)


@operation(summary="A demo article page embedding the widget as a newspaper would", tag="widget",
           responses={200: "text"}, media={200: "text/html"},
           params=(Param("article_id", "path", {"type": "string", "pattern": ARTICLE_ID_PATTERN}, True,
                         description="Any article id: the demo page shows and takes comments for it."),
                   Param("lang", "query", {"type": "string"},
                         description="en for the English widget; anything else is Vietnamese")),
           errors=_ASSET_ERRORS)
async def demo_article(request: web.Request) -> web.Response:
    article_id = request.match_info["article_id"]
    if not ARTICLE_ID_RE.fullmatch(article_id):
        raise web.HTTPNotFound()
    lang = "en" if request.query.get("lang") == "en" else "vi"
    src = str(request.app.router["widget-js"].url_for())
    page = render_demo_page(request.app[FILES_KEY].demo_template, article_id, src, lang)
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@operation(summary="The demo page's icon (browsers ask for it; without it every page view logs a 404)",
           tag="widget", responses={200: "bytes", 304: None}, media={200: "image/x-icon"})
async def favicon(request: web.Request) -> web.Response:
    return asset_response(request, request.app[FILES_KEY].favicon, SHORT_CACHE)


def setup_routes(app: web.Application) -> None:
    settings = app.get(SETTINGS)  # absent in an app of the widget's routes alone
    files = WidgetFiles.load(mail=settings is not None and settings.mail_enabled)
    app[FILES_KEY] = files
    app.router.add_get("/widget.js", widget_js, name="widget-js")
    app.router.add_get(r"/widget.{version:[0-9a-f]{12}}.js", widget_js_pinned, name="widget-js-pinned")
    app.router.add_get("/widget.css", widget_css, name="widget-css")
    app.router.add_get(r"/demo/articles/{article_id}", demo_article, name="demo-article")
    app.router.add_get("/favicon.ico", favicon, name="favicon")
