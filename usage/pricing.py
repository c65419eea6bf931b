"""The one function that prices usage: `price_usage(model, usage, at)` → integer micro-dollars.

    cost = Σ tokens × price per million tokens / 1,000,000, in Decimal, rounded up to a whole
    micro-dollar once per request (never float).

Prices come from `ModelPrice` rows, held in the process for `TABLE_TTL` seconds so the gateway's
hot path never queries the database on a hit. Async callers (the gateway) call
`await aensure_loaded()` first: loads run in asgiref's thread (core.hotcache), never on the event
loop, and inside an event loop `price_usage` only reads the table in memory.

A model without a price row (a new model, a typo the upstream will reject) is priced at the most
expensive row on file: reservations stay conservative and nothing is free by accident.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

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


_lock = threading.Lock()
_table: list[Price] = []  # longest model first, then newest first
_loaded_at: float | None = None  # monotonic time of the last load
_resolved: dict[str, list[Price]] = {}


def _load() -> None:
    from .models import ModelPrice

    global _table, _loaded_at, _resolved
    rows = [
        Price(
            p.model,
            p.effective_from.timestamp(),
            p.input_per_mtok,
            p.output_per_mtok,
            p.cache_write_per_mtok,
            p.cache_read_per_mtok,
            p.cache_write_1h_per_mtok,
        )
        for p in ModelPrice.objects.all()
    ]
    rows.sort(key=lambda p: (-len(p.model), -p.effective_from))
    with _lock:
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
    global _loaded_at
    _loaded_at = None
    _table_cache.forget()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _candidates(model: str) -> list[Price]:
    found = _resolved.get(model)
    if found is None:
        matches = [p for p in _table if model.startswith(p.model)]
        if matches:
            best = len(matches[0].model)
            found = [p for p in matches if len(p.model) == best]
        else:  # unknown model: the most expensive price on file
            found = sorted(_table, key=lambda p: (-p.output, -p.effective_from))[:1]
        if len(_resolved) < 10_000:
            _resolved[model] = found
    return found


def price_for(model: str, at: datetime | float | None = None) -> Price | None:
    if not _in_event_loop():  # async code refreshes through aensure_loaded()
        ensure_loaded()
    when = time.time() if at is None else at if isinstance(at, float) else at.timestamp()
    candidates = _candidates(model)
    for price in candidates:  # newest first
        if price.effective_from <= when:
            return price
    return candidates[-1] if candidates else None


def to_micros(amount: Decimal) -> int:
    """Micro-dollars (Decimal) → integer, rounding a fraction up."""
    return int(amount.to_integral_value(rounding=ROUND_CEILING))


def price_usage(model: str, usage: Mapping[str, int], at: datetime | float | None = None) -> int:
    """Cost of `usage` (Anthropic's field names) for `model` at time `at`, in micro-dollars."""
    price = price_for(model, at)
    if price is None:
        return 0
    written = usage.get("cache_creation_input_tokens", 0)
    written_1h = min(usage.get("cache_creation_1h_input_tokens", 0), written)
    micros = (
        price.input * usage.get("input_tokens", 0)
        + price.output * usage.get("output_tokens", 0)
        + price.cache_write * (written - written_1h)
        + price.cache_write_1h * written_1h
        + price.cache_read * usage.get("cache_read_input_tokens", 0)
    )
    return to_micros(micros)
