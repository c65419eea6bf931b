"""`GET /v1/organizations/spend_limits/effective`: per member, the spending limit that binds
them this month, from billing's limits (the ones the gateway enforces, billing/spend.py).

Anthropic's report is per member and period. Here limits are monthly (other periods find no
rows) and apply to the organization, a workspace or a key; a member's effective limit is the
enabled organization or workspace limit (of the workspaces the member reaches) with the least
left to spend, `null` when none applies. Amounts are US cents: the limit as an integer string,
the member's own spend this month (their keys' cost, billing's rollups) with up to three
decimals."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from django.db.models import Sum
from pydantic import BaseModel, Field

from apikeys.models import ApiKey
from billing import periods
from billing.models import LimitScope
from billing.selectors import gateway_daily, limit_statuses
from members.models import Membership, Role, WorkspaceMembership

from .. import ids
from ..api import AdminCall, endpoint
from ..pagination import decoded_ids, page_token, token_page
from .users import members_of

Period = Literal["daily", "weekly", "monthly"]


class UserActor(BaseModel):
    type: Literal["user_actor"] = "user_actor"
    user_id: str
    email_address: str | None
    name: str | None
    deleted: bool = False


class OrganizationScope(BaseModel):
    type: Literal["organization"] = "organization"


class WorkspaceScope(BaseModel):
    type: Literal["workspace"] = "workspace"
    workspace_id: str


class SpendSummary(BaseModel):
    actor: UserActor
    amount: str | None
    currency: Literal["USD"] = "USD"
    period: Period
    period_to_date_spend: str
    scope: OrganizationScope | WorkspaceScope
    source: OrganizationScope | WorkspaceScope
    spend_limit_id: str | None


class SpendSummaryPage(BaseModel):
    data: list[SpendSummary]
    next_page: str | None


class EffectiveParams(BaseModel):
    limit: int = Field(20, ge=1, le=1000, description="Members per page.")
    page: str | None = Field(None, description="next_page of the previous answer.")
    period: list[Period] = Field(default_factory=list, description="Only these periods.")
    user_ids: list[str] = Field(default_factory=list, max_length=100, description="Only these.")


def cents_whole(micros: int) -> str:
    return str(int(micros) // 10_000)


def cents_spent(micros: int) -> str:
    value = (Decimal(int(micros)) / Decimal(10_000)).quantize(Decimal("0.001"), ROUND_HALF_UP)
    return f"{value.normalize():f}" if value else "0"


def actor_of(membership: Membership) -> UserActor:
    return UserActor(
        user_id=ids.encode("user", membership.user_id),
        email_address=membership.user.email,
        name=membership.user.name or None,
    )


def scope_of(limit) -> OrganizationScope | WorkspaceScope:
    if limit is not None and limit.scope == LimitScope.WORKSPACE:
        return WorkspaceScope(workspace_id=ids.encode("workspace", limit.workspace_id))
    return OrganizationScope()


def _members(call: AdminCall, params: EffectiveParams) -> tuple[list[Membership], str | None]:
    rows = members_of(call).order_by("user_id")
    if params.user_ids:
        rows = rows.filter(user_id__in=decoded_ids("user", "user_ids", params.user_ids))
    if params.page is not None:
        rows = rows.filter(user_id__gt=page_token("user", params.page, of="report"))
    return token_page(rows, params.limit, kind="user", key="user_id")


def workspaces_reached(organization, members: list[Membership]) -> dict[int, set[int]]:
    """The workspaces each member reaches (members.selectors.workspaces_for), in two queries."""
    every = set(organization.workspaces.values_list("pk", flat=True))
    reached: dict[int, set[int]] = {m.pk: set() for m in members if m.role != Role.ADMIN}
    for membership_id, workspace_id in WorkspaceMembership.objects.filter(
        membership_id__in=list(reached)
    ).values_list("membership_id", "workspace_id"):
        reached[membership_id].add(workspace_id)
    return {m.pk: every if m.role == Role.ADMIN else reached[m.pk] for m in members}


@endpoint(
    "GET",
    "/v1/organizations/spend_limits/effective",
    summary="Each member's effective spending limit and spend this month",
    query=EffectiveParams,
    response=SpendSummaryPage,
    tag="Spend limits",
)
def list_effective_limits(call: AdminCall) -> SpendSummaryPage:
    params: EffectiveParams = call.query
    members, next_page = _members(call, params)
    if params.period and "monthly" not in params.period:
        return SpendSummaryPage(data=[], next_page=next_page)
    organization = call.organization
    statuses = [
        status
        for status in limit_statuses(organization)
        if status.limit.enabled and status.limit.scope != LimitScope.API_KEY
    ]
    start, end = periods.period_of(organization.timezone, dt.datetime.now(dt.UTC))
    owners = dict(
        ApiKey.objects.filter(
            organization_id=organization.pk, owner_id__in=[m.user_id for m in members]
        ).values_list("pk", "owner_id")
    )
    spent: dict[int, int] = defaultdict(int)
    for row in (
        gateway_daily(organization.pk)
        .filter(day__gte=start, day__lt=end, api_key_id__in=list(owners))
        .values("api_key_id")
        .annotate(cost=Sum("cost_micros"))
        .order_by()
    ):
        spent[owners[row["api_key_id"]]] += int(row["cost"] or 0)
    reached = workspaces_reached(organization, members)
    data = []
    for membership in members:
        applying = [
            s
            for s in statuses
            if s.limit.scope == LimitScope.ORGANIZATION
            or s.limit.workspace_id in reached[membership.pk]
        ]
        binding = min(applying, key=lambda s: s.limit.monthly_cap_micros - s.spent, default=None)
        limit = binding.limit if binding is not None else None
        data.append(
            SpendSummary(
                actor=actor_of(membership),
                amount=cents_whole(limit.monthly_cap_micros) if limit else None,
                period="monthly",
                period_to_date_spend=cents_spent(spent.get(membership.user_id, 0)),
                scope=scope_of(limit),
                source=scope_of(limit),
                spend_limit_id=ids.encode("spend_limit", limit.pk) if limit else None,
            )
        )
    return SpendSummaryPage(data=data, next_page=next_page)
