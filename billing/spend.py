"""The gateway's spend hook: reserve a request's maximum cost before forwarding it, settle the
actual cost afterwards, against the organization's monthly cap (`SpendLimit`).

    reservation = await reserve(organization_id=..., model=..., max_tokens=..., body_bytes=...)
    # over the cap: raises CapReached (the gateway answers 400 invalid_request_error)
    ...
    publisher().publish(event, counter=settlement(reservation, actual_micros))

The counter is one Redis hash per organization and calendar month (UTC),
`spend:{org id}:{YYYY-MM}` (after settings.GATEWAY_REDIS_NAMESPACE): `total`, spent + reserved
micro-dollars, and `epoch`, an id of this counter's life. `RESERVE_SCRIPT` checks and adds in one
atomic step: a request is admitted while the total is below the cap, so however many requests
race, it overshoots the cap by less than one reservation; as a reservation is an upper bound of
the actual cost, spent ≤ cap + the largest single reservation. Settling adds (actual − reserved),
normally ≤ 0; it travels with the request's usage event (usage.stream), so until that flush
(≤ 50 ms) the counter still holds the reservation, which errs on the side of the cap.

A counter Redis does not have (the first request of a month, or a Redis that lost its data) is
rebuilt before the admission, in a new epoch, at the cost of the month's stored usage events.
Settlements apply only to the epoch they reserved in: a reservation made before the loss is not
taken back from a counter that never held it (its cost reaches the next rebuild through its
stored event). What a rebuild cannot see is what was in flight then (events not yet consumed):
for the moments around a Redis loss the cap is approximate by that much.

If Redis cannot be reached at reservation time, the request is admitted unreserved (epoch "*")
and its actual cost is added to whatever counter exists when the settlement is applied: the
gateway favours availability over the cap for the seconds Redis is away, and counts the spend.

The maximum cost of a request (`max_cost_micros`):
    max_tokens × output price  +  ceil(body bytes / 3) × the dearest input price
Output cannot exceed max_tokens. For input, English text averages ~4 bytes per token and the JSON
around it adds bytes that are no tokens, so one token per 3 body bytes is a generous bound, each
priced as a 1-hour cache write (2 × input, the dearest way to send a token); images cost far fewer
tokens than their base64 bytes. Text that tokenizes densely (some scripts, long digit runs)
could exceed it: settling then counts the true cost and logs the overrun.

Limits are read through an in-process cache (`LIMIT_TTL` seconds): an organization without an
enabled limit costs no Redis round trip at all.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Sum

from core import hotpath
from core.hotcache import HotCache
from usage import pricing

from .models import SpendLimit

logger = logging.getLogger(__name__)

LIMIT_TTL = 5.0
BYTES_PER_TOKEN_BOUND = 3
COUNTER_TTL = 40 * 24 * 3600  # a month and a bit: old months expire by themselves

# The counter is a hash {total: micro-dollars spent + reserved, epoch: id of this counter's life}.
# KEYS[1] counter; ARGV[1] cap, ARGV[2] amount, ARGV[3] ttl
#   → {1, total after, epoch} admitted, {0, total, epoch} refused, {-1, 0, ""} no counter
RESERVE_SCRIPT = """
local v = redis.call('HMGET', KEYS[1], 'total', 'epoch')
if not v[1] then
  return {-1, 0, ''}
end
local current = tonumber(v[1])
if current >= tonumber(ARGV[1]) then
  return {0, current, v[2]}
end
local after = redis.call('HINCRBY', KEYS[1], 'total', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, after, v[2]}
"""

# KEYS[1] counter; ARGV[1] total, ARGV[2] epoch, ARGV[3] ttl → 1 created, 0 it exists already
CREATE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'epoch', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class CapReached(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Reservation:
    counter: str
    amount: int
    epoch: str  # the counter's life it was reserved in; "*" when Redis could not be asked


# -- limits, cached in the process -----------------------------------------------------------


def _load_cap(organization_id: int) -> int | None:
    return (
        SpendLimit.objects.filter(organization_id=organization_id, enabled=True)
        .values_list("monthly_cap_micros", flat=True)
        .first()
    )


_limits = HotCache(_load_cap, ttl=LIMIT_TTL)


async def monthly_cap(organization_id: int) -> int | None:
    return await _limits.get(organization_id)


def forget_limits() -> None:
    _limits.forget()


# -- the async Redis client ------------------------------------------------------------------


def _client() -> aioredis.Redis:
    return hotpath.aclient()


_scripts: dict[int, object] = {}


def _reserve_script():
    """RESERVE_SCRIPT registered on the current client: EVALSHA (falls back to EVAL once)."""
    client = _client()
    script = _scripts.get(id(client))
    if script is None:
        script = _scripts[id(client)] = client.register_script(RESERVE_SCRIPT)
    return script


def counter_key(organization_id: int, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{settings.GATEWAY_REDIS_NAMESPACE}spend:{organization_id}:{now:%Y-%m}"


def period_reset(now: datetime | None = None) -> datetime:
    """The start of the next calendar month (UTC): when a monthly cap resets."""
    now = now or datetime.now(UTC)
    if now.month == 12:
        return datetime(now.year + 1, 1, 1, tzinfo=UTC)
    return datetime(now.year, now.month + 1, 1, tzinfo=UTC)


def max_cost_micros(model: str, max_tokens: int, body_bytes: int) -> int:
    price = pricing.price_for(model)
    if price is None:
        return 0
    input_bound = math.ceil(body_bytes / BYTES_PER_TOKEN_BOUND)
    # Any input token costs at most the dearest way of reading it (a 1-hour cache write).
    dearest_input = max(price.input, price.cache_write, price.cache_write_1h)
    return pricing.to_micros(price.output * max_tokens + dearest_input * input_bound)


def _dollars(micros: int) -> str:
    return f"${micros / 1_000_000:,.2f}"


# -- rebuilding a counter Redis does not have -------------------------------------------------


def period_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def _load_month_spend(organization_id: int, month: str) -> int:
    """What the organization's stored usage events of `month` (YYYY-MM, UTC) cost."""
    from usage.models import UsageEvent

    start = period_start(datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC))
    total = UsageEvent.objects.filter(
        organization_id=organization_id, created_at__gte=start, created_at__lt=period_reset(start)
    ).aggregate(total=Sum("cost_micros"))["total"]
    return int(total or 0)


# ttl 0: never served from memory, but concurrent rebuilds of one counter share one query.
_month_spend = HotCache(_load_month_spend, ttl=0.0, max_age=0.0)


async def rebuild_counter(organization_id: int, now: datetime | None = None) -> int:
    """Create a missing counter at the month's stored spend, in a new epoch (a counter another
    process has rebuilt, or reserved against, meanwhile is left alone). Returns its total.
    Settlements of reservations made in an earlier epoch no longer apply to it: the stored
    events it was built from already hold their actual cost."""
    now = now or datetime.now(UTC)
    key = counter_key(organization_id, now)
    spent = await _month_spend.get((organization_id, f"{now:%Y-%m}"))
    client = _client()
    epoch = secrets.token_hex(6)
    if await client.eval(CREATE_SCRIPT, 1, key, spent, epoch, COUNTER_TTL):
        logger.info("Spend counter %s rebuilt from usage events: %d micro-dollars", key, spent)
        return spent
    return int(await client.hget(key, "total") or 0)


async def reserve(
    *, organization_id: int, model: str, max_tokens: int, body_bytes: int
) -> Reservation | None:
    """Reserve the request's maximum cost; None when the organization has no cap."""
    cap = await monthly_cap(organization_id)
    if cap is None:
        return None
    await pricing.aensure_loaded()
    amount = max_cost_micros(model, max_tokens, body_bytes)
    now = datetime.now(UTC)
    key = counter_key(organization_id, now)
    # Admitted without a reservation (Redis away, or the counter gone again at once): the
    # actual cost is still added to whatever counter exists when the settlement is applied.
    unreserved = Reservation(key, 0, "*")
    try:
        args = [cap, amount, COUNTER_TTL]
        admitted, _after, epoch = await _reserve_script()(keys=[key], args=args)
        if admitted == -1:  # a new month, or a Redis that lost its data: count from the events
            await rebuild_counter(organization_id, now)
            admitted, _after, epoch = await _reserve_script()(keys=[key], args=args)
    except (redis.RedisError, OSError, DatabaseError) as exc:
        _log_unavailable(exc)
        return unreserved
    if admitted == -1:
        logger.error("Spend counter %s vanished while rebuilt: admitted unreserved", key)
        return unreserved
    if not admitted:
        reset = period_reset(now)
        raise CapReached(
            f"Your organization has reached its monthly spend limit of {_dollars(cap)}. "
            f"Requests will be accepted again when the limit resets on "
            f"{reset:%Y-%m-%d at %H:%M} UTC, or when an Admin raises the limit."
        )
    return Reservation(key, amount, epoch.decode() if isinstance(epoch, bytes) else epoch)


def settlement(reservation: Reservation | None, actual_micros: int) -> tuple[str, int, str] | None:
    """The counter adjustment that replaces the reservation by the actual cost: (key, delta,
    epoch), delta = actual − reserved (≤ 0 with a sound bound). The gateway hands it to the
    usage publisher, which applies it with the request's usage event, off the event loop."""
    if reservation is None:
        return None
    delta = actual_micros - reservation.amount
    if delta > 0 and reservation.amount:  # not with a sound bound; if it does, count the truth
        logger.warning("Actual cost exceeded the reservation for %s", reservation.counter)
    return (reservation.counter, delta, reservation.epoch)


async def spent_micros(organization_id: int) -> int:
    """Spent + reserved this month, as the counter holds it."""
    value = await _client().hget(counter_key(organization_id), "total")
    return int(value or 0)


_last_unavailable_log = 0.0


def _log_unavailable(exc: Exception) -> None:
    """One line every 10 s while the counter is unreachable, not a traceback per request."""
    global _last_unavailable_log
    now = time.monotonic()
    if now - _last_unavailable_log >= 10:
        _last_unavailable_log = now
        logger.error("Spend counter unavailable, requests admitted unreserved: %r", exc)
