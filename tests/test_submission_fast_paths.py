"""The submission's fast paths give what the obvious code gives (docs/benchmarks.md, "Figures behind the code's
reasons"): base32 digits, the request fingerprint, the captcha id's one spelling, the record's timestamp, the link
hints, the keyed hashes and the store's keys."""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import string
import weakref
from datetime import UTC, datetime
from typing import Literal

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from service import keys, risk, search, server, text
from service.captcha import _TOKEN_ID
from service.clients import email_digests, email_hash, keyed_hash
from service.models import CommentSubmission, iso
from service.submissions import _CROCKFORD, _article_place, _base32, request_fingerprint

SECRET = b"s" * 48


def obvious_base32(data: bytes, length: int) -> str:
    number = int.from_bytes(data, "big")
    out = []
    for _ in range(length):
        number, rest = divmod(number, 32)
        out.append(_CROCKFORD[rest])
    return "".join(reversed(out))


@given(st.binary(min_size=0, max_size=40), st.integers(min_value=1, max_value=40))
def test_base32_is_the_divmod_loop(data: bytes, length: int) -> None:
    assert _base32(data, length) == obvious_base32(data, length)


@given(st.text(max_size=60), st.text(max_size=60), st.booleans(), st.sampled_from([None, "vi", "en"]),
       st.sampled_from([None, "0a" + "b" * 24]))
def test_the_fingerprint_is_that_of_model_dump(name: str, body: str, notify: bool, lang: Literal["vi", "en"] | None,
                                                parent: str | None) -> None:
    form = CommentSubmission.model_construct(name=name, email="a@b.vn", title="t", body=body, captcha_id="c",
                                             captcha_answer="A", parent_id=parent, notify=notify, lang=lang,
                                             website="")
    dumped = form.model_dump(exclude={"captcha_id", "captcha_answer"})
    assert list(dumped) == ["name", "email", "title", "body", "parent_id", "notify", "lang", "website"]
    assert request_fingerprint("art", form) == hashlib.sha256(orjson.dumps(["art", dumped])).hexdigest()


def canonical(captcha_id: str) -> bool:
    """The old check: 46 characters that decode and encode back to themselves."""
    if len(captcha_id) != 46:
        return False
    try:
        raw = base64.urlsafe_b64decode(captcha_id + "==")
    except ValueError:
        return False
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == captcha_id


@settings(max_examples=500)
@given(st.binary(min_size=34, max_size=34))
def test_every_token_spelling_is_matched(raw: bytes) -> None:
    captcha_id = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    assert _TOKEN_ID.fullmatch(captcha_id)


@settings(max_examples=500)
@given(st.text(alphabet=string.ascii_letters + string.digits + "-_+/=. ", min_size=44, max_size=48))
def test_the_token_pattern_is_the_round_trip(captcha_id: str) -> None:
    assert bool(_TOKEN_ID.fullmatch(captcha_id)) == canonical(captcha_id)


@given(st.integers(min_value=0, max_value=4_102_444_800_000))  # to 2100
def test_iso_is_the_datetime_form(ms: int) -> None:
    expected = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert iso(ms) == expected


@given(st.text(max_size=80))
def test_link_hints_are_looked_for_as_before(text: str) -> None:
    folded = text.lower().replace("ı", "i").replace("\u0307", "")
    assert bool(risk._links(text)) == bool(any(h in folded for h in risk._LINK_HINTS) and risk._count_links(text))


@given(st.text(max_size=40))
def test_keyed_hashes_are_the_hmac(value: str) -> None:
    assert keyed_hash(SECRET, "x", value, 20) == hmac.new(SECRET, f"x:{value}".encode(),
                                                          hashlib.sha256).hexdigest()[:20]
    assert email_digests(SECRET, value) == (email_hash(SECRET, value), keyed_hash(SECRET, "avatar",
                                                                                  value.casefold(), 16))


@given(st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True))
def test_the_store_keys_are_submit_keys(article_id: str) -> None:
    prefix, rest = _article_place(article_id)
    comment_id = prefix + "x" * 24
    assert int(prefix, 16) == keys.partition_of_article(article_id)
    assert [keys.comment(comment_id), *rest] == keys.submit_keys(comment_id, article_id, indexed=True)


def obvious_index_words(*parts: str) -> list[str]:
    seen: dict[str, None] = {}
    for word in text.folded_words("\n".join(parts)):
        if len(word) >= search.WORD_MIN and word not in search.STOP_WORDS:
            seen.setdefault(word[:search.WORD_MAX], None)
            if len(seen) == search.WORDS_PER_COMMENT:
                break
    return list(seen)


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["và", "nước", "sông", "Hồng", "a", "xyz" * 20])
                | st.text(alphabet="abcdeêhnoư", min_size=1, max_size=5), max_size=700).map(" ".join),
       st.integers(min_value=0, max_value=keys.PARTITIONS - 1))
def test_index_words_and_record_terms_are_as_before(body: str, partition: int) -> None:
    assert search.index_words("Lan", "Góp ý", body) == obvious_index_words("Lan", "Góp ý", body)
    raw = orjson.dumps({"name": "Lan", "title": "t", "body": body, "email_hash": "e", "ip_hash": "i"})
    assert search.record_terms(partition, raw) == keys.comment_terms(
        partition, "e", "i", obvious_index_words("Lan", "t", body))


class _Node:
    ref: object = None


def test_a_worker_settles_its_garbage_collector_once_started() -> None:
    """`server.settle_garbage` (a worker, once its app started): what exists is frozen out of the collector's
    generations, the young generation is collected less often; cycles made later are still collected."""
    threshold = gc.get_threshold()
    try:
        server.settle_garbage()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == server.GC_THRESHOLD

        node = _Node()
        node.ref = node
        gone = weakref.ref(node)
        del node
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
