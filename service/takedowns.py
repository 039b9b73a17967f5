"""Takedowns on record: an admin records a lawful request (the authority, its reference and date, the comments
it names); those comments are retracted at once (`Moderation.retract`, so the feed and webhooks carry the
retraction), their open reports are resolved, and the request goes into the takedown register
(`keys.takedowns()`, a stream under `{privacy}`, kept for good), with when it was recorded and completed and what
became of each comment. The register holds no reader's personal data: ids only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from service import keys
from service.clock import now_ms
from service.errors import NotApproved, NotFound, StorageCorrupt
from service.models import CommentId, iso, whole_string
from service.moderation import Moderation
from service.reports import Reports
from service.scripts import Scripts, as_text
from service.tokens import Principal

TAKEDOWN_IDS_MAX: Final = 1000
DATE_PATTERN: Final = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DATE_RE: Final = whole_string(DATE_PATTERN)
#: A register entry's id, as Redis gives stream ids (ms-seq).
TAKEDOWN_ID_PATTERN: Final = r"^[0-9]{1,15}-[0-9]{1,10}$"
TAKEDOWN_ID_RE: Final = whole_string(TAKEDOWN_ID_PATTERN)


class TakedownRequest(BaseModel):
    """What an admin records: `POST /v1/takedowns`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    authority: StrictStr = Field(min_length=1, max_length=200, description="Who made the request, e.g. the "
                                                                           "ministry or court.")
    reference: StrictStr = Field(min_length=1, max_length=200, description="The request's own reference (its "
                                                                           "number or document id).")
    date: Annotated[StrictStr, Field(pattern=DATE_PATTERN)] = Field(description="The request's date (YYYY-MM-DD).")
    comment_ids: list[CommentId] = Field(min_length=1, max_length=TAKEDOWN_IDS_MAX,
                                         description="The comments it names.")
    note: StrictStr = Field(default="", max_length=1000, description="Anything the newsroom wants on record.")


Outcome = Literal["retracted", "already_retracted", "not_published", "not_found"]


class TakedownOutcome(BaseModel):
    comment_id: str = Field(description="A comment the request names.")
    outcome: Outcome = Field(description="retracted (now), already_retracted, not_published (pending, rejected "
                                         "or spam: never public) or not_found.")


class Takedown(BaseModel):
    id: str = Field(description="The register entry's id.")
    authority: str = Field(description="Who made the request.")
    reference: str = Field(description="Its reference.")
    date: str = Field(description="Its date (YYYY-MM-DD).")
    note: str = Field(description="The newsroom's note; empty when none.")
    comment_ids: list[str] = Field(description="The comments it names.")
    recorded_by: str = Field(description="The admin who recorded it.")
    recorded_at: str = Field(description="When it was recorded (ISO 8601, UTC).")
    completed_at: str = Field(description="When every named comment had been dealt with (ISO 8601, UTC).")
    outcomes: list[TakedownOutcome] = Field(description="What became of each comment, in the order named.")


class TakedownRegister(BaseModel):
    takedowns: list[Takedown] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `before` for older entries; null when none are left.")


class Takedowns:
    def __init__(self, scripts: Scripts, moderation: Moderation, reports: Reports, *,
                 clock: Callable[[], int] | None = None) -> None:
        self.clock = clock or now_ms
        self._moderation = moderation
        self._reports = reports
        self._redis = scripts.redis

    async def record(self, who: Principal, request: TakedownRequest) -> Takedown:
        recorded = self.clock()
        reason = f"takedown: {request.authority}, {request.reference} ({request.date})"
        outcomes = []
        for comment_id in dict.fromkeys(request.comment_ids):
            outcomes.append(TakedownOutcome(comment_id=comment_id, outcome=await self._take_down(who, comment_id,
                                                                                                 reason)))
        entry: dict[str, Any] = {
            "authority": request.authority, "reference": request.reference, "date": request.date,
            "note": request.note, "comment_ids": list(dict.fromkeys(request.comment_ids)), "recorded_by": who.name,
            "recorded_at": recorded, "completed_at": self.clock(),
            "outcomes": [o.model_dump() for o in outcomes]}
        entry_id = await self._redis.execute_command("XADD", keys.takedowns(), "*", "t", orjson.dumps(entry))
        return _view(as_text(entry_id), entry)

    async def _take_down(self, who: Principal, comment_id: str, reason: str) -> Outcome:
        try:
            await self._moderation.retract(who, comment_id, reason)
        except NotFound:
            return "not_found"
        except NotApproved as exc:
            outcome: Outcome = "already_retracted" if exc.params.get("state") == "retracted" else "not_published"
            if outcome == "not_published":
                return outcome
        else:
            outcome = "retracted"
        with contextlib.suppress(StorageCorrupt):  # the retraction stands; the reports stay open for a moderator
            await self._reports.resolve_reports(comment_id)
        return outcome

    async def register(self, limit: int, before: str | None) -> TakedownRegister:
        if before is not None and not before.strip("0-"):
            # Nothing is older than 0-0, and Redis refuses the exclusive bound `(0-0` as an invalid interval.
            return TakedownRegister(takedowns=[], next_cursor=None)
        high = "+" if before is None else f"({before}"
        rows = await self._redis.execute_command("XREVRANGE", keys.takedowns(), high, "-", "COUNT", limit + 1)
        items = [_view(as_text(entry_id), orjson.loads(fields[b"t"])) for entry_id, fields in rows[:limit]]
        return TakedownRegister(takedowns=items, next_cursor=items[-1].id if len(rows) > limit else None)


def _view(entry_id: str, entry: dict[str, Any]) -> Takedown:
    return Takedown(id=entry_id, authority=entry["authority"], reference=entry["reference"], date=entry["date"],
                    note=entry["note"], comment_ids=entry["comment_ids"], recorded_by=entry["recorded_by"],
                    recorded_at=iso(entry["recorded_at"]), completed_at=iso(entry["completed_at"]),
                    outcomes=[TakedownOutcome.model_validate(o) for o in entry["outcomes"]])
