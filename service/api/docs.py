"""Metadata that handlers carry for the OpenAPI document (`service.openapi` turns it into the document)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, cast

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Literal["path", "query", "header"]
    schema: dict[str, Any]
    required: bool = False
    description: str = ""
    many: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    tag: str
    #: Status -> model of the JSON body (None: no body; bytes: a binary body of `media`).
    responses: dict[int, type[BaseModel] | str | None]
    request: type[BaseModel] | None = None
    role: str | None = None
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    media: dict[int, str] = field(default_factory=dict)
    #: More than the summary says (the document's `description`, after the role's line).
    description: str = ""
    #: The operation's id when the one made from its method and path is taken (`/moderation` and `/moderation/`).
    operation_id: str = ""


class Documented(Protocol):
    """A handler that `operation` described; `functools.wraps` carries the description to a wrapper."""

    __openapi__: Operation


def operation(*, summary: str, tag: str, responses: dict[int, type[BaseModel] | str | None],
              request: type[BaseModel] | None = None, role: str | None = None, params: tuple[Param, ...] = (),
              errors: tuple[int, ...] = (), media: dict[int, str] | None = None,
              description: str = "", operation_id: str = "") -> Callable[[F], F]:
    """The handler's `Operation` (its fields, by name), for the OpenAPI document."""
    op = Operation(summary=summary, tag=tag, responses=responses, request=request, role=role, params=params,
                   errors=errors, media=media or {}, description=description, operation_id=operation_id)

    def attach(handler: F) -> F:
        cast(Documented, handler).__openapi__ = op
        return handler

    return attach
