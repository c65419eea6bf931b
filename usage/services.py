"""Writes of the usage app outside ingestion: the price table and repricing.

Price rows are global (every organization is priced from the same table), so their audit events
are in the site's chain; a repricing changes one organization's costs and is in its chain.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, transaction

from audit.services import record_event

from . import pricing
from .ingest import _add_to_rollups, _announce, _zones
from .models import ModelPrice, Source, UsageEvent
from .price_lists import PRICE_FIELDS, PriceRow, model_field_defaults
from .signals import IngestedSpan, RepricedDay, usage_repriced

logger = logging.getLogger(__name__)


# -- the price table -------------------------------------------------------------------------


@dataclass
class PriceLoad:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _price_label(model: str, effective_from: datetime) -> str:
    return f"{model} from {effective_from:%Y-%m-%d %H:%M} UTC"


@transaction.atomic
def load_prices(*, rows: list[PriceRow], actor=None, file_name: str = "") -> PriceLoad:
    """Create or update the price of each row (model × effective_from): loading the same list
    twice changes nothing the second time. All rows or none. Audited once, when something
    changed."""
    done = PriceLoad()
    defaults = model_field_defaults()
    for row in rows:
        wanted = {**defaults, **row.prices}
        label = _price_label(row.model, row.effective_from)
        price = (
            ModelPrice.objects.select_for_update()
            .filter(model=row.model, effective_from=row.effective_from)
            .first()
        )
        if price is None:
            ModelPrice.objects.create(model=row.model, effective_from=row.effective_from, **wanted)
            done.created.append(label)
            continue
        # Tool prices the file leaves out keep what the row holds.
        wanted = {**{n: getattr(price, n) for n in PRICE_FIELDS}, **row.prices}
        if all(getattr(price, n) == v for n, v in wanted.items()):
            done.unchanged.append(label)
            continue
        for name, value in wanted.items():
            setattr(price, name, value)
        price.save(update_fields=list(wanted))
        done.updated.append(label)
    if done.created or done.updated:
        record_event(
            action="price.list_loaded",
            actor=actor,
            actor_label=None if actor else "manage.py load_prices",
            after={
                "file": file_name,
                "created": len(done.created),
                "updated": len(done.updated),
                "unchanged": len(done.unchanged),
                "prices": (done.created + done.updated)[:200],
            },
        )
        transaction.on_commit(pricing.invalidate)
    return done


def _price_values(price: ModelPrice) -> dict:
    return {
        "model": price.model,
        "effective_from": price.effective_from,
        **{name: str(getattr(price, name)) for name in PRICE_FIELDS},
    }


@transaction.atomic
def save_model_price(*, price: ModelPrice, actor) -> ModelPrice:
    """Create or change one price row (the Django admin's save)."""
    before = None
    if price.pk is not None:
        old = ModelPrice.objects.select_for_update().filter(pk=price.pk).first()
        before = _price_values(old) if old is not None else None
    price.full_clean()
    price.save()
    record_event(
        action="price.changed",
        actor=actor,
        target=price,
        before=before,
        after=_price_values(price),
    )
    transaction.on_commit(pricing.invalidate)
    return price


@transaction.atomic
def delete_model_price(*, price: ModelPrice, actor) -> None:
    """Delete one price row (the Django admin's delete). Costs already stored keep their value;
    `reprice_usage` applies the table as it now is."""
    before = _price_values(price)
    record_event(action="price.deleted", actor=actor, target=price, before=before)
    price.delete()
    transaction.on_commit(pricing.invalidate)


# -- repricing -----------------------------------------------------------------------------


@dataclass
class Repriced:
    organization_id: int
    start: datetime
    end: datetime
    events: int = 0  # events in the period
    changed: int = 0  # events whose cost changed
    cost_before: int = 0  # micro-dollars, the period's events
    cost_after: int = 0
    # What a receiver of `usage_repriced` could not do (billing: Redis unreachable), in words.
    not_followed: list[str] = field(default_factory=list)


def money(micros: int) -> str:
    """Micro-dollars as dollars to the micro-dollar ($1,234.567890), without a float."""
    return f"${Decimal(micros).scaleb(-6):,.6f}"


def organization_period(zone: str, first: date, last: date) -> tuple[datetime, datetime]:
    """The instants [start, end) of the days `first`..`last` (inclusive) in `zone`."""
    tz = zoneinfo.ZoneInfo(zone)
    start = datetime.combine(first, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return start, end


_EVENT_FIELDS = (
    "request_id", "created_at", "organization_id", "workspace_id", "api_key_id", "model",
    "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens", "cache_read_input_tokens", "web_search_requests",
    "web_fetch_requests", "code_execution_seconds", "cost_micros", "server_tool_cost_micros",
    "fallback_priced",
)  # fmt: skip


def reprice_usage(
    *, first: date, last: date, organization=None, actor=None, chunk: int = 5000
) -> list[Repriced]:
    """Price again, at the prices now on file, the gateway's events of the days `first`..`last`
    (each organization's own days), and carry the differences into the hourly and daily rollups
    that hold them, one transaction per organization. Run after a price is corrected
    (`manage.py reprice`). Idempotent: a second run finds nothing to change.

    The rollups are corrected by the difference of each event, not rebuilt from the events:
    rollups outlive raw events (retention), and a rollup row may hold events outside the period
    (an hour cut by a day of a zone with a half-hour offset). A period past the raw events'
    retention cannot be repriced: its rollups keep their costs. Daily rows are found with the
    organization's current time zone (as ingestion files them). After each organization's
    commit, `usage_repriced` carries the differences by day, workspace and key: billing's spend
    counters at the gateway follow them (billing.spend.on_usage_repriced)."""
    from orgs.models import Organization

    if last < first:
        raise ValueError("The period ends before it starts.")
    pricing.invalidate()  # the table as it is now, not as this process last loaded it
    if organization is not None:
        organizations = [organization]
    else:
        # Any organization with events near the period (zones shift days by up to ±14 h).
        lo = datetime.combine(first - timedelta(days=1), time(), tzinfo=UTC)
        hi = datetime.combine(last + timedelta(days=2), time(), tzinfo=UTC)
        ids = (
            UsageEvent.objects.filter(created_at__gte=lo, created_at__lt=hi)
            .values_list("organization_id", flat=True)
            .distinct()
        )
        organizations = list(Organization.objects.filter(pk__in=set(ids)).order_by("pk"))
    results = []
    for org in organizations:
        result = _reprice_organization(org, first, last, actor, chunk)
        if result.events:
            results.append(result)
    return results


def _reprice_organization(org, first: date, last: date, actor, chunk: int) -> Repriced:
    zone_name = _zones([org.pk])[org.pk]
    zone = zoneinfo.ZoneInfo(zone_name)
    start, end = organization_period(zone_name, first, last)
    result = Repriced(org.pk, start, end)
    hourly: dict[tuple, dict] = defaultdict(_deltas)
    daily: dict[tuple, dict] = defaultdict(_deltas)
    monthly: dict[tuple, dict] = defaultdict(_deltas)
    updates = []
    with transaction.atomic():
        events = (
            UsageEvent.objects.filter(organization_id=org.pk, created_at__gte=start,
                                      created_at__lt=end)
            .order_by("created_at")
            .values_list(*_EVENT_FIELDS)
        )  # fmt: skip
        for values in events.iterator(chunk_size=chunk):
            event = dict(zip(_EVENT_FIELDS, values, strict=True))
            result.events += 1
            result.cost_before += event["cost_micros"]
            cost = pricing.cost_of(event["model"], event, event["created_at"])
            result.cost_after += cost.micros
            old = (event["cost_micros"], event["server_tool_cost_micros"], event["fallback_priced"])
            if (cost.micros, cost.server_tools, cost.fallback) == old:
                continue
            result.changed += 1
            updates.append(
                (cost.micros, cost.server_tools, cost.fallback, event["request_id"],
                 event["created_at"])
            )  # fmt: skip
            where = (org.pk, event["workspace_id"] or 0, event["api_key_id"] or 0, event["model"])
            moment = event["created_at"]
            hour = moment.replace(minute=0, second=0, microsecond=0)
            day = moment.astimezone(zone).date()
            buckets = (hourly[(*where, hour)], daily[(*where, day)],
                       monthly[(*where, day.replace(day=1))])  # fmt: skip
            for totals in buckets:
                totals["cost_micros"] += cost.micros - old[0]
                totals["server_tool_cost_micros"] += cost.server_tools - old[1]
                totals["fallback_priced_requests"] += int(cost.fallback) - int(old[2])
            if len(updates) >= chunk:
                _update_events(updates)
                updates = []
        _update_events(updates)
        from .models import UsageDaily, UsageHourly, UsageMonthly

        _add_to_rollups(UsageHourly, "hour", _nonzero(hourly), Source.GATEWAY)
        _add_to_rollups(UsageDaily, "day", _nonzero(daily), Source.GATEWAY)
        _add_to_rollups(UsageMonthly, "month", _nonzero(monthly), Source.GATEWAY)
        if result.changed:
            period = f"{first:%Y-%m-%d}" if first == last else f"{first:%Y-%m-%d} – {last:%Y-%m-%d}"
            record_event(
                action="usage.repriced",
                organization=org,
                actor=actor,
                actor_label=None if actor else "manage.py reprice",
                target=org,
                before={"cost": money(result.cost_before)},
                after={
                    "period": period,
                    "events": result.changed,
                    "cost": money(result.cost_after),
                    "cost_micros": result.cost_after,
                },
            )
    if result.changed:
        _announce(
            [IngestedSpan(org.pk, start, end, 0, result.cost_after - result.cost_before)],
            "repriced",
        )
        result.not_followed = _announce_repriced(org.pk, daily, start, end)
    return result


def _announce_repriced(organization_id: int, daily: dict[tuple, dict], start, end) -> list[str]:
    """`usage_repriced` with the cost differences by day, workspace and key (models summed):
    billing corrects the gateway's spend counters by them. Returns what failed, in words."""
    by_day: dict[tuple, int] = defaultdict(int)
    for (_org, workspace_id, api_key_id, _model, day), totals in daily.items():
        by_day[(day, workspace_id, api_key_id)] += totals["cost_micros"]
    days = [RepricedDay(*where, cost) for where, cost in sorted(by_day.items()) if cost]
    failed = []
    for receiver, response in usage_repriced.send_robust(
        sender=UsageEvent, organization_id=organization_id, days=days, start=start, end=end
    ):
        if isinstance(response, Exception):
            logger.error("usage_repriced receiver %r failed: %r", receiver, response)
            failed.append(f"{type(response).__name__}: {response}")
    return failed


def _deltas() -> dict:
    return {"cost_micros": 0, "server_tool_cost_micros": 0, "fallback_priced_requests": 0}


def _nonzero(totals: dict[tuple, dict]) -> dict[tuple, dict]:
    return {key: counters for key, counters in totals.items() if any(counters.values())}


def _update_events(updates: list[tuple]) -> None:
    if not updates:
        return
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET cost_micros = %s, server_tool_cost_micros = %s, "  # noqa: S608
            "fallback_priced = %s WHERE request_id = %s AND created_at = %s",
            updates,
        )
