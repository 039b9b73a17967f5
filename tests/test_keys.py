"""The key schema: no id a client may send names a key of another id or of another kind (`service.keys`)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Final

from hypothesis import example, given
from hypothesis import strategies as st

from service import keys
from service.models import ARTICLE_ID_RE, COMMENT_ID_RE

#: What the API accepts as an article id (`models.ARTICLE_ID_PATTERN`, as a whole string).
ARTICLE_ID: Final = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
VALID_ARTICLE_ID: Final = re.compile(ARTICLE_ID)
#: Suffixes that named other keys of an article under the old scheme (`a:<article>:order`), and ones like them.
SUFFIXES: Final = (":order", ":public", ":pending", ":a", ":ao:x", ":ap", "order", ":1", ":")

article_ids = st.from_regex(ARTICLE_ID, fullmatch=True)
comment_ids = st.from_regex(r"[0-9a-f]{2}[0-9a-z]{24}", fullmatch=True)


@st.composite
def related_article_ids(draw: st.DrawFn) -> tuple[str, str]:
    """Two distinct ids, often one built from the other (as an attacker would), so collisions are tried."""
    first = draw(article_ids)
    how = draw(st.sampled_from(["any", "suffix", "prefix", "cut"]))
    if how == "suffix":
        second = first + draw(st.sampled_from(SUFFIXES) | st.from_regex(r":[A-Za-z0-9._:-]{0,8}", fullmatch=True))
    elif how == "prefix":
        second = draw(st.sampled_from(["a:", "ao:", "ap:", "x:"])) + first
    elif how == "cut" and ":" in first[1:]:
        second = first[:first.rindex(":")]
    else:
        second = draw(article_ids)
    second = second[:128]
    if not VALID_ARTICLE_ID.fullmatch(second) or second == first:
        second = first + "x" if len(first) < 128 else "x" + first[1:]
    return first, second


def article_builders() -> dict[str, Callable[[str], str]]:
    """Every key of an article, by kind code."""
    kinds = {**keys.ARTICLE_KINDS, **keys.RETIRED_ARTICLE_KINDS}  # a retired kind's keys are still found
    return {code: getattr(keys, name) for code, name in kinds.items()}


def article_keys(article_id: str) -> dict[str, str]:
    return {code: build(article_id) for code, build in article_builders().items()}


def read_back(key: str) -> set[tuple[str, str]]:
    """Every (kind, article id) pair whose key is `key`: whatever the ids, at most one if the scheme holds."""
    found = set()
    for partition in range(keys.PARTITIONS):
        for code, build in article_builders().items():
            # The part of a key before its id, whichever id of this partition: a built key minus its id.
            short = _SHORT_IDS[partition]
            prefix = build(short)[:-len(short)]
            if key.startswith(prefix):
                candidate = key[len(prefix):]
                if (VALID_ARTICLE_ID.fullmatch(candidate) and keys.partition_of_article(candidate) == partition
                        and build(candidate) == key):
                    found.add((code, candidate))
    return found


#: A short article id in each partition.
_SHORT_IDS: Final = {p: next(i for i in (f"{n}x" for n in range(10_000)) if keys.partition_of_article(i) == p)
                     for p in range(keys.PARTITIONS)}


def fixed_partition_keys(hour: int) -> set[str]:
    """The keys of a partition that take no client text."""
    return {build(p) for p in range(keys.PARTITIONS)
            for build in (keys.pending, keys.legacy_ready, keys.leases, keys.holders, keys.legacy_pending_articles,
                          keys.feed,
                          keys.feed_trimmed, keys.outbox)} | {keys.stats(p, hour) for p in range(keys.PARTITIONS)}


def test_generated_ids_are_ids_the_api_accepts() -> None:
    assert ARTICLE_ID_RE.match("X:order") and ARTICLE_ID_RE.match("urn:newsml:example.com:20240101:a1")


def test_every_article_key_builder_is_a_registered_kind() -> None:
    """A key builder taking an article id joins `ARTICLE_KINDS`, so the properties below cover it."""
    builders = {name for name, function in inspect.getmembers(keys, inspect.isfunction)
                if function.__module__ == keys.__name__ and not name.startswith("_")
                and list(inspect.signature(function).parameters) == ["article_id"]
                and inspect.signature(function).return_annotation == "str"}
    assert builders == set(keys.ARTICLE_KINDS.values()) | set(keys.RETIRED_ARTICLE_KINDS.values())
    assert not set(keys.ARTICLE_KINDS) & set(keys.RETIRED_ARTICLE_KINDS)
    assert all(":" not in code and "{" not in code for code in [*keys.ARTICLE_KINDS, *keys.RETIRED_ARTICLE_KINDS])


@given(related_article_ids())
@example(("X", "X:order"))
@example(("X", "X:public"))
@example(("X:order", "X"))
def test_no_key_of_one_article_is_a_key_of_another(pair: tuple[str, str]) -> None:
    first, second = pair
    mine, theirs = article_keys(first), article_keys(second)
    assert not set(mine.values()) & set(theirs.values())
    # Nor of another kind for the same article.
    assert len(set(mine.values())) == len(mine)


@given(article_ids, st.sampled_from(sorted({**keys.ARTICLE_KINDS, **keys.RETIRED_ARTICLE_KINDS})))
@example("X:order", "a")
@example("X", "ao")
@example("a:b:c", "ap")
def test_an_article_key_reads_back_as_one_kind_and_id(article_id: str, code: str) -> None:
    """Stronger than pairs: every id that could give this key is found by parsing it, and there is only one."""
    key = article_builders()[code](article_id)
    assert read_back(key) == {(code, article_id)}


@given(article_ids, comment_ids, st.integers(min_value=0, max_value=10**7))
@example("pending", "0" * 26, 0)
@example("trimmed", "0" * 26, 0)
def test_article_keys_name_no_key_of_a_comment_or_a_partition(article_id: str, comment_id: str, hour: int) -> None:
    assert COMMENT_ID_RE.match(comment_id)
    others = fixed_partition_keys(hour) | {keys.comment(comment_id), keys.history(comment_id)}
    assert not set(article_keys(article_id).values()) & others


@given(st.sampled_from(["ip", "email", "article", "auth"]), st.sampled_from(["ip", "email", "article", "auth"]),
       article_ids, article_ids, st.integers(1, 10**6), st.integers(1, 10**6))
@example("article", "article", "X:60", "X", 60, 60)
@example("article", "article", "60:X", "X", 1, 60)
def test_rate_limit_keys_of_distinct_subjects_differ(scope: str, other_scope: str, subject: str, other: str,
                                                     window: int, other_window: int) -> None:
    if (scope, subject, window) != (other_scope, other, other_window):
        assert keys.rate_limit(scope, subject, window) != keys.rate_limit(other_scope, other, other_window)


@given(st.sampled_from(["ip", "email"]), st.sampled_from(["ip", "email"]),
       st.from_regex(r"[0-9a-f:]{1,40}", fullmatch=True), st.from_regex(r"[0-9a-f:]{1,40}", fullmatch=True))
def test_reputation_keys_of_distinct_subjects_differ(kind: str, other_kind: str, subject: str, other: str) -> None:
    if (kind, subject) != (other_kind, other):
        assert keys.reputation(kind, subject) != keys.reputation(other_kind, other)


def test_the_old_collision_is_gone() -> None:
    """Under the old scheme, article `X:order` had X's order set as its hash (when on X's partition)."""
    x = next(f"art-{n}" for n in range(1000)
             if keys.partition_of_article(f"art-{n}:order") == keys.partition_of_article(f"art-{n}"))
    assert keys.article(f"{x}:order") != keys.article_order(x)
    assert keys.article(f"{x}:public") != keys.legacy_article_public(x)
    assert keys.article_order(x).endswith(f":ao:{x}")
