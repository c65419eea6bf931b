"""spend_limits.effective through the SDK: each member's binding monthly limit (billing's, the
ones the gateway enforces) and their own spend this month, in cents."""

from __future__ import annotations

import datetime as dt

import pytest

from adminapi import ids
from apikeys.services import create_api_key
from billing.models import LimitScope
from billing.services import save_spend_limit
from usage.models import UsageDaily

pytestmark = pytest.mark.django_db(transaction=True)


def test_effective_limits_name_the_binding_limit_and_the_members_spend(admin_api):
    world = admin_api.world
    org_limit = save_spend_limit(
        organization=world.org, actor=None, enabled=True, cap_micros=1_000_000_000, thresholds=[50]
    )
    ws_limit = save_spend_limit(
        organization=world.org,
        actor=None,
        enabled=True,
        cap_micros=10_000_000,
        thresholds=[50],
        scope=LimitScope.WORKSPACE,
        workspace=world.workspace,
    )
    key = create_api_key(
        membership=world.member, workspace=world.workspace, name="dev", actor=None
    ).key
    UsageDaily.objects.create(
        organization_id=world.org.pk,
        day=dt.datetime.now(dt.UTC).date(),
        workspace_id=world.workspace.pk,
        api_key_id=key.pk,
        model="claude-haiku-4-5",
        requests=3,
        cost_micros=1_234_567,
    )
    with admin_api.client() as client:
        rows = {r.actor.email_address: r for r in client.organization.spend_limits.effective.list()}
        only = client.organization.spend_limits.effective.list(
            user_ids=[ids.encode("user", world.billing.user_id)]
        ).data
        daily = client.organization.spend_limits.effective.list(period=["daily"]).data
    assert set(rows) == {"admin@example.com", "dev@example.com", "finance@example.com"}
    dev = rows["dev@example.com"]
    assert dev.period == "monthly" and dev.currency == "USD"
    assert dev.amount == "1000"  # $10.00, the workspace's cap: least left to spend
    assert dev.source.type == "workspace"
    assert dev.source.workspace_id == ids.encode("workspace", world.workspace.pk)
    assert dev.spend_limit_id == ids.encode("spend_limit", ws_limit.pk)
    assert dev.period_to_date_spend == "123.457"  # 1,234,567 micro-dollars in cents
    assert dev.actor.user_id == ids.encode("user", world.member.user_id)
    finance = rows["finance@example.com"]  # in no workspace: the organization's cap
    assert finance.amount == "100000" and finance.source.type == "organization"
    assert finance.spend_limit_id == ids.encode("spend_limit", org_limit.pk)
    assert finance.period_to_date_spend == "0"
    assert [r.actor.email_address for r in only] == ["finance@example.com"]
    assert daily == []


def test_without_limits_the_amount_is_null(admin_api):
    with admin_api.client() as client:
        rows = client.organization.spend_limits.effective.list(limit=2)
        first_page = list(rows.data)
        everyone = list(client.organization.spend_limits.effective.list(limit=2))
    assert len(first_page) == 2 and rows.next_page
    assert len(everyone) == 3
    assert all(r.amount is None and r.spend_limit_id is None for r in everyone)
