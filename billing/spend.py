"""The gateway's spend hook: reserve a request's maximum cost against every cap that applies to
it, before forwarding; settle the actual cost afterwards.

    reservation = await reserve(organization_id=..., workspace_id=..., api_key_id=...,
                                model=..., max_tokens=..., body_bytes=..., shared_upstream=...)
    # a cap reached: raises CapReached (the gateway answers 400 invalid_request_error)
    ...
    publisher().publish(event, counters=settlement(reservation, actual_micros))

What can apply to a request, each a Redis counter `{total, epoch}` (core counters' layout):
- the API key's monthly cap, its workspace's and its organization's (`SpendLimit`), counted per
  calendar month of the organization's time zone: `spend:k:<key id>:<YYYY-MM>`,
  `spend:w:<workspace id>:<YYYY-MM>`, `spend:o:<org id>:<YYYY-MM>`;
- the operator's cap on the shared default upstream (GATEWAY_DEFAULT_UPSTREAM_MONTHLY_CAP, or
  the organization's `SharedUpstreamAllowance`), for requests that go out with the operator's
  key: it bounds the same organization counter (the tighter of the two caps is applied);
- prepaid credits (`CreditAccount`, when enabled): `spend:c:<org id>:<window>` counts usage since
  prepaid mode was switched on, against a cap of opening balance + credits granted.

`RESERVE_SCRIPT` checks every counter and adds the reservation to all of them in one atomic
step, one round trip: a request is admitted only if each total is below its cap, so however
many requests race, none of the counters overshoots its cap by more than one reservation. A
reservation is an upper bound of the actual cost, so spent ≤ cap + the largest reservation for
every scope at once. Settling adds (actual − reserved) to each counter; it travels with the
request's usage event (usage.stream), so until that flush (≤ 50 ms) the counters still hold
the reservation, which errs on the side of the caps.

A counter Redis does not have (the first request of a month, a Redis that lost its data) is
rebuilt before the admission, in a new epoch, from the usage rollups (billing.selectors).
Settlements apply only to the epoch they reserved in (see core counters' adjustment). What a
rebuild cannot see is what was in flight (events not yet ingested): around a Redis loss the
caps are approximate by that much. If Redis cannot be reached at reservation time, the request
is admitted unreserved (epoch "*") and its actual cost is added to whatever counters exist when
the settlement is applied: availability over the caps for the seconds Redis is away.

Limits are held in memory per (organization, workspace, key) (`LIMIT_TTL`): a request of an
organization without any cap or credits costs no Redis call. Every change to a limit, credits
or an allowance is announced on `billing:limits` (core.broadcast) and forgotten by every
process as the message arrives: raising or disabling a cap re-opens its scope everywhere
within a second. A new period is a new counter key: it re-opens by itself.

The maximum cost of a request (`max_cost_micros`):
    max_tokens × output price  +  ceil(body bytes / 3) × the dearest input price
Output cannot exceed max_tokens. For input, English text averages ~4 bytes per token and the JSON
around it adds bytes that are no tokens, so one token per 3 body bytes is a generous bound, each
priced as a 1-hour cache write (2 × input, the dearest way to send a token); images cost far fewer
tokens than their base64 bytes. Text that tokenizes densely (some scripts, long digit runs)
could exceed it: settling then counts the true cost and logs the overrun.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import redis.asyncio as aioredis
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q

from core import hotpath
from core.broadcast import Broadcast
from core.counters import ANY_EPOCH
from core.counters import adjust as adjust_counter
from core.hotcache import HotCache
from usage import pricing

from . import money, periods, selectors
from .models import CreditAccount, LimitScope, SharedUpstreamAllowance, SpendLimit

logger = logging.getLogger(__name__)

LIMIT_TTL = 5.0
BYTES_PER_TOKEN_BOUND = 3
COUNTER_TTL = 40 * 24 * 3600  # a month and a bit: old months expire by themselves

# KEYS: the counters; ARGV[1] amount, ARGV[2] ttl, ARGV[2 + i] the cap of KEYS[i].
#   → {1, epoch 1, …, epoch n} admitted (the amount added to every counter)
#   → {0, i, total} refused: counter i is at or above its cap (nothing added)
#   → {-1, i, j, …} counters i, j, … are missing (nothing added): rebuild them and ask again
RESERVE_SCRIPT = """
local missing = {}
local epochs = {}
for i = 1, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'total', 'epoch')
  if not v[1] then
    missing[#missing + 1] = i
  elseif tonumber(v[1]) >= tonumber(ARGV[i + 2]) then
    return {0, i, v[1]}
  else
    epochs[i] = v[2]
  end
end
if #missing > 0 then
  table.insert(missing, 1, -1)
  return missing
end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'total', ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
table.insert(epochs, 1, 1)
return epochs
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
    def __init__(self, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Reservation:
    counters: tuple[tuple[str, str], ...]  # (counter key, epoch it was reserved in; "*": any)
    amount: int


# -- the limits of a request, cached in the process -------------------------------------------


@dataclass(frozen=True, slots=True)
class Bound:
    """One cap that applies to a request, with what a refusal says about it."""

    kind: str  # api_key | workspace | organization | shared_upstream | credits
    counter: str  # the counter key without its period
    cap: int
    name: str = ""  # the key's or workspace's name
    monthly: bool = True


@dataclass(frozen=True, slots=True)
class Limits:
    organization_id: int
    timezone: str
    bounds: tuple[Bound, ...]  # key, workspace, organization, credits (those that exist)
    shared_cap: int | None  # the operator's cap on the default upstream, if any

    def applying(self, shared_upstream: bool) -> tuple[Bound, ...]:
        if not shared_upstream or self.shared_cap is None:
            return self.bounds
        # The shared upstream's cap bounds the organization counter: the tighter cap wins.
        org = next((b for b in self.bounds if b.kind == "organization"), None)
        if org is not None and org.cap <= self.shared_cap:
            return self.bounds
        shared = Bound("shared_upstream", _key("o", self.organization_id), self.shared_cap)
        scoped = tuple(b for b in self.bounds if b.kind in ("api_key", "workspace"))
        credits = tuple(b for b in self.bounds if b.kind == "credits")
        return (*scoped, shared, *credits)


def _key(kind: str, ident: int | str) -> str:
    return f"{settings.GATEWAY_REDIS_NAMESPACE}spend:{kind}:{ident}"


def shared_upstream_cap(organization_id: int) -> int | None:
    """The operator's monthly cap for this organization on the default upstream."""
    allowance = SharedUpstreamAllowance.objects.filter(organization_id=organization_id).first()
    if allowance is not None:
        return allowance.monthly_cap_micros
    configured = getattr(settings, "GATEWAY_DEFAULT_UPSTREAM_MONTHLY_CAP", None)
    if configured in (None, ""):
        return None
    return money.parse_dollars(str(configured))


def load_limits(organization_id: int, workspace_id: int | None, api_key_id: int | None) -> Limits:
    from orgs.models import Organization

    tz = (
        Organization.objects.filter(pk=organization_id).values_list("timezone", flat=True).first()
        or "UTC"
    )
    scope = Q(scope=LimitScope.ORGANIZATION)
    if workspace_id:
        scope |= Q(scope=LimitScope.WORKSPACE, workspace_id=workspace_id)
    if api_key_id:
        scope |= Q(scope=LimitScope.API_KEY, api_key_id=api_key_id)
    found: dict[str, Bound] = {}
    for kind, cap, ws_name, key_name in SpendLimit.objects.filter(
        scope, organization_id=organization_id, enabled=True
    ).values_list("scope", "monthly_cap_micros", "workspace__name", "api_key__name"):
        if kind == LimitScope.API_KEY:
            found["api_key"] = Bound("api_key", _key("k", api_key_id), cap, key_name)
        elif kind == LimitScope.WORKSPACE:
            found["workspace"] = Bound("workspace", _key("w", workspace_id), cap, ws_name)
        else:
            found["organization"] = Bound("organization", _key("o", organization_id), cap)
    bounds = [found[k] for k in ("api_key", "workspace", "organization") if k in found]
    account = (
        CreditAccount.objects.filter(organization_id=organization_id, enabled=True)
        .exclude(window_started_at=None)
        .first()
    )
    if account is not None:
        window = int(account.window_started_at.timestamp())
        bounds.append(
            Bound(
                "credits",
                _key("c", f"{organization_id}:{window}"),
                account.window_cap_micros,
                monthly=False,
            )
        )
    return Limits(organization_id, tz, tuple(bounds), shared_upstream_cap(organization_id))


_limits = HotCache(load_limits, ttl=LIMIT_TTL)


def _forget_org(message: str) -> None:
    try:
        organization_id = int(message)
    except ValueError:
        _limits.forget()
        return
    _limits.forget(lambda key: key[0] == organization_id)


limits_changed = Broadcast("billing:limits", on_message=_forget_org, on_reset=_limits.forget)


async def limits_for(organization_id: int, workspace_id: int | None, api_key_id: int | None):
    limits_changed.ensure_listening()
    return await _limits.get((organization_id, workspace_id, api_key_id))


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


def counter_key(organization_id: int, now: datetime | None = None, tz: str = "UTC") -> str:
    """The organization's monthly counter (kept for callers that know only the organization)."""
    start, _ = periods.period_of(tz, now)
    return f"{_key('o', organization_id)}:{periods.month_key(start)}"


def counter_of(bound: Bound, tz: str, now: datetime) -> str:
    if not bound.monthly:
        return bound.counter
    start, _ = periods.period_of(tz, now)
    return f"{bound.counter}:{periods.month_key(start)}"


def period_reset(now: datetime | None = None, tz: str = "UTC") -> datetime:
    """When the period of `now` ends (the next calendar month of the zone begins)."""
    return periods.period_end_at(tz, now)


def period_start(now: datetime, tz: str = "UTC") -> datetime:
    return periods.start_instant(tz, periods.period_of(tz, now)[0])


def max_cost_micros(model: str, max_tokens: int, body_bytes: int) -> int:
    price = pricing.price_for(model)
    if price is None:
        return 0
    input_bound = math.ceil(body_bytes / BYTES_PER_TOKEN_BOUND)
    # Any input token costs at most the dearest way of reading it (a 1-hour cache write).
    dearest_input = max(price.input, price.cache_write, price.cache_write_1h)
    return pricing.to_micros(price.output * max_tokens + dearest_input * input_bound)


# -- rebuilding a counter Redis does not have -------------------------------------------------


def _load_counter_total(kind: str, organization_id: int, ident: int, since: str) -> int:
    """What a counter should hold, from stored usage: a month's spend of a scope, or (credits)
    the usage since the window began."""
    if kind == "credits":
        return selectors.consumed_since(organization_id, datetime.fromisoformat(since))
    start = datetime.fromisoformat(since).date()
    return selectors.period_spend(
        organization_id,
        start,
        workspace_id=ident if kind == "workspace" else None,
        api_key_id=ident if kind == "api_key" else None,
    )


# ttl 0: never served from memory, but concurrent rebuilds of one counter share one query.
_counter_totals = HotCache(_load_counter_total, ttl=0.0, max_age=0.0)


async def rebuild(bound: Bound, organization_id: int, tz: str, now: datetime) -> int:
    """Create a missing counter at its stored total, in a new epoch (one another process has
    rebuilt or reserved against meanwhile is left alone). Returns its total."""
    key = counter_of(bound, tz, now)
    if bound.kind == "credits":
        window = int(key.rsplit(":", 1)[1])
        since = datetime.fromtimestamp(window, tz=UTC).isoformat()
    else:
        since = periods.period_of(tz, now)[0].isoformat()
    ident = int(bound.counter.rsplit(":", 1)[1]) if bound.kind in ("workspace", "api_key") else 0
    kind = "organization" if bound.kind == "shared_upstream" else bound.kind
    spent = await _counter_totals.get((kind, organization_id, ident, since))
    client = _client()
    epoch = secrets.token_hex(6)
    if await client.eval(CREATE_SCRIPT, 1, key, spent, epoch, COUNTER_TTL):
        logger.info("Spend counter %s rebuilt from usage: %d micro-dollars", key, spent)
        return spent
    return int(await client.hget(key, "total") or 0)


async def rebuild_counter(organization_id: int, now: datetime | None = None) -> int:
    """Rebuild the organization's monthly counter (its scope only)."""
    limits = await limits_for(organization_id, None, None)
    bound = Bound("organization", _key("o", organization_id), 0)
    return await rebuild(bound, organization_id, limits.timezone, now or datetime.now(UTC))


# -- reserving -----------------------------------------------------------------------------------


def refusal(bound: Bound, tz: str, now: datetime) -> CapReached:
    reset = periods.period_end_at(tz, now)
    when = f"{reset:%Y-%m-%d} at {reset:%H:%M} {periods.moment_text(reset).rsplit(' ', 1)[1]}"
    cap = money.dollars(bound.cap)
    if bound.kind == "credits":
        return CapReached(
            "Your credit balance is too low to access the Claude API. An Admin or Billing "
            "member can add credits under Billing → Credits.",
            bound.kind,
        )
    if bound.kind == "shared_upstream":
        return CapReached(
            f"Your organization has reached its monthly limit of {cap} on the console's shared "
            f"Anthropic account. It resets on {when}. An Admin can set the organization's own "
            f"Anthropic API key under Settings → Upstream, or ask "
            f"{settings.CONSOLE_SUPPORT_CONTACT} to raise the limit.",
            bound.kind,
        )
    who = {
        "api_key": f"This API key ({bound.name}) has",
        "workspace": f"The workspace {bound.name} has",
    }.get(bound.kind, "Your organization has")
    return CapReached(
        f"{who} reached its monthly spend limit of {cap}. Requests will be accepted again when "
        f"the limit resets on {when}, or when an Admin or Billing member raises the limit.",
        bound.kind,
    )


async def reserve(
    *,
    organization_id: int,
    model: str,
    max_tokens: int,
    body_bytes: int,
    workspace_id: int | None = None,
    api_key_id: int | None = None,
    shared_upstream: bool = False,
) -> Reservation | None:
    """Reserve the request's maximum cost on every counter that applies; None when none does."""
    limits = await limits_for(organization_id, workspace_id, api_key_id)
    bounds = limits.applying(shared_upstream)
    if not bounds:
        return None
    await pricing.aensure_loaded()
    amount = max_cost_micros(model, max_tokens, body_bytes)
    now = datetime.now(UTC)
    keys = [counter_of(b, limits.timezone, now) for b in bounds]
    args = [amount, COUNTER_TTL, *(b.cap for b in bounds)]
    # Admitted without a reservation (Redis away, or counters gone again at once): the actual
    # cost is still added to whatever counters exist when the settlement is applied.
    unreserved = Reservation(tuple((k, "*") for k in keys), 0)
    try:
        result = await _reserve_script()(keys=keys, args=args)
        if result[0] == -1:  # a new month, or a Redis that lost its data: count from usage
            for index in result[1:]:
                await rebuild(bounds[int(index) - 1], organization_id, limits.timezone, now)
            result = await _reserve_script()(keys=keys, args=args)
    except (redis.RedisError, OSError, DatabaseError) as exc:
        _log_unavailable(exc)
        return unreserved
    if result[0] == -1:
        logger.error("Spend counters %s vanished while rebuilt: admitted unreserved", keys)
        return unreserved
    if result[0] == 0:
        raise refusal(bounds[int(result[1]) - 1], limits.timezone, now)
    epochs = [e.decode() if isinstance(e, bytes) else str(e) for e in result[1:]]
    return Reservation(tuple(zip(keys, epochs, strict=True)), amount)


def settlement(reservation: Reservation | None, actual_micros: int) -> list[tuple[str, int, str]]:
    """The counter adjustments that replace the reservation by the actual cost: (key, delta,
    epoch) per counter, delta = actual − reserved (≤ 0 with a sound bound). The gateway hands
    them to the usage publisher, which applies them with the request's usage event."""
    if reservation is None:
        return []
    delta = actual_micros - reservation.amount
    if delta > 0 and reservation.amount:  # not with a sound bound; if it does, count the truth
        logger.warning("Actual cost exceeded the reservation for %s", reservation.counters)
    return [(key, delta, epoch) for key, epoch in reservation.counters]


# -- usage repriced -------------------------------------------------------------------------------


def on_usage_repriced(sender=None, organization_id=0, days=(), start=None, end=None, **kwargs):
    """Receiver of `usage.signals.usage_repriced` (`manage.py reprice`, after its commit): the
    counters follow the rollups, as a rebuild would count them. Each monthly counter Redis holds
    (the organization's, and those of the workspaces and keys the repriced usage is in) gets
    the difference of its scope and month, whatever its epoch: it holds the old costs, from a
    rebuild or from settlements. A counter Redis does not hold is rebuilt from the repriced
    rollups when a request needs it. The prepaid-credit window's counter, when the period
    reaches into the window, is dropped, to be rebuilt the same way (its first, partial hour
    counts raw events, which days cannot tell apart).

    Not exact in one case: a counter rebuilt between the repricing's commit and this receiver
    (a new month's first request, a Redis that lost its data) counts the difference twice."""
    differences: dict[str, int] = defaultdict(int)
    for change in days:
        month = periods.month_key(change.day.replace(day=1))
        differences[f"{_key('o', organization_id)}:{month}"] += change.cost_micros
        if change.workspace_id:
            differences[f"{_key('w', change.workspace_id)}:{month}"] += change.cost_micros
        if change.api_key_id:
            differences[f"{_key('k', change.api_key_id)}:{month}"] += change.cost_micros
    pipe = hotpath.client().pipeline(transaction=False)
    for key, difference in sorted(differences.items()):
        if difference:
            adjust_counter(pipe, key, difference, ANY_EPOCH)
    account = (
        CreditAccount.objects.filter(organization_id=organization_id, enabled=True)
        .exclude(window_started_at=None)
        .first()
    )
    if account is not None and (end is None or account.window_started_at < end):
        window = int(account.window_started_at.timestamp())
        pipe.delete(_key("c", f"{organization_id}:{window}"))
    pipe.execute()
    logger.info(
        "Spend counters of organization %s corrected after repricing: %s",
        organization_id, dict(differences),
    )  # fmt: skip


_last_unavailable_log = 0.0


def _log_unavailable(exc: Exception) -> None:
    """One line every 10 s while the counters are unreachable, not a traceback per request."""
    global _last_unavailable_log
    now = time.monotonic()
    if now - _last_unavailable_log >= 10:
        _last_unavailable_log = now
        logger.error("Spend counters unavailable, requests admitted unreserved: %r", exc)
