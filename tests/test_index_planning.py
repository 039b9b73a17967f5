"""The indexer's planning (`search.index_words`, `search.record_terms`, `indexer.plan_batch`) gives exactly what its
plain form gave: the plain forms are kept here as references (the loops over `text.folded_words`, the keys made
by `keys.comment_terms` and `keys.index_batch_keys`), and compared on the bench's comments, on batches with every
kind of slot, and on random texts and records."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from typing import Any, Final

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.api import NAME, TITLE, long_body
from service import indexer, keys, search, text
from service.scripts import Arg, as_text


def reference_index_words(*parts: str) -> list[str]:
    seen: dict[str, None] = {}
    for word in text.WORDS.findall(text.fold("\n".join(parts))):
        if len(word) >= search.WORD_MIN and word not in search.STOP_WORDS:
            seen.setdefault(word[:search.WORD_MAX], None)
            if len(seen) == search.WORDS_PER_COMMENT:
                break
    return list(seen)


def reference_record_terms(partition: int, raw: Any) -> list[str] | None:
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    fields = [data.get(f) or "" for f in ("name", "title", "body", "email_hash", "ip_hash")]
    if not all(isinstance(f, str) for f in fields):
        return None
    name, title, body, email_digest, ip_hash = fields
    return keys.comment_terms(partition, email_digest, ip_hash, reference_index_words(name, title, body))


def reference_plan_batch(partition: int, done: int, top: int, slots: dict[int, tuple[str, int]],
                         rows: Sequence[Sequence[Any]]) -> tuple[list[str], list[Arg]]:
    record_ids: list[str] = []
    states: list[Arg] = []
    by_term: dict[str, list[int]] = {}
    for (n, (comment_id, _)), (raw, erased, number) in zip(slots.items(), rows, strict=True):
        if raw is None and erased is None and number is None:
            record_ids.append(comment_id)
            states.append("")
            continue
        if number is None or not as_text(number).isdigit() or int(number) != n:
            continue
        record_ids.append(comment_id)
        states.append(f"{len(raw or b'')}:{as_text(erased) if erased is not None else ''}")
        for term in dict.fromkeys(reference_record_terms(partition, raw) or ()):
            by_term.setdefault(term, []).append(n)
    terms = list(by_term)
    script_keys = keys.index_batch_keys(partition, record_ids, terms)
    args: list[Arg] = [done, top, len(record_ids), *states, *(search.encode_ns(sorted(by_term[t])) for t in terms)]
    return script_keys, args


#: Texts of every kind: the bench's, ASCII, decomposed Vietnamese, long words, stop words only, another script.
TEXTS: Final = [
    long_body(7), TITLE, NAME, "", "plain ascii text, with Punctuation_and digits 42", "va la cua - o a",
    unicodedata.normalize("NFD", long_body(8)), "Đường " * 3 + "x" * 40 + " " + "ư" * 33, "Ελληνικά ΟΔΟΣ. Σ",
    "Tiếng Việt 😀 với emoji", "a\u0301b c\u0323\u0302d", " ".join(f"từ{i}" for i in range(400)),
]


def test_index_words_and_record_terms_are_the_plain_forms_on_the_bench_and_odd_texts() -> None:
    for name in TEXTS:
        for body in TEXTS:
            assert search.index_words(name, TITLE, body) == reference_index_words(name, TITLE, body)
            raw = orjson.dumps({"name": name, "title": TITLE, "body": body, "email_hash": "ab" * 12,
                                "ip_hash": "" if body else "cd" * 12})
            for partition in (0, 15):
                assert search.record_terms(partition, raw) == reference_record_terms(partition, raw)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.text(st.one_of(
    st.sampled_from("ĐđƯưƠơÂâĂăÊêÔô àáảãạằắẳẵặầấẩẫậềếểễệồốổỗộờớởỡợừứửữựỳýỷỹỵ BàVA_1-.\n"),
    st.characters(),
)), min_size=3, max_size=3))
def test_index_words_are_the_plain_form_on_any_text(parts: list[str]) -> None:
    assert search.index_words(*parts) == reference_index_words(*parts)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.dictionaries(st.sampled_from(["name", "title", "body", "email_hash", "ip_hash", "x"]),
                    st.one_of(st.text(max_size=40), st.none(), st.integers(-5, 5), st.lists(st.text(), max_size=2))),
    st.lists(st.integers(-5, 5), max_size=2), st.text(max_size=5), st.none(),
))
def test_record_terms_are_the_plain_form_on_any_record(data: Any) -> None:
    raw = orjson.dumps(data)
    for candidate in (raw, raw[:-1], b"", None):
        assert search.record_terms(3, candidate) == reference_record_terms(3, candidate)


def _record(serial: int, sender: int) -> bytes:
    return orjson.dumps({"name": NAME if serial % 5 else "Lan", "email": f"r{sender}@example.vn", "title": TITLE,
                         "body": long_body(serial) if serial % 7 else "Chữ lạ Ελληνικά", "parent_id": None,
                         "ip_hash": f"{serial:024x}" if serial % 4 else "", "email_hash": f"{sender:024x}",
                         "risk": []})


def _batch(partition: int, done: int, size: int, seed: int, *, ascending: bool = True
           ) -> tuple[dict[int, tuple[str, int]], list[list[Any]]]:
    """A batch of every kind of slot: records (senders that repeat), gone records, stale slots (another n, a damaged
    n), erased records, unreadable records; empty slots left out."""
    chance = random.Random(seed)
    slots: dict[int, tuple[str, int]] = {}
    rows: list[list[Any]] = []
    ns = [n for n in range(done + 1, done + size + 1) if chance.random() > 0.1]
    if not ascending:
        chance.shuffle(ns)
    for n in ns:
        comment_id = f"{partition:02x}{n:024d}"
        slots[n] = (comment_id, 1_700_000_000_000 + n)
        kind = chance.random()
        raw: Any = _record(n, chance.randrange(5))
        if kind < 0.05:
            rows.append([None, None, None])
        elif kind < 0.1:
            rows.append([raw, None, str(n + 1).encode()])
        elif kind < 0.13:
            rows.append([raw, None, b"x"])
        elif kind < 0.2:
            rows.append([orjson.dumps({"name": "", "body": ""}), b"delete", str(n).encode()])
        elif kind < 0.23:
            rows.append([b"{not json", None, str(n).encode()])
        elif kind < 0.25:
            rows.append([None, b"purge", str(n).encode()])
        else:
            rows.append([raw, None, str(n).encode() if kind < 0.6 else n])
    return slots, rows


def test_plan_batch_is_the_plain_form() -> None:
    for seed in range(40):
        partition, done = seed % keys.PARTITIONS, seed * 61 + (70_000 if seed % 3 == 0 else 0)
        slots, rows = _batch(partition, done, indexer.BATCH, seed, ascending=seed % 5 != 0)
        expected = reference_plan_batch(partition, done, done + indexer.BATCH, slots, rows)
        assert indexer.plan_batch(partition, done, done + indexer.BATCH, slots, rows) == expected
        assert indexer.plan_batch(partition, done, done + indexer.BATCH, slots, rows) == expected  # cached


def test_plan_batch_of_nothing() -> None:
    assert indexer.plan_batch(2, 5, 9, {}, []) == reference_plan_batch(2, 5, 9, {}, [])
