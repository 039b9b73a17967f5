"""Routes for readers (through the widget) and anyone on the web: captchas, submissions, approved comments,
counts, and an author's receipt-based status."""

from __future__ import annotations

from typing import Final, Literal

from aiohttp import web
from multidict import CIMultiDict

from service.api.clientinfo import client_ip_hash
from service.api.common import (
    JSON,
    int_query,
    json_response,
    not_modified,
    path_article_id,
    read_json,
    receipt_comment_id,
)
from service.api.docs import Param, operation
from service.appkeys import CAPTCHAS, METRICS, PUBLICATION, SUBMISSIONS
from service.errors import (
    CaptchaInvalid,
    MalformedJSON,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    UnsupportedMediaType,
    ValidationFailed,
)
from service.models import (
    ARTICLE_ID_PATTERN,
    ARTICLE_ID_RE,
    COMMENT_ID_PATTERN,
    CaptchaIssued,
    CommentList,
    CommentStatus,
    CommentSubmission,
    Counts,
    SubmissionAccepted,
)
from service.publication import Publication
from service.submissions import Client

NO_STORE: Final = {"Cache-Control": "no-store"}
ARTICLE_PARAM: Final = Param("article_id", "path", {"type": "string", "pattern": ARTICLE_ID_PATTERN}, True,
                             description="The article's id, as the newspaper names it (the widget's "
                                         "data-article-id).")
COUNTS_MAX: Final = 100


@operation(summary="Issue a captcha (limited per client address: COMMENTS_RATE_LIMIT_CAPTCHA)", tag="captcha",
           responses={201: CaptchaIssued}, errors=(429, 503))
async def issue_captcha(request: web.Request) -> web.Response:
    issued = await request.app[CAPTCHAS].issue_to(client_ip_hash(request))
    request.app[METRICS].captchas.labels("issued").inc()
    return json_response(CaptchaIssued(
        id=issued.id, image_url=f"/v1/captchas/{issued.id}.png", audio_url=f"/v1/captchas/{issued.id}.wav",
        expires_in=issued.expires_in), status=201, headers=NO_STORE)


CAPTCHA_PARAM: Final = Param("captcha_id", "path", {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}, True,
                             description="The `id` from `POST /v1/captchas`.")


@operation(summary="The captcha as a picture", tag="captcha", responses={200: "bytes"}, media={200: "image/png"},
           params=(CAPTCHA_PARAM,), errors=(404, 503))
async def captcha_image(request: web.Request) -> web.Response:
    png = await request.app[CAPTCHAS].image(request.match_info["captcha_id"])
    return web.Response(body=png, content_type="image/png", headers=NO_STORE)


@operation(summary="The captcha spoken (Vietnamese by default, ?lang=en for English)", tag="captcha",
           responses={200: "bytes"}, media={200: "audio/wav"},
           params=(CAPTCHA_PARAM, Param("lang", "query", {"type": "string", "enum": ["vi", "en"]},
                                        description="The language the characters are spoken in; vi when "
                                                    "absent.")),
           errors=(404, 422, 503))
async def captcha_audio(request: web.Request) -> web.Response:
    lang = request.query.get("lang", "vi")
    if lang not in ("vi", "en"):
        raise ValidationFailed("lang must be vi or en")
    wav = await request.app[CAPTCHAS].audio(request.match_info["captcha_id"], "en" if lang == "en" else "vi")
    return web.Response(body=wav, content_type="audio/wav", headers=NO_STORE)


@operation(summary="Submit a comment for moderation", tag="comments", request=CommentSubmission,
           responses={202: SubmissionAccepted},
           params=(ARTICLE_PARAM, Param("Idempotency-Key", "header", {"type": "string", "maxLength": 200},
                                         description="A key the client makes up per comment (1-200 printable "
                                                     "ASCII characters): resending with the same key, after a "
                                                     "timeout or a 503, stores the comment once and answers as "
                                                     "the first time.")),
           errors=(400, 404, 409, 413, 415, 422, 429, 503))
async def submit_comment(request: web.Request) -> web.Response:
    article_id = path_article_id(request)
    metrics = request.app[METRICS]
    try:
        form = await read_json(request, CommentSubmission)
    except (ValidationFailed, MalformedJSON, PayloadTooLarge, UnsupportedMediaType, RequestTimeout):
        metrics.submissions.labels("validation").inc()
        raise
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 200 and key.isascii() and key.isprintable()):
        raise ValidationFailed("Idempotency-Key must be 1-200 printable ASCII characters")
    try:
        outcome = await request.app[SUBMISSIONS].submit(
            article_id, form, Client(ip_hash=client_ip_hash(request)), key)
    except CaptchaInvalid:
        metrics.submissions.labels("captcha").inc()
        metrics.captchas.labels("failed").inc()
        raise
    except RateLimited:
        metrics.submissions.labels("rate_limit").inc()
        raise
    metrics.submissions.labels(outcome.dropped or "accepted").inc()
    if outcome.dropped != "honeypot":
        metrics.captchas.labels("solved").inc()
    return json_response(outcome.accepted, status=202, headers=NO_STORE)


@operation(summary="Approved comments of an article", tag="comments", responses={200: CommentList, 304: None},
           params=(ARTICLE_PARAM,
                   Param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                         description="The most comments on a page."),
                   Param("cursor", "query", {"type": "string", "pattern": "^[0-9]{1,18}$"},
                         description="The `next_cursor` of the previous page; the first page when absent."),
                   Param("order", "query", {"type": "string", "enum": ["oldest", "newest"], "default": "oldest"},
                         description="oldest (in order of approval) or newest first.")),
           errors=(404, 422, 503))
async def list_comments(request: web.Request) -> web.StreamResponse:
    raw_query = request.rel_url.raw_query_string
    params = _LIST_PARAMS.get(raw_query)
    if params is None:
        path_article_id(request)  # a malformed article is a 404 before a bad query is a 422
        params = _list_params(request)
        if len(_LIST_PARAMS) >= LIST_PARAMS_CACHED:
            _LIST_PARAMS.clear()
        _LIST_PARAMS[raw_query] = params
    publication = request.app[PUBLICATION]
    # From memory when it can (a plain call: no coroutine, no Redis); else read, once for all who wait for it.
    # The path's article id is checked only then: the cache holds only ids that were checked before they were
    # read (`Publication.cached_page`), so a malformed one always misses (docs/benchmarks.md).
    article_id = request.match_info["article_id"]
    page = publication.cached_page(article_id, *params)
    if page is None:
        article_id = path_article_id(request)
        page, _ = await publication.page_after(article_id, *params)
    etag = page.etag
    headers = _PAGE_HEADERS.get(etag)
    if headers is None:
        headers = _page_headers(etag)
    asked = request.headers.get("If-None-Match")
    # The header as the widget sends it back is the ETag itself: one comparison; anything else is parsed.
    if asked is not None and (asked == etag or not_modified(request, etag)):
        return web.Response(status=304, headers=headers[0])
    return web.Response(body=page.body, headers=headers[1])


ListParams = tuple[Literal["oldest", "newest"], int, int]
#: The list's query parameters, read and checked once per query string (readers of an article send the same
#: few): `request.query` builds a multidict per request, more than the rest of the handler on a 304
#: (docs/benchmarks.md). Only valid queries are kept; the cache is emptied when full.
_LIST_PARAMS: Final[dict[str, ListParams]] = {}
LIST_PARAMS_CACHED: Final = 1024
#: The headers of a page (304, 200) by its ETag, built once: the response copies them.
_PAGE_HEADERS: Final[dict[str, tuple[CIMultiDict[str], CIMultiDict[str]]]] = {}
PAGE_CACHE_CONTROL: Final = "public, max-age=5, stale-while-revalidate=30"


def _list_params(request: web.Request) -> ListParams:
    order = request.query.get("order", "oldest")
    if order not in ("oldest", "newest"):
        raise ValidationFailed("order must be oldest or newest")
    limit = int_query(request, "limit", 50, 1, 100)
    after = Publication.parse_cursor(request.query.get("cursor"))
    return "newest" if order == "newest" else "oldest", limit, after


def _page_headers(etag: str) -> tuple[CIMultiDict[str], CIMultiDict[str]]:
    # nosniff is what `middleware.ServiceRequest` would add to each; set here, it finds it there.
    not_modified_headers = CIMultiDict({"ETag": etag, "Cache-Control": PAGE_CACHE_CONTROL,
                                        "X-Content-Type-Options": "nosniff"})
    page_headers = CIMultiDict(not_modified_headers)
    page_headers["Content-Type"] = JSON
    if len(_PAGE_HEADERS) >= LIST_PARAMS_CACHED:
        _PAGE_HEADERS.clear()
    _PAGE_HEADERS[etag] = found = (not_modified_headers, page_headers)
    return found


@operation(summary="Approved comment counts for up to 100 articles", tag="comments", responses={200: Counts},
           params=(Param("article_id", "query", {"type": "string", "pattern": ARTICLE_ID_PATTERN}, True,
                         description="An article to count; repeat the parameter for up to 100 articles.",
                         many=True),), errors=(422, 503))
async def counts(request: web.Request) -> web.Response:
    given = request.query.getall("article_id", [])
    article_ids = list(dict.fromkeys(given))
    if not given or len(given) > COUNTS_MAX:
        raise ValidationFailed("give 1 to {max} article_id parameters", params={"max": COUNTS_MAX})
    if not all(ARTICLE_ID_RE.fullmatch(a) for a in article_ids):
        raise ValidationFailed("an article_id has the wrong format")
    result = await request.app[PUBLICATION].counts(article_ids)
    return json_response(Counts(counts=result), headers={"Cache-Control": "public, max-age=5"})


@operation(summary="What became of my comment (Authorization: Receipt <receipt>)", tag="comments",
           responses={200: CommentStatus},
           params=(Param("comment_id", "path", {"type": "string", "pattern": COMMENT_ID_PATTERN}, True,
                         description="The `id` the submission answered; the receipt must be for it."),),
           errors=(401, 404, 503))
async def comment_status(request: web.Request) -> web.Response:
    status = await request.app[PUBLICATION].status(receipt_comment_id(request))
    return json_response(status, headers={"Cache-Control": "private, no-store"})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/v1/captchas", issue_captcha)
    app.router.add_get(r"/v1/captchas/{captcha_id:[A-Za-z0-9_-]+}.png", captcha_image)
    app.router.add_get(r"/v1/captchas/{captcha_id:[A-Za-z0-9_-]+}.wav", captcha_audio)
    app.router.add_post("/v1/articles/{article_id}/comments", submit_comment)
    app.router.add_get("/v1/articles/{article_id}/comments", list_comments)
    app.router.add_get("/v1/counts", counts)
    app.router.add_get("/v1/comments/{comment_id}/status", comment_status)
