"""Every read of usage for the console: totals, the chart's series, breakdowns, the largest and the
failed requests, the CSV rows and the price table — always through a `UsageScope`, which holds the
organization, the period and the filters, and what the member may see.

    scope = UsageScope.of(membership, start=date(...), end=date(...), model="...")
    totals(scope)            # one row of sums over the period (daily rollups)
    series(scope)            # the chart: by day, or by hour for a period of up to 3 days
    breakdown(scope, "key")  # rows per key, model or workspace

**Which table answers.** Totals, the daily chart, breakdowns and the daily CSV read `UsageDaily`
(organization-local days, so a period of dates is a plain range) — the breakdown reads the
whole months of a period from `UsageMonthly` (the sums of their days); the hourly chart and CSV read
`UsageHourly` (UTC hours, bounded by the instants of the period's first and last midnight); only
the largest requests, the failed requests and the CSV of single events read raw events
(docs/decisions/0012-usage-dashboard-reads.md).

**Who sees what.** Admins and Billing-only members (`usage.view_all`) see the whole
organization. A Member sees only the gateway usage of the keys they own: every query below is
narrowed to those key ids and to source "gateway" (imported usage carries Anthropic's keys,
which nobody here owns).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Q, QuerySet, Sum

from apikeys.models import ApiKey
from members.models import Membership
from members.policy import can
from orgs.models import Organization, Workspace

from .models import (
    FAILED,
    TOKENS,
    ImportedName,
    ModelPrice,
    Source,
    UsageDaily,
    UsageEvent,
    UsageHourly,
    UsageMonthly,
)

MICROS = Decimal(1_000_000)
HOURLY_UP_TO_DAYS = 3  # periods of up to this many days are charted by hour
# The counters a period sums, in the order pages and exports show them.
COUNTERS = (
    "requests", "errors", "input_tokens", "output_tokens", "cache_creation_input_tokens",
    "cache_read_input_tokens", "cost_micros", "fallback_priced_requests",
)  # fmt: skip
GROUPS = {"key": "api_key_id", "model": "model", "workspace": "workspace_id"}


def dollars_of(micros: int) -> Decimal:
    """Integer micro-dollars as exact Decimal dollars (six places)."""
    return (Decimal(int(micros or 0)) / MICROS).quantize(Decimal("0.000001"))


@dataclass(frozen=True)
class UsageScope:
    organization: Organization
    start: dt.date  # first day, organization-local
    end: dt.date  # last day, inclusive
    model: str = ""
    api_key_id: int | None = None
    workspace_id: int | None = None
    source: str = ""
    # None: the whole organization; a tuple: only these keys, gateway traffic only (a Member).
    own_key_ids: tuple[int, ...] | None = None

    @classmethod
    def of(cls, membership: Membership, **filters) -> UsageScope:
        return cls(
            organization=membership.organization,
            own_key_ids=visible_key_ids(membership),
            **filters,
        )

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def hourly(self) -> bool:
        return self.days <= HOURLY_UP_TO_DAYS

    @property
    def zone(self) -> dt.tzinfo:
        return self.organization.tzinfo

    @property
    def since(self) -> dt.datetime:
        """The period's first instant: midnight of its first day in the organization's zone."""
        return dt.datetime.combine(self.start, dt.time.min, tzinfo=self.zone)

    @property
    def until(self) -> dt.datetime:
        """The instant the period ends (exclusive): midnight after its last day."""
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time.min, tzinfo=self.zone)

    def narrow(self, rows: QuerySet, *, events: bool = False) -> QuerySet:
        """`rows` (rollups or events of this organization) narrowed to the filters and to what
        the member may see."""
        if self.model:
            rows = rows.filter(model=self.model)
        if self.api_key_id is not None:
            rows = rows.filter(api_key_id=self.api_key_id)
        if self.workspace_id is not None:
            rows = rows.filter(workspace_id=self.workspace_id)
        gateway_only = self.own_key_ids is not None or self.source == Source.GATEWAY
        if self.own_key_ids is not None:
            rows = rows.filter(api_key_id__in=self.own_key_ids)
        if events:  # raw events are the gateway's own: imported usage has none
            return rows.none() if self.source == Source.IMPORTED else rows
        if gateway_only:
            rows = rows.filter(source=Source.GATEWAY)
        elif self.source:
            rows = rows.filter(source=self.source)
        return rows


def visible_key_ids(membership: Membership) -> tuple[int, ...] | None:
    """None when the member sees the whole organization's usage; else the ids of their keys."""
    if can(membership, "usage.view_all"):
        return None
    return tuple(
        ApiKey.objects.filter(
            organization_id=membership.organization_id, owner_id=membership.user_id
        ).values_list("pk", flat=True)
    )


# -- the rows of a scope ---------------------------------------------------------------------


def daily_rows(scope: UsageScope) -> QuerySet[UsageDaily]:
    rows = UsageDaily.objects.filter(
        organization_id=scope.organization.pk, day__gte=scope.start, day__lte=scope.end
    )
    return scope.narrow(rows)


def whole_months(start: dt.date, end: dt.date) -> tuple[dt.date, dt.date] | None:
    """The calendar months lying wholly inside [start, end]: (the first day of the first, the
    first day after the last), or None when there is none."""
    next_month = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    first = start if start.day == 1 else next_month
    after = (end + dt.timedelta(days=1)).replace(day=1)
    return (first, after) if first < after else None


def period_rows(scope: UsageScope) -> list[QuerySet]:
    """Rollup rows that add up to the period, exactly: the monthly rows of its whole months and
    the daily rows of the days around them — or only daily rows when no month fits. A period
    of 13 months reads ~1/30 of the rows that its days hold (bench_dashboard)."""
    months = whole_months(scope.start, scope.end)
    if months is None:
        return [daily_rows(scope)]
    first, after = months
    found = [
        scope.narrow(
            UsageMonthly.objects.filter(
                organization_id=scope.organization.pk, month__gte=first, month__lt=after
            )
        )
    ]
    if scope.start < first or scope.end >= after:
        found.append(daily_rows(scope).filter(Q(day__lt=first) | Q(day__gte=after)))
    return found


def hourly_rows(scope: UsageScope) -> QuerySet[UsageHourly]:
    rows = UsageHourly.objects.filter(
        organization_id=scope.organization.pk, hour__gte=scope.since, hour__lt=scope.until
    )
    return scope.narrow(rows)


def event_rows(scope: UsageScope) -> QuerySet[UsageEvent]:
    rows = UsageEvent.objects.filter(
        organization_id=scope.organization.pk,
        created_at__gte=scope.since,
        created_at__lt=scope.until,
    )
    return scope.narrow(rows, events=True)


def _sums() -> dict:
    return {name: Sum(name) for name in COUNTERS}


# -- totals ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_micros: int = 0
    fallback_priced_requests: int = 0

    @classmethod
    def of(cls, row: dict) -> Totals:
        return cls(**{name: int(row.get(name) or 0) for name in COUNTERS})

    @property
    def cost(self) -> Decimal:
        return dollars_of(self.cost_micros)

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )

    @property
    def cache_hit_rate(self) -> float | None:
        """Share of prompt tokens read from the cache (reads over all input: uncached, written
        and read); None when there was no input."""
        prompt = self.input_tokens + self.cache_creation_input_tokens + self.cache_read_input_tokens
        return self.cache_read_input_tokens / prompt if prompt else None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def totals(scope: UsageScope) -> Totals:
    return Totals.of(daily_rows(scope).aggregate(**_sums()))


def totals_of(rows: list[dict]) -> Totals:
    """The totals of a breakdown's rows (the page sums them rather than query again)."""
    return Totals(**{name: sum(row[name] for row in rows) for name in COUNTERS})


# -- the chart -----------------------------------------------------------------------------------

METRICS = {"cost": "cost_micros", "tokens": "tokens", "requests": "requests"}
TOKEN_SUM = TOKENS


@dataclass
class Series:
    """Values per bucket and model: `buckets` every day (or hour) of the period in order,
    `models` by total, largest first, `values[model][i]` the value of bucket i."""

    hourly: bool
    buckets: list  # dates, or aware datetimes (UTC hours)
    models: list[str]
    values: dict[str, list[int]]

    @property
    def peak(self) -> int:
        return max((sum(v[i] for v in self.values.values()) for i in range(len(self.buckets))),
                   default=0)  # fmt: skip


def series(scope: UsageScope, metric: str = "cost") -> Series:
    value = Sum(TOKEN_SUM) if metric == "tokens" else Sum(METRICS[metric])
    if scope.hourly:
        first = scope.since.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
        buckets = []
        moment = first
        while moment < scope.until:
            buckets.append(moment)
            moment += dt.timedelta(hours=1)
        rows = hourly_rows(scope).values("hour", "model").annotate(v=value).order_by()
        key = "hour"
    else:
        buckets = [scope.start + dt.timedelta(days=n) for n in range(scope.days)]
        rows = daily_rows(scope).values("day", "model").annotate(v=value).order_by()
        key = "day"
    index = {bucket: n for n, bucket in enumerate(buckets)}
    values: dict[str, list[int]] = {}
    for row in rows:
        position = index.get(row[key])
        if position is None:
            continue
        line = values.setdefault(row["model"], [0] * len(buckets))
        line[position] += int(row["v"] or 0)
    models = sorted(values, key=lambda m: (-sum(values[m]), m))
    return Series(scope.hourly, buckets, models, values)


# -- breakdowns ----------------------------------------------------------------------------------


@dataclass
class Names:
    """Labels of the ids a page shows: keys (name, prefix, display) and workspaces. Negative ids
    are Anthropic's keys and workspaces met by the usage import (`ImportedName`, decision 0013).

    `key_list`, `workspace_list` ((id, name) pairs) and `imported_list` are the same rows in the
    order the filter form offers them (usage/forms.py): the page reads them once for both."""

    keys: dict[int, ApiKey]
    workspaces: dict[int, str]
    imported: dict[int, ImportedName] = field(default_factory=dict)
    key_list: list[ApiKey] = field(default_factory=list)
    workspace_list: list[tuple[int, str]] = field(default_factory=list)
    imported_list: list[ImportedName] = field(default_factory=list)

    @classmethod
    def of(cls, organization: Organization) -> Names:
        key_list = list(ApiKey.objects.filter(organization=organization).order_by("name", "pk"))
        workspace_list = list(
            Workspace.objects.filter(organization=organization)
            .order_by("name")
            .values_list("pk", "name")
        )
        imported_list = list(
            ImportedName.objects.filter(organization=organization).order_by("name", "pk")
        )
        workspaces = dict(workspace_list)
        imported = {n.local_id: n for n in imported_list}
        for local_id, name in imported.items():
            if name.kind == ImportedName.Kind.WORKSPACE:
                workspaces[local_id] = f"{name.name or name.anthropic_id} (Anthropic)"
        return cls(
            {k.pk: k for k in key_list}, workspaces, imported,
            key_list, workspace_list, imported_list,
        )  # fmt: skip

    def key_name(self, key_id: int | None) -> str:
        if not key_id:
            return "No key"
        if key_id < 0 and key_id in self.imported:
            found = self.imported[key_id]
            return f"{found.name or found.anthropic_id} (Anthropic)"
        key = self.keys.get(key_id)
        return key.name if key else f"Key #{key_id}"

    def key_prefix(self, key_id: int | None) -> str:
        key = self.keys.get(key_id or 0)
        return key.prefix if key else ""

    def key_display(self, key_id: int | None) -> str:
        if key_id and key_id < 0 and key_id in self.imported:
            return self.imported[key_id].hint
        key = self.keys.get(key_id or 0)
        return key.display if key else ""

    def workspace(self, workspace_id: int | None) -> str:
        if not workspace_id:
            return "No workspace"
        return self.workspaces.get(workspace_id, f"Workspace #{workspace_id}")


def breakdown(scope: UsageScope, group: str = "key", names: Names | None = None) -> list[dict]:
    """One row per key, model or workspace of the period: its sums and its labels, largest
    cost first."""
    column = GROUPS[group]
    names = names or Names.of(scope.organization)
    summed: dict = {}
    for rows in period_rows(scope):
        for row in rows.values(column).annotate(**_sums()).order_by():
            into = summed.setdefault(row[column], dict.fromkeys(COUNTERS, 0))
            for name in COUNTERS:
                into[name] += int(row[name] or 0)
    found = []
    for ident, row in summed.items():
        sums = Totals.of(row)
        if group == "key":
            label, detail = names.key_name(ident), names.key_display(ident)
        elif group == "workspace":
            label, detail = names.workspace(ident), ""
        else:
            label, detail = ident or "(no model)", ""
        found.append(
            {
                "id": ident,
                "label": label,
                "detail": detail,
                **{name: getattr(sums, name) for name in COUNTERS},
                "cost": sums.cost,
                "cache_hit_rate": sums.cache_hit_rate,
            }
        )
    found.sort(key=lambda r: (-r["cost_micros"], -r["requests"], str(r["label"])))
    return found


# -- raw events: the largest and the failed requests ---------------------------------------------

EVENT_FIELDS = (
    "request_id", "created_at", "api_key_id", "workspace_id", "model", "status", "error_type",
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
    "cost_micros", "fallback_priced",
)  # fmt: skip


def largest_requests(scope: UsageScope, by: str = "cost", limit: int = 10) -> list[dict]:
    rows = event_rows(scope).annotate(tokens=TOKEN_SUM)
    order = ("-cost_micros", "-tokens") if by == "cost" else ("-tokens", "-cost_micros")
    return list(rows.order_by(*order, "-created_at").values(*EVENT_FIELDS, "tokens")[:limit])


def failed_requests(scope: UsageScope, limit: int = 20) -> list[dict]:
    rows = event_rows(scope).filter(FAILED).order_by("-created_at")
    return list(rows.values(*EVENT_FIELDS)[:limit])


ERROR_TYPES_OF = 10_000  # error types are counted among this many most recent failures


@dataclass
class ErrorTypes:
    """Failed requests counted by error type and status, most frequent first (`counts`: dicts
    with error_type, status, count), among the period's `of` most recent failures when it had
    more (`bounded`), else among all of them."""

    counts: list[dict]
    bounded: bool
    of: int = ERROR_TYPES_OF

    def __iter__(self):
        return iter(self.counts)

    def __len__(self) -> int:
        return len(self.counts)


def error_types(scope: UsageScope, of: int | None = None) -> ErrorTypes:
    """The error types of the period's failed requests — of its `of` most recent ones, read
    backwards from the covering partial index (usage_event_org_failed_types): counting every failed
    raw event of 13 months (~280,000 rows on bench_dashboard) took 80-180 ms a page even
    index-only (decision 0012)."""
    of = of or ERROR_TYPES_OF
    recent = event_rows(scope).filter(FAILED).order_by("-created_at").values("error_type", "status")
    try:
        inner, params = recent[:of].query.sql_with_params()
    except EmptyResultSet:  # imported usage: no raw events (UsageScope.narrow)
        return ErrorTypes([], bounded=False, of=of)
    sql = (
        "SELECT error_type, status, COUNT(*) FROM (" + inner + ") recent "  # noqa: S608 (ORM SQL)
        "GROUP BY error_type, status ORDER BY 3 DESC, error_type, status"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        counts = [
            {"error_type": kind, "status": status, "count": count}
            for kind, status, count in cursor.fetchall()
        ]
    return ErrorTypes(counts, bounded=sum(c["count"] for c in counts) >= of, of=of)


# -- what filters offer --------------------------------------------------------------------------


_MODELS_SQL = f"""
WITH RECURSIVE used (model) AS (
  (SELECT model FROM {UsageDaily._meta.db_table} WHERE {{where}} ORDER BY model LIMIT 1)
  UNION ALL
  SELECT (SELECT d.model FROM {UsageDaily._meta.db_table} d
          WHERE {{where_d}} AND d.model > used.model ORDER BY d.model LIMIT 1)
  FROM used WHERE used.model IS NOT NULL
)
SELECT model FROM used WHERE model IS NOT NULL
"""  # noqa: S608 (names, not input)


def models_used(organization: Organization, own_key_ids: tuple[int, ...] | None = None) -> list:
    """Models with usage in the organization (ever), for the model filter. A skip scan of the
    (organization_id, model) index: one probe per model, however many rows (bench_dashboard)."""
    if own_key_ids is not None and not own_key_ids:
        return []
    if connection.vendor != "postgresql":
        rows = UsageDaily.objects.filter(organization_id=organization.pk)
        if own_key_ids is not None:
            rows = rows.filter(api_key_id__in=own_key_ids, source=Source.GATEWAY)
        return sorted(set(rows.values_list("model", flat=True)))

    def where(alias: str) -> str:
        found = f"{alias}organization_id = %(org)s"
        if own_key_ids is not None:
            found += f" AND {alias}api_key_id = ANY(%(keys)s) AND {alias}source = %(source)s"
        return found

    params = {
        "org": organization.pk,
        "keys": list(own_key_ids or ()),
        "source": Source.GATEWAY.value,
    }
    sql = _MODELS_SQL.format(where=where(""), where_d=where("d."))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [model for (model,) in cursor.fetchall()]


def current_prices(now: dt.datetime | None = None) -> list[ModelPrice]:
    """The price in effect now for each model (or family) on the table, and those announced."""
    now = now or dt.datetime.now(dt.UTC)
    latest: dict[str, ModelPrice] = {}
    upcoming: list[ModelPrice] = []
    for price in ModelPrice.objects.order_by("model", "-effective_from"):
        if price.effective_from > now:
            upcoming.append(price)
        elif price.model not in latest:
            latest[price.model] = price
    return sorted([*latest.values(), *upcoming], key=lambda p: (p.model, p.effective_from))


# -- the organization's home page ----------------------------------------------------------------


def month_to_date(membership: Membership, now: dt.datetime | None = None) -> Totals:
    """This calendar month so far (organization-local), what the member may see."""
    organization = membership.organization
    today = (now or dt.datetime.now(dt.UTC)).astimezone(organization.tzinfo).date()
    scope = UsageScope.of(membership, start=today.replace(day=1), end=today)
    return totals(scope)
