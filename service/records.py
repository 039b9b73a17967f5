"""What a comment record (`keys.comment`, its fields in `keys.py`) says beyond its fields: its public view and its
history. Neither is stored as such (issue 19: the text is kept once, in `d`); every reader makes them here.

- The public view (`public_view`): exactly these fields of the record's JSON `d`: id, parent_id, name, title,
  body, created_at, and approved_at (ISO 8601 of the record's `ap` ms), avatar. The article's pages
  (`publication`), the feed (`feed`) and the export (`exporting`, its `pub`) make it from the record, so an
  erasure or an anonymisation shows everywhere at once: nothing erased can reappear from a copy.
- The history (`history_entries`): the list `keys.history` once the comment changed state twice; until then, its one
  change is described by the record's fields (`s`, `v`, `dt`, `db`, `dr`; the state before was pending), and the
  entry is made from them, the same as decide.lua writes into the list at the second change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from service.models import iso
from service.scripts import as_text

#: The action that takes a pending comment to each state (a first change of state; decide.lua's `firsts`).
FIRST_ACTIONS: Final = {"approved": "approve", "rejected": "reject", "spam": "spam", "retracted": "retract"}
#: The record fields `first_entry` reads (HMGET them in this order for `history_of_row`).
HISTORY_FIELDS: Final = ("s", "v", "dt", "db", "dr")


def approved_at(data: Mapping[str, Any], approved_ms: int | None) -> Any:
    """The public view's `approved_at`: the approval's ms as ISO 8601; without one (an erased comment's tombstone
    from before its approval time was known), its `created_at`."""
    return iso(approved_ms) if approved_ms is not None else data.get("created_at")


def public_view(comment_id: str, data: Mapping[str, Any], approved_ms: int | None) -> dict[str, Any]:
    """The comment as the public sees it, from the record's JSON `d` and `ap` (the one place it is made)."""
    return {"id": comment_id, "parent_id": data.get("parent_id"), "name": data.get("name"),
            "title": data.get("title"), "body": data.get("body"), "created_at": data.get("created_at"),
            "approved_at": approved_at(data, approved_ms), "avatar": data.get("avatar")}


def public_json(comment_id: str, private: bytes | str, approved_ms: int | None) -> bytes:
    """`public_view` as JSON, from the record's stored `d`."""
    return orjson.dumps(public_view(comment_id, orjson.loads(private), approved_ms))


def stored_ms(raw: Any) -> int | None:
    """A stored ms field (bytes or text), or None when absent or not a whole number."""
    if raw is None:
        return None
    text = as_text(raw)
    return int(text) if text.isascii() and text.isdigit() else None


def first_entry(fields: Mapping[str, Any]) -> dict[str, Any] | None:
    """The history entry of a record's one change of state, from its fields (`HISTORY_FIELDS`, text or bytes);
    None when the record was never decided (pending, no `dt`)."""
    state, version, decided, by = (fields.get(name) for name in ("s", "v", "dt", "db"))
    number = stored_ms(version)
    if state is None or decided is None or by is None or number is None:
        return None
    to = as_text(state)
    if to not in FIRST_ACTIONS:
        return None
    reason = fields.get("dr")
    return {"at": as_text(decided), "by": as_text(by), "from": "pending", "to": to, "action": FIRST_ACTIONS[to],
            "reason": as_text(reason) if reason is not None else "", "version": number}


def history_entries(fields: Mapping[str, Any], stored: Sequence[Any]) -> list[Any]:
    """The history's entries, oldest first, parsed: the stored list when there is one, else the one entry the
    record's fields describe (none for a comment never decided). Entries that do not parse stay the text they are
    (the export keeps them so)."""
    if stored:
        out = []
        for raw in stored:
            try:
                out.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                out.append(as_text(raw))
        return out
    entry = first_entry(fields)
    return [entry] if entry is not None else []


def history_of_row(row: Sequence[Any], stored: Sequence[Any]) -> list[Any]:
    """`history_entries` from an HMGET of `HISTORY_FIELDS`."""
    return history_entries(dict(zip(HISTORY_FIELDS, row, strict=True)), stored)
