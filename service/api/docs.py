"""Metadata that handlers carry for the OpenAPI document (`service.openapi` turns it into the document)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

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


def operation(**kwargs: Any) -> Callable[[F], F]:
    op = Operation(**kwargs)

    def attach(handler: F) -> F:
        handler.__openapi__ = op  # type: ignore[attr-defined]
        return handler

    return attach
