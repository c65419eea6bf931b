"""The spending limit increase flow end to end: a Member asks in the browser (Billing → Limit
requests) for a higher cap on their workspace, the Admins and Billing-only members are emailed,
the official SDK lists and approves it (the cap is saved through billing's services and
enforced), the Member is emailed; a Billing-only member denies another in the browser."""

from __future__ import annotations

import anthropic
import pytest
from django.core import mail
from django.urls import reverse

from adminapi import ids
from apikeys.services import create_api_key
from audit.models import AuditEvent
from billing.models import LimitScope, SpendLimit, SpendLimitIncreaseRequest
from billing.services import save_spend_limit

pytestmark = pytest.mark.django_db(transaction=True)


def page(world, name="billing:increase_requests", *args):
    return reverse(name, args=[world.org.slug, *args])


def test_a_member_asks_and_an_admin_key_approves(admin_api, client_for):
    world = admin_api.world
    member = client_for(world.member)
    answer = member.post(
        page(world),
        {"target": f"workspace:{world.workspace.pk}", "cap": "250", "reason": "Load test"},
    )
    assert answer.status_code == 302
    increase = SpendLimitIncreaseRequest.objects.get()
    assert increase.scope == LimitScope.WORKSPACE and increase.requested_cap_micros == 250_000_000
    asked = [m for m in mail.outbox if "asks for a $250.00 monthly limit" in m.subject]
    assert sorted(asked[0].to) == ["admin@example.com", "finance@example.com"]
    mail.outbox.clear()
    request_id = ids.encode("increase_request", increase.pk)
    with admin_api.client() as client:
        requests = client.organization.spend_limits.increase_requests
        [listed] = requests.list(status=["pending"]).data
        assert listed.id == request_id and listed.status == "pending"
        assert listed.actor.email_address == "dev@example.com"
        assert requests.retrieve(request_id).model_dump()["requested_amount"] == "25000"
        approved = requests.approve(request_id, amount="20000")
        with pytest.raises(anthropic.BadRequestError, match="already approved"):
            requests.deny(request_id)
    assert approved.status == "approved" and approved.resolved_by.email_address == (
        "admin@example.com"
    )
    assert approved.spend_limit.amount == "20000"
    limit = SpendLimit.objects.get(scope=LimitScope.WORKSPACE, workspace=world.workspace)
    assert limit.monthly_cap_micros == 200_000_000 and limit.enabled
    [told] = mail.outbox
    assert told.to == ["dev@example.com"] and "was approved" in told.subject
    event = AuditEvent.objects.get(action="billing.increase_approved")
    assert "admin key Terraform" in event.actor_label
    assert AuditEvent.objects.filter(action="billing.limit_changed").exists()
    assert AuditEvent.objects.filter(action="billing.increase_requested").exists()
    shown = member.get(page(world))
    assert b"Approved" in shown.content and b"$200.00" in shown.content


def test_a_billing_member_denies_in_the_browser_and_bad_approvals_change_nothing(
    admin_api, client_for
):
    world = admin_api.world
    key = create_api_key(membership=world.member, workspace=world.workspace, name="k", actor=None)
    member = client_for(world.member)
    member.post(page(world), {"target": f"key:{key.key.pk}", "cap": "75"})
    increase = SpendLimitIncreaseRequest.objects.get()
    assert increase.scope == LimitScope.API_KEY
    save_spend_limit(
        organization=world.org, actor=None, enabled=True, cap_micros=50_000_000, thresholds=[50]
    )
    finance = client_for(world.billing)
    refused = finance.post(
        page(world, "billing:increase_request_approve", increase.pk), {"cap": "75"}
    )
    assert refused.status_code == 200 and b"may not exceed" in refused.content
    with admin_api.client() as client:
        requests = client.organization.spend_limits.increase_requests
        rid = ids.encode("increase_request", increase.pk)
        with pytest.raises(anthropic.BadRequestError, match="cap"):
            requests.approve(rid, amount="7500")
        with pytest.raises(anthropic.BadRequestError, match="amount: "):
            requests.approve(rid, amount="12.50")
    increase.refresh_from_db()
    assert increase.status == "pending"
    assert not SpendLimit.objects.filter(scope=LimitScope.API_KEY).exists()
    mail.outbox.clear()
    confirm = finance.get(page(world, "billing:increase_request_deny", increase.pk))
    assert confirm.status_code == 200 and b"Deny request" in confirm.content
    finance.post(page(world, "billing:increase_request_deny", increase.pk))
    increase.refresh_from_db()
    assert increase.status == "denied" and increase.resolved_by == world.billing.user
    assert [m.to for m in mail.outbox] == [["dev@example.com"]]
    assert "was denied" in mail.outbox[0].subject
    assert AuditEvent.objects.filter(action="billing.increase_denied").exists()


def test_a_member_asks_only_for_their_own_keys_and_workspaces(admin_api, client_for):
    world = admin_api.world
    theirs = create_api_key(
        membership=world.admin, workspace=world.workspace, name="admin's", actor=None
    ).key
    member = client_for(world.member)
    for target in (f"key:{theirs.pk}", f"workspace:{world.other_workspace.pk}"):
        answer = member.post(page(world), {"target": target, "cap": "10"})
        assert answer.status_code == 200 and answer.context["form"].errors
    assert not SpendLimitIncreaseRequest.objects.exists()
    listing = member.get(page(world))
    assert listing.status_code == 200 and b"empty-state" in listing.content
