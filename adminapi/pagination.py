"""Anthropic's id paging of lists: `limit` (1–1000, default 20), `after_id` or `before_id`;
answers carry `data`, `has_more`, `first_id`, `last_id`. Rows come in the order of the key the
ids seal (ascending), so a page boundary is one indexed comparison, stable under inserts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from django.db.models import QuerySet
from pydantic import BaseModel, Field, model_validator

from . import ids
from .errors import invalid

T = TypeVar("T")


class ListParams(BaseModel):
    limit: int = Field(20, ge=1, le=1000, description="Number of items per page (1–1000).")
    after_id: str | None = Field(None, description="Items after this id (the next page).")
    before_id: str | None = Field(None, description="Items before this id (the previous page).")

    @model_validator(mode="after")
    def one_direction(self):
        if self.after_id is not None and self.before_id is not None:
            raise ValueError("Give after_id or before_id, not both.")
        return self


class Page(BaseModel, Generic[T]):
    data: list[T]
    has_more: bool
    first_id: str | None
    last_id: str | None


def page_of(
    rows: QuerySet,
    params: ListParams,
    *,
    kind: str,
    key: str,
    render: Callable[[object], BaseModel],
    id_of: Callable[[BaseModel], str] = lambda item: item.id,  # type: ignore[attr-defined]
) -> Page:
    """One page of `rows`, ordered by `key` (the field whose value the `kind` id seals)."""
    limit = params.limit
    if params.before_id is not None:
        pk = ids.decode(kind, params.before_id)
        if pk is None:
            raise invalid("before_id", f"{params.before_id!r} is not a {ids.PREFIXES[kind]}… id.")
        found = list(rows.filter(**{f"{key}__lt": pk}).order_by(f"-{key}")[: limit + 1])
        has_more = len(found) > limit
        found = list(reversed(found[:limit]))
    else:
        if params.after_id is not None:
            pk = ids.decode(kind, params.after_id)
            if pk is None:
                raise invalid("after_id", f"{params.after_id!r} is not a {ids.PREFIXES[kind]}… id.")
            rows = rows.filter(**{f"{key}__gt": pk})
        found = list(rows.order_by(key)[: limit + 1])
        has_more = len(found) > limit
        found = found[:limit]
    data = [render(row) for row in found]
    return Page(
        data=data,
        has_more=has_more,
        first_id=id_of(data[0]) if data else None,
        last_id=id_of(data[-1]) if data else None,
    )


def decoded_ids(kind: str, field: str, values: list[str]) -> list[int]:
    """The keys behind a filter's `kind` ids (`user_ids[]=…`), or a 400 naming the bad one."""
    keys = []
    for index, value in enumerate(values):
        pk = ids.decode(kind, value)
        if pk is None:
            raise invalid(f"{field}[{index}]", f"{value!r} is not a {ids.PREFIXES[kind]}… id.")
        keys.append(pk)
    return keys


def token_page(rows: QuerySet, limit: int, *, kind: str, key: str) -> tuple[list, str | None]:
    """`limit` rows of `rows` (already ordered by `key`, after the page token's filter) and the
    `next_page` token: the last row's `key` sealed as a `kind` id, or None on the last page."""
    found = list(rows[: limit + 1])
    more = len(found) > limit
    found = found[:limit]
    return found, ids.encode(kind, getattr(found[-1], key)) if more else None


def page_token(kind: str, token: str, *, of: str = "list") -> int:
    pk = ids.decode(kind, token)
    if pk is None:
        raise invalid("page", f"Not a page of this {of}: use next_page as given.")
    return pk
