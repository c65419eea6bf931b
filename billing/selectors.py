"""Every billing read: period spend from the usage rollups, limits with their spend and alerts,
projections, credit balances, invoices, payment history.

Spend is read from `usage.models.UsageDaily` (organization-local days, so a calendar month in the
organization's zone is a range of days) for the gateway's own traffic (`source="gateway"`):
what the gateway metered, priced and capped. Usage imported from Anthropic's Admin API was not
sent through the console and is not billed by it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db.models import Count, Q, Sum

from orgs.models import Organization
from usage.models import Source, UsageDaily, UsageEvent, UsageHourly

from . import periods
from .models import (
    AlertStatus,
    Charge,
    CreditAccount,
    Invoice,
    InvoiceStatus,
    LimitScope,
    Payment,
    PaymentMethod,
    SpendAlert,
    SpendLimit,
)


def gateway_daily(organization_id: int):
    return UsageDaily.objects.filter(organization_id=organization_id, source=Source.GATEWAY)


def period_spend(
    organization_id: int,
    start: date,
    end: date | None = None,
    *,
    workspace_id: int | None = None,
    api_key_id: int | None = None,
) -> int:
    """Micro-dollars spent in [start, end) (organization-local days), optionally one scope's."""
    rows = gateway_daily(organization_id).filter(
        day__gte=start, day__lt=end or periods.next_month(start)
    )
    if workspace_id is not None:
        rows = rows.filter(workspace_id=workspace_id)
    if api_key_id is not None:
        rows = rows.filter(api_key_id=api_key_id)
    return int(rows.aggregate(total=Sum("cost_micros"))["total"] or 0)


@dataclass
class PeriodSpend:
    """The period's spend of one organization, split the ways limits need it (one query)."""

    total: int = 0
    by_workspace: dict[int, int] = field(default_factory=dict)
    by_key: dict[int, int] = field(default_factory=dict)

    def of(self, limit: SpendLimit) -> int:
        if limit.scope == LimitScope.WORKSPACE:
            return self.by_workspace.get(limit.workspace_id, 0)
        if limit.scope == LimitScope.API_KEY:
            return self.by_key.get(limit.api_key_id, 0)
        return self.total


def spend_in_period(organization_id: int, start: date) -> PeriodSpend:
    rows = (
        gateway_daily(organization_id)
        .filter(day__gte=start, day__lt=periods.next_month(start))
        .values("workspace_id", "api_key_id")
        .annotate(cost=Sum("cost_micros"))
        .order_by()
    )
    spend = PeriodSpend()
    by_workspace: dict[int, int] = defaultdict(int)
    by_key: dict[int, int] = defaultdict(int)
    for row in rows:
        cost = int(row["cost"] or 0)
        spend.total += cost
        by_workspace[row["workspace_id"]] += cost
        by_key[row["api_key_id"]] += cost
    spend.by_workspace, spend.by_key = dict(by_workspace), dict(by_key)
    return spend


def daily_costs(organization_id: int, start: date, end: date, **scope) -> dict[date, int]:
    rows = gateway_daily(organization_id).filter(day__gte=start, day__lt=end)
    if scope.get("workspace_id") is not None:
        rows = rows.filter(workspace_id=scope["workspace_id"])
    if scope.get("api_key_id") is not None:
        rows = rows.filter(api_key_id=scope["api_key_id"])
    return {
        r["day"]: int(r["cost"] or 0)
        for r in rows.values("day").annotate(cost=Sum("cost_micros")).order_by()
    }


def projection_micros(
    spent: int, tz, now: datetime | None = None, recent: dict | None = None
) -> int:
    """Spend at the period's end if the rest of it goes as it went so far: spend to date plus the
    average day of the last seven (or of the days gone, early in the month) for each day left."""
    now = now or datetime.now(UTC)
    fraction, _, days = periods.elapsed_fraction(tz, now)
    if fraction <= 0:
        return spent
    if recent:
        window = min(7, max(1, int(fraction * days + 0.999)))
        today = now.astimezone(periods.zone(tz)).date()
        last = [recent.get(today - timedelta(days=i), 0) for i in range(window)]
        per_day = sum(last) / window
        return spent + int(per_day * days * (1 - fraction))
    return int(spent / fraction) if fraction > 0.02 else spent


# -- limits ------------------------------------------------------------------------------------


def limits_of(organization: Organization):
    return (
        SpendLimit.objects.filter(organization=organization)
        .select_related("workspace", "api_key", "api_key__workspace", "updated_by", "organization")
        .order_by("scope", "workspace__name", "api_key__name", "id")
    )


def effective_limits(organization: Organization, *, workspace_id=None, api_key_id=None):
    """The enabled limits that apply to a request of this key (or workspace), tightest scope
    first: the key's, its workspace's, the organization's. What the gateway enforces (it reads
    the same rows, billing/spend.py); for the Admin API's `spend_limits/effective`."""
    scope = Q(scope=LimitScope.ORGANIZATION)
    if workspace_id:
        scope |= Q(scope=LimitScope.WORKSPACE, workspace_id=workspace_id)
    if api_key_id:
        scope |= Q(scope=LimitScope.API_KEY, api_key_id=api_key_id)
    order = {LimitScope.API_KEY: 0, LimitScope.WORKSPACE: 1, LimitScope.ORGANIZATION: 2}
    found = limits_of(organization).filter(scope, enabled=True)
    return sorted(found, key=lambda limit: order[limit.scope])


def organization_limit(organization: Organization) -> SpendLimit | None:
    return limits_of(organization).filter(scope=LimitScope.ORGANIZATION).first()


@dataclass
class LimitStatus:
    limit: SpendLimit
    spent: int
    projected: int
    alerts: list  # SpendAlert of this period, lowest threshold first

    @property
    def percent(self) -> float:
        cap = self.limit.monthly_cap_micros
        return 100.0 * self.spent / cap if cap else 0.0

    @property
    def bar_percent(self) -> int:
        return min(100, int(self.percent))

    @property
    def reached(self) -> bool:
        return self.limit.enabled and self.spent >= self.limit.monthly_cap_micros

    @property
    def fired(self) -> dict[int, SpendAlert]:
        return {a.threshold: a for a in self.alerts}

    @property
    def threshold_states(self) -> list[tuple[int, SpendAlert | None]]:
        fired = self.fired
        return [(t, fired.get(t)) for t in self.limit.thresholds]


def limit_statuses(organization: Organization, now: datetime | None = None) -> list[LimitStatus]:
    """Each limit with its spend this period, the projection and its alerts (a fixed number of
    queries however many limits)."""
    now = now or datetime.now(UTC)
    start, end = periods.period_of(organization.timezone, now)
    spend = spend_in_period(organization.pk, start)
    recent_start = max(start, end - timedelta(days=40))
    week = gateway_daily(organization.pk).filter(day__gte=recent_start, day__lt=end)
    recent_total: dict[date, int] = defaultdict(int)
    recent_ws: dict[tuple[int, date], int] = defaultdict(int)
    recent_key: dict[tuple[int, date], int] = defaultdict(int)
    for row in (
        week.values("day", "workspace_id", "api_key_id")
        .annotate(cost=Sum("cost_micros"))
        .order_by()
    ):
        cost = int(row["cost"] or 0)
        recent_total[row["day"]] += cost
        recent_ws[row["workspace_id"], row["day"]] += cost
        recent_key[row["api_key_id"], row["day"]] += cost
    limits = list(limits_of(organization))
    alerts = defaultdict(list)
    for alert in SpendAlert.objects.filter(limit__in=limits, period_start=start).order_by(
        "threshold"
    ):
        alerts[alert.limit_id].append(alert)
    statuses = []
    for limit in limits:
        if limit.scope == LimitScope.WORKSPACE:
            recent = {d: c for (w, d), c in recent_ws.items() if w == limit.workspace_id}
        elif limit.scope == LimitScope.API_KEY:
            recent = {d: c for (k, d), c in recent_key.items() if k == limit.api_key_id}
        else:
            recent = recent_total
        spent = spend.of(limit)
        statuses.append(
            LimitStatus(
                limit,
                spent,
                projection_micros(spent, organization.timezone, now, recent),
                alerts[limit.pk],
            )
        )
    return statuses


def fired_alerts(organization: Organization):
    return (
        SpendAlert.objects.filter(limit__organization=organization)
        .exclude(status=AlertStatus.PASSED_BEFORE_SET)
        .select_related("limit", "limit__workspace", "limit__api_key")
        .order_by("-crossed_at")
    )


def alert_counts() -> dict[str, int]:
    """Spending alerts of every organization by status (sent, pending): for /metrics."""
    counts = {status: 0 for status in (AlertStatus.SENT, AlertStatus.PENDING)}
    rows = SpendAlert.objects.filter(status__in=list(counts)).values("status")
    for row in rows.annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    return {str(status): n for status, n in counts.items()}


def billing_recipients(organization: Organization) -> list[str]:
    """The organization's Admins and Billing-only members: who billing emails go to."""
    from members.models import Membership, Role

    return list(
        Membership.objects.filter(organization=organization, role__in=[Role.ADMIN, Role.BILLING])
        .order_by("user__email")
        .values_list("user__email", flat=True)
    )


# -- credits ------------------------------------------------------------------------------------


def credit_account(organization: Organization) -> CreditAccount | None:
    return CreditAccount.objects.filter(organization=organization).first()


def consumed_since(organization_id: int, start: datetime, now: datetime | None = None) -> int:
    """What the gateway's usage cost from `start` on: the hourly rollups of whole hours, and the
    raw events of the partial hour `start` falls in."""
    first_full = periods.hour_ceil(start)
    total = (
        UsageHourly.objects.filter(
            organization_id=organization_id, source=Source.GATEWAY, hour__gte=first_full
        ).aggregate(total=Sum("cost_micros"))["total"]
        or 0
    )
    if first_full > start:
        total += (
            UsageEvent.objects.filter(
                organization_id=organization_id, created_at__gte=start, created_at__lt=first_full
            ).aggregate(total=Sum("cost_micros"))["total"]
            or 0
        )
    return int(total)


def credit_balance(account: CreditAccount) -> int:
    if not account.enabled or account.window_started_at is None:
        return account.carried_micros
    used = consumed_since(account.organization_id, account.window_started_at)
    return account.window_cap_micros - used


# -- payment methods, invoices, payments ------------------------------------------------------


def payment_methods(organization: Organization):
    return PaymentMethod.objects.filter(organization=organization, removed_at__isnull=True)


def default_payment_method(organization: Organization) -> PaymentMethod | None:
    return payment_methods(organization).filter(is_default=True).first()


def invoices_of(organization: Organization):
    return Invoice.objects.filter(organization=organization)


def last_invoice(organization: Organization) -> Invoice | None:
    return invoices_of(organization).exclude(status=InvoiceStatus.DRAFT).first()


def payments_of(organization: Organization):
    return Payment.objects.filter(invoice__organization=organization).select_related("invoice")


def charges_of(organization: Organization):
    return Charge.objects.filter(organization=organization).select_related("payment_method")


def own_keys_spend(membership, now: datetime | None = None) -> list[dict]:
    """A Member's home: their own keys' spend this period."""
    from apikeys.models import ApiKey

    organization = membership.organization
    start, _ = periods.period_of(organization.timezone, now)
    keys = list(
        ApiKey.objects.filter(organization=organization, owner_id=membership.user_id)
        .select_related("workspace")
        .order_by("name")
    )
    spend = spend_in_period(organization.pk, start)
    return [{"key": key, "spent": spend.by_key.get(key.pk, 0)} for key in keys]


def workspace_statement(organization: Organization, workspace_id: int, start: date) -> list[dict]:
    """One workspace's usage in one period, by model (for cost allocation)."""
    return list(
        gateway_daily(organization.pk)
        .filter(workspace_id=workspace_id, day__gte=start, day__lt=periods.next_month(start))
        .values("model")
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cache_write_tokens=Sum("cache_creation_input_tokens"),
            cache_read_tokens=Sum("cache_read_input_tokens"),
            cost=Sum("cost_micros"),
        )
        .order_by("model")
    )


def months_with_usage(organization: Organization, limit: int = 24) -> list[date]:
    days = (
        gateway_daily(organization.pk)
        .filter(~Q(cost_micros=0) | Q(requests__gt=0))
        .dates("day", "month", order="DESC")[:limit]
    )
    return list(days)


def home_summary(membership, now: datetime | None = None) -> dict:
    """The organization home's billing part: for those who manage billing, this month's spend
    against each limit, the projection, the last invoice and the credit balance; for the
    others (Members), their own keys' spend this month."""
    from members.policy import can

    organization = membership.organization
    if not can(membership, "billing.manage"):
        keys = own_keys_spend(membership, now)
        return {"own_keys": keys, "own_total": sum(k["spent"] for k in keys)}
    account = credit_account(organization)
    start, _ = periods.period_of(organization.timezone, now)
    spent = spend_in_period(organization.pk, start).total
    recent = daily_costs(organization.pk, start, periods.next_month(start))
    return {
        "manages": True,
        "statuses": limit_statuses(organization, now),
        "month_spend": spent,
        "month_projection": projection_micros(spent, organization.timezone, now, recent),
        "last_invoice": last_invoice(organization),
        "account": account,
        "balance": credit_balance(account) if account else None,
    }
