"""Serve the moderation console: one page at `/moderation/`, its script and stylesheet, and its settings.

The console is plain HTML, CSS and JavaScript (`service/static/console/`), with no library. It talks to the
public API only (sessions, moderation, accounts, tokens, webhooks), as any other client could. The files are
read, versioned and gzip-compressed once, when the routes are set up, as the widget's are (`api.widget`):

* ``/moderation/``                     the page (``no-cache``; it names the current script and stylesheet);
                                         ``/moderation`` redirects to it (308; its own operation id)
* ``/moderation/console.<hash>.js``    the script, its messages (`service.i18n`) inside, immutable
* ``/moderation/console.<hash>.css``   the stylesheet, immutable
* ``/moderation/settings``             what the console needs to know of the configuration (moderators only)

Every page under `/moderation/` gets a strict Content-Security-Policy (`middleware.CONSOLE_CSP`): scripts and
styles from this origin alone, no inline script or style, no eval.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

from service import i18n
from service.api.auth import require_role
from service.api.common import json_response
from service.api.docs import Param, operation
from service.api.middleware import CONSOLE_CSP
from service.api.widget import IMMUTABLE, STATIC_DIR, Asset, asset_response
from service.appkeys import SETTINGS
from service.models import ConsoleSettings
from service.moderation import UNDO_WINDOW_SECONDS
from service.risk import fold_blocklist
from service.tokens import Role

CONSOLE_DIR: Final = STATIC_DIR / "console"
#: Where console.js receives its messages (service/i18n.py, as JSON), as widget.js does.
MESSAGES_PLACEHOLDER: Final = "{/*__CONSOLE_MESSAGES__*/}"
JS_TYPE: Final = "text/javascript; charset=utf-8"
CSS_TYPE: Final = "text/css; charset=utf-8"
#: Seconds between the console's looks at the queue (tab counts, the oldest pending comment, new arrivals).
POLL_SECONDS: Final = 5
PAGE_HEADERS: Final = {
    "Cache-Control": "no-cache",
    # Not no-referrer: Chromium then sends `Origin: null` with a form's POST, which the same-origin check refuses.
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": CONSOLE_CSP,
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class ConsoleFiles:
    page: str
    js: Asset
    css: Asset

    @classmethod
    def load(cls, directory: Path = CONSOLE_DIR) -> ConsoleFiles:
        script = (directory / "console.js").read_text("utf-8")
        if MESSAGES_PLACEHOLDER not in script:
            raise RuntimeError("console.js lost its messages placeholder")
        messages = json.dumps(i18n.console_messages(), ensure_ascii=False, separators=(",", ":"))
        js = Asset.build(script.replace(MESSAGES_PLACEHOLDER, messages).encode("utf-8"), JS_TYPE)
        css = Asset.build((directory / "console.css").read_bytes(), CSS_TYPE)
        values = {"SCRIPT": f"/moderation/console.{js.version}.js", "STYLES": f"/moderation/console.{css.version}.css"}
        template = (directory / "index.html").read_text("utf-8")
        page = re.sub(r"\{\{([A-Z]+)\}\}", lambda m: html.escape(values[m.group(1)], quote=True), template)
        return cls(page, js, css)


FILES_KEY: Final = web.AppKey("console_files", ConsoleFiles)


@operation(summary="The moderation console (sign in, queue, decisions, search, stats, admin)", tag="console",
           responses={200: "text"}, media={200: "text/html"})
async def page(request: web.Request) -> web.Response:
    return web.Response(text=request.app[FILES_KEY].page, content_type="text/html", charset="utf-8",
                        headers=PAGE_HEADERS)


@operation(summary="The console's address without its slash: a permanent redirect to /moderation/", tag="console",
           responses={308: None}, operation_id="get_moderation_redirect")
async def to_page(request: web.Request) -> web.Response:
    """`/moderation` as typed: the page is `/moderation/` (its relative links need the slash)."""
    location = "/moderation/" + (f"?{request.query_string}" if request.query_string else "")
    raise web.HTTPPermanentRedirect(location)


def _version(request: web.Request, asset: Asset) -> Asset:
    if request.match_info["version"] != asset.version:
        raise web.HTTPNotFound()
    return asset


_VERSION: Final = Param("version", "path", {"type": "string", "pattern": "^[0-9a-f]{12}$"}, True,
                        description="The file's content hash, as the console page names it; another value gets 404.")


@operation(summary="The console's script (immutable)", tag="console", responses={200: "text", 304: None},
           media={200: "text/javascript"}, params=(_VERSION,), errors=(404,))
async def script(request: web.Request) -> web.Response:
    return asset_response(request, _version(request, request.app[FILES_KEY].js), IMMUTABLE)


@operation(summary="The console's stylesheet (immutable)", tag="console", responses={200: "text", 304: None},
           media={200: "text/css"}, params=(_VERSION,), errors=(404,))
async def styles(request: web.Request) -> web.Response:
    return asset_response(request, _version(request, request.app[FILES_KEY].css), IMMUTABLE)


@operation(summary="What the console needs of the configuration", tag="console", role="moderator",
           responses={200: ConsoleSettings}, errors=(400, 401, 403, 429, 503))
async def console_settings(request: web.Request) -> web.Response:
    await require_role(request, Role.MODERATOR)
    settings = request.app[SETTINGS]
    body = ConsoleSettings(article_url_template=settings.article_url_template,
                           reject_reasons=settings.reject_reasons,
                           blocklist=sorted(fold_blocklist(settings.blocklist)), undo_seconds=UNDO_WINDOW_SECONDS,
                           lease_seconds=settings.lease_seconds_default, poll_seconds=POLL_SECONDS)
    return json_response(body, headers={"Cache-Control": "no-store"})


def setup_routes(app: web.Application) -> None:
    app[FILES_KEY] = ConsoleFiles.load()
    app.router.add_get("/moderation/", page, name="console")
    app.router.add_get("/moderation", to_page)
    app.router.add_get(r"/moderation/console.{version:[0-9a-f]{12}}.js", script, name="console-js")
    app.router.add_get(r"/moderation/console.{version:[0-9a-f]{12}}.css", styles, name="console-css")
    app.router.add_get("/moderation/settings", console_settings)
