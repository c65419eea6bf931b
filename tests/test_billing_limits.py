"""Company > Billing > Spending Limits: the guide's steps, who may do them, and bad input."""

import html
from datetime import UTC, datetime

import pytest

from audit.models import AuditEvent
from billing import services
from billing.models import AlertStatus, LimitScope, SpendAlert, SpendLimit
from tests.factories import daily_usage

pytestmark = pytest.mark.django_db

URL = "/o/acme-support/billing/limits/"


def text(response) -> str:
    return html.unescape(response.content.decode())


def post_limit(client, **fields):
    data = {"enabled": "on", "cap": "1000", "thresholds": "50, 80, 90",
            "notify_billing_members": "on", "extra_recipients": "", **fields}  # fmt: skip
    return client.post(URL, {k: v for k, v in data.items() if v is not None})


def test_finance_sets_the_guides_limit_of_1000_with_alerts_at_50_80_90(world, client_for):
    client = client_for(world.billing)
    page = client.get(URL)
    assert "Enable spending limit" in text(page)
    response = post_limit(client)
    assert response.status_code == 302
    limit = SpendLimit.objects.get(organization=world.org, scope=LimitScope.ORGANIZATION)
    assert (limit.enabled, limit.monthly_cap_micros, limit.thresholds) == (
        True, 1_000_000_000, [50, 80, 90],
    )  # fmt: skip
    page = text(client.get(URL))
    assert "Spending limit saved: $1,000.00 a month, alerts at 50%, 80%, 90% (on)." in page
    assert 'value="1000"' in page and 'value="50, 80, 90"' in page
    actions = set(
        AuditEvent.objects.filter(organization=world.org).values_list("action", flat=True)
    )
    assert {"billing.limit_changed", "billing.thresholds_changed"} <= actions


def test_the_default_thresholds_are_50_80_100(world, client_for):
    client = client_for(world.admin)
    assert 'value="50, 80, 100"' in text(client.get(URL))


def test_a_member_sees_billing_read_only(world, client_for):
    services.save_spend_limit(organization=world.org, actor=None, enabled=True,
                              cap_micros=500_000_000, thresholds=[50, 80, 100])  # fmt: skip
    client = client_for(world.member)
    page = text(client.get(URL))
    assert "$500.00" in page and "View only" in page
    assert 'data-testid="limit-form"' not in page
    assert post_limit(client, cap="5").status_code == 403
    assert SpendLimit.objects.get(organization=world.org).monthly_cap_micros == 500_000_000
    for path in ("limits/new/?scope=workspace", "contact/", "payment-methods/new/"):
        assert client.get(f"/o/acme-support/billing/{path}").status_code == 403
    for path in ("", "invoices/", "payments/", "payment-methods/", "credits/", "statements/"):
        assert client.get(f"/o/acme-support/billing/{path}").status_code == 200


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cap": "-5"}, "Enter an amount above zero."),
        ({"cap": "0"}, "Enter an amount above zero."),
        ({"cap": "lots"}, "Enter an amount in US dollars"),
        ({"cap": "1e9"}, "Enter an amount in US dollars"),
        ({"cap": "99999999999"}, "Enter a monthly cap of at most $10,000,000.00."),
        ({"thresholds": "50, 80, 120"}, "Each threshold is a percentage from 1 to 100."),
        ({"thresholds": "50, 50, 80"}, "Each threshold may appear once."),
        ({"thresholds": "80, 50"}, "List the thresholds from lowest to highest."),
        ({"thresholds": "fifty"}, "Enter whole percentages separated by commas"),
        ({"thresholds": ""}, "This field is required."),
        ({"extra_recipients": "not-an-address"}, "not-an-address is not an email address."),
    ],
)
def test_bad_limits_are_refused_with_a_clear_message(world, client_for, fields, message):
    response = post_limit(client_for(world.billing), **fields)
    assert response.status_code == 200
    assert message in text(response)
    assert not SpendLimit.objects.filter(organization=world.org).exists()


def test_a_workspace_cap_may_not_exceed_the_organizations(world, client_for):
    client = client_for(world.billing)
    post_limit(client, cap="1000")
    response = client.post(
        "/o/acme-support/billing/limits/new/?scope=workspace",
        {"scope": "workspace", "target": world.workspace.pk, "enabled": "on", "cap": "1500",
         "thresholds": "50, 80, 100", "notify_billing_members": "on"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "A workspace's cap may not exceed the organization's monthly cap of $1,000.00." in (
        text(response)
    )
    assert not SpendLimit.objects.filter(scope=LimitScope.WORKSPACE).exists()
    response = client.post(
        "/o/acme-support/billing/limits/new/?scope=workspace",
        {"scope": "workspace", "target": world.workspace.pk, "enabled": "on", "cap": "200",
         "thresholds": "50, 100", "notify_billing_members": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    # Lowering the organization's cap below it is refused, naming the workspace.
    response = post_limit(client, cap="100", version=1)
    assert "Workspace Development ($200.00)" in text(response)
    assert SpendLimit.objects.get(scope="organization").monthly_cap_micros == 1_000_000_000


def test_a_workspace_of_another_organization_cannot_be_capped(world, client_for):
    response = client_for(world.billing).post(
        "/o/acme-support/billing/limits/new/?scope=workspace",
        {"scope": "workspace", "target": world.other_workspace.pk, "enabled": "on", "cap": "10",
         "thresholds": "50", "notify_billing_members": "on"},
    )  # fmt: skip
    assert response.status_code == 200  # not one of the choices
    assert not SpendLimit.objects.filter(workspace=world.other_workspace).exists()


def test_two_finance_users_editing_one_limit_do_not_lose_an_update(world, client_for):
    services.save_spend_limit(organization=world.org, actor=world.admin.user, enabled=True,
                              cap_micros=1_000_000_000, thresholds=[50, 80, 100])  # fmt: skip
    # Both open the form at version 1; the Admin saves first.
    services.save_spend_limit(organization=world.org, actor=world.admin.user, enabled=True,
                              cap_micros=2_000_000_000, thresholds=[50, 80, 100],
                              expected_version=1)  # fmt: skip
    response = post_limit(client_for(world.billing), cap="750", version="1")
    page = text(response)
    assert response.status_code == 200
    assert "admin@example.com changed this limit" in page and "Nothing was saved" in page
    assert 'value="2000"' in page  # the form shows their values now
    limit = SpendLimit.objects.get(organization=world.org)
    assert (limit.monthly_cap_micros, limit.version) == (2_000_000_000, 2)


def test_thresholds_already_passed_when_set_never_fire(world):
    today = datetime.now(UTC).date()
    daily_usage(world.org, today, 600_000_000)  # $600 of a $1,000 cap: 60 %
    limit = services.save_spend_limit(organization=world.org, actor=None, enabled=True,
                                      cap_micros=1_000_000_000, thresholds=[50, 80, 90])  # fmt: skip
    [alert] = SpendAlert.objects.filter(limit=limit)
    assert (alert.threshold, alert.status) == (50, AlertStatus.PASSED_BEFORE_SET)


def test_the_finance_home_leads_with_spend_and_a_member_sees_their_own_keys(world, client_for):
    from apikeys.services import create_api_key

    key = create_api_key(membership=world.member, workspace=world.workspace, name="Dev laptop",
                         actor=None).key  # fmt: skip
    today = datetime.now(world.org.tzinfo).date()
    daily_usage(world.org, today, 250_000_000, workspace_id=world.workspace.pk, api_key_id=key.pk)
    daily_usage(world.org, today, 150_000_000)  # someone else's
    services.save_spend_limit(organization=world.org, actor=None, enabled=True,
                              cap_micros=1_000_000_000, thresholds=[50, 80, 90])  # fmt: skip
    page = text(client_for(world.billing).get("/o/acme-support/"))
    assert page.index('data-testid="billing-home"') < page.index("Members</div>")
    assert "$400.00" in page and "of $1,000.00" in page and "Projected" in page
    page = text(client_for(world.member).get("/o/acme-support/"))
    assert "Your keys this month" in page and "Dev laptop" in page and "$250.00" in page
    assert "$400.00" not in page and "Revoked" not in page
    # A revoked key's spend stays on the list, marked as such.
    from apikeys.services import revoke_api_key

    revoke_api_key(key=key, actor=None, actor_label="test")
    page = text(client_for(world.member).get("/o/acme-support/"))
    assert "Dev laptop" in page and "$250.00" in page and "Revoked" in page


def test_effective_limits_are_the_enabled_ones_of_the_key_its_workspace_and_the_org(world):
    from apikeys.services import create_api_key
    from billing.selectors import effective_limits

    key = create_api_key(membership=world.member, workspace=world.workspace, name="K",
                         actor=None).key  # fmt: skip
    org = services.save_spend_limit(organization=world.org, actor=None, enabled=True,
                                    cap_micros=1_000_000_000, thresholds=[50])  # fmt: skip
    ws = services.save_spend_limit(organization=world.org, actor=None, enabled=True,
                                   cap_micros=500_000_000, thresholds=[50], scope="workspace",
                                   workspace=world.workspace)  # fmt: skip
    services.save_spend_limit(organization=world.org, actor=None, enabled=False,
                              cap_micros=100_000_000, thresholds=[50], scope="api_key",
                              api_key=key)  # fmt: skip
    found = effective_limits(world.org, workspace_id=world.workspace.pk, api_key_id=key.pk)
    assert found == [ws, org]  # the key's is off
    assert effective_limits(world.org) == [org]
