"""The one function that prices usage: `cost_of(model, usage, at)` → `Cost` in micro-dollars
(`price_usage` is its total).

    cost = Σ tokens × price per million tokens / 1,000,000          (batch: × 50 %)
         + web searches × price per 1,000 / 1,000 + web fetches × price per 1,000 / 1,000
         + code execution seconds × price per hour / 3,600
in Decimal, rounded up to a whole micro-dollar once per request (never float). The server tools'
share (`Cost.server_tools`) is reported on its own line; the batch discount applies to tokens
only, as Anthropic's does.

Prices come from `ModelPrice` rows, held in the process for `TABLE_TTL` seconds so the gateway's
hot path never queries the database on a hit. Async callers (the gateway) call
`await aensure_loaded()` first: loads run in asgiref's thread (core.hotcache), never on the event
loop, and inside an event loop `price_usage` only reads the table in memory.

A model without a price row (a new model, a typo the upstream will reject) is priced at the
fallback, never at $0: the price of `settings.USAGE_FALLBACK_PRICE_MODEL` when it is set (a model
id or family matched as any other), else the most expensive row on file, so reservations stay
conservative and nothing is free by accident. Such a cost says so (`Cost.fallback`), the event
carries `fallback_priced` and the rollups count `fallback_priced_requests` for the dashboard.

Code execution: Anthropic bills container-hours past a daily free allowance per organization; a
per-request function cannot see the allowance, so every second reported is priced.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import NamedTuple

from django.conf import settings

from core.hotcache import HotCache

TABLE_TTL = 60.0
# Micro-dollars per dollar: price per MTok × tokens / 1e6 dollars = price × tokens micro-dollars.


@dataclass(frozen=True, slots=True)
class Price:
    model: str
    effective_from: float  # unix time
    input: Decimal
    output: Decimal
    cache_write: Decimal  # 5-minute TTL
    cache_read: Decimal
    cache_write_1h: Decimal
    web_search_per_1k: Decimal = Decimal(0)
    web_fetch_per_1k: Decimal = Decimal(0)
    code_execution_per_hour: Decimal = Decimal(0)


class Cost(NamedTuple):
    """What a request cost, in integer micro-dollars."""

    micros: int  # all in
    server_tools: int = 0  # of which server tools (web search, web fetch, code execution)
    fallback: bool = False  # the model had no price row: priced at the fallback


_lock = threading.Lock()
_table: list[Price] = []  # longest model first, then newest first
_loaded_at: float | None = None  # monotonic time of the last load
_resolved: dict[str, tuple[list[Price], bool]] = {}
_generation = 0  # bumped by invalidate(): a load begun before it must not install its rows


def _load() -> None:
    from .models import ModelPrice

    global _table, _loaded_at, _resolved
    generation = _generation
    rows = [
        Price(
            p.model,
            p.effective_from.timestamp(),
            p.input_per_mtok,
            p.output_per_mtok,
            p.cache_write_per_mtok,
            p.cache_read_per_mtok,
            p.cache_write_1h_per_mtok,
            p.web_search_per_1k,
            p.web_fetch_per_1k,
            p.code_execution_per_hour,
        )
        for p in ModelPrice.objects.all()
    ]
    rows.sort(key=lambda p: (-len(p.model), -p.effective_from))
    with _lock:
        if generation != _generation:  # invalidated while reading: the rows may be stale
            _table, _resolved, _loaded_at = rows, {}, None
            return
        _table, _resolved, _loaded_at = rows, {}, time.monotonic()


def is_stale() -> bool:
    return _loaded_at is None or time.monotonic() - _loaded_at >= TABLE_TTL


def ensure_loaded() -> None:
    """For sync callers (ingestion, services, tests): reload when stale."""
    if is_stale():
        _load()


_table_cache = HotCache(lambda _key: _load(), ttl=TABLE_TTL)


async def aensure_loaded() -> None:
    """For async callers (the gateway): the first load is awaited (once, however many requests
    ask); later reloads run in the background while the current table keeps serving."""
    if is_stale():
        await _table_cache.get("prices")


def invalidate() -> None:
    global _loaded_at, _generation
    with _lock:
        _generation += 1
        _loaded_at = None
    _table_cache.forget()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _matches(model: str) -> list[Price]:
    matches = [p for p in _table if model.startswith(p.model)]
    if not matches:
        return []
    best = len(matches[0].model)  # the table is sorted longest model first
    return [p for p in matches if len(p.model) == best]


def _candidates(model: str) -> tuple[list[Price], bool]:
    """The price rows of `model` (newest first) and whether they are the fallback's."""
    found = _resolved.get(model)
    if found is None:
        matches = _matches(model)
        if matches:
            found = (matches, False)
        else:
            fallback = getattr(settings, "USAGE_FALLBACK_PRICE_MODEL", "")
            rows = _matches(fallback) if fallback else []
            if not rows:  # the most expensive price on file
                rows = sorted(_table, key=lambda p: (-p.output, -p.effective_from))[:1]
            found = (rows, True)
        if len(_resolved) < 10_000:
            _resolved[model] = found
    return found


def lookup(model: str, at: datetime | float | None = None) -> tuple[Price | None, bool]:
    """The price in effect for `model` at `at` (now by default), and whether it is the
    fallback's (the model has no price row of its own)."""
    if not _in_event_loop():  # async code refreshes through aensure_loaded()
        ensure_loaded()
    when = time.time() if at is None else at if isinstance(at, float) else at.timestamp()
    candidates, fallback = _candidates(model)
    for price in candidates:  # newest first
        if price.effective_from <= when:
            return price, fallback
    return (candidates[-1] if candidates else None), fallback


def price_for(model: str, at: datetime | float | None = None) -> Price | None:
    return lookup(model, at)[0]


def to_micros(amount: Decimal) -> int:
    """Micro-dollars (Decimal) → integer, rounding a fraction up."""
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


BATCH_FACTOR = Decimal("0.5")
_THOUSAND = Decimal(1000)
_HOUR = Decimal(3600)
_MILLION = Decimal(1_000_000)


def _tool_count(usage: Mapping, name: str) -> int:
    """A server tool's count: flat (as events carry it) or under `server_tool_use` (as
    Anthropic's usage object reports it)."""
    value = usage.get(name)
    if value is None:
        nested = usage.get("server_tool_use")
        value = nested.get(name) if isinstance(nested, Mapping) else None
    return value if type(value) is int and value > 0 else 0


def cost_of(
    model: str, usage: Mapping, at: datetime | float | None = None, *, batch: bool = False
) -> Cost:
    """Cost of `usage` (Anthropic's field names; server tools flat or under `server_tool_use`)
    for `model` at time `at`, in micro-dollars. `batch`: the Message Batches API's 50 %."""
    price, fallback = lookup(model, at)
    if price is None:  # no price row at all (an empty table)
        return Cost(0, 0, True)
    written = usage.get("cache_creation_input_tokens") or 0
    written_1h = min(usage.get("cache_creation_1h_input_tokens") or 0, written)
    tokens = (
        price.input * (usage.get("input_tokens") or 0)
        + price.output * (usage.get("output_tokens") or 0)
        + price.cache_write * (written - written_1h)
        + price.cache_write_1h * written_1h
        + price.cache_read * (usage.get("cache_read_input_tokens") or 0)
    )
    if batch:
        tokens *= BATCH_FACTOR
    searches = _tool_count(usage, "web_search_requests")
    fetches = _tool_count(usage, "web_fetch_requests")
    seconds = _tool_count(usage, "code_execution_seconds")
    tools = Decimal(0)
    if searches or fetches or seconds:
        tools = (
            price.web_search_per_1k * searches / _THOUSAND
            + price.web_fetch_per_1k * fetches / _THOUSAND
            + price.code_execution_per_hour * seconds / _HOUR
        ) * _MILLION
    return Cost(to_micros(tokens + tools), to_micros(tools), fallback)


def price_usage(
    model: str, usage: Mapping, at: datetime | float | None = None, *, batch: bool = False
) -> int:
    """Cost of `usage` for `model` at time `at`, in micro-dollars, all in (see `cost_of`)."""
    return cost_of(model, usage, at, batch=batch).micros
