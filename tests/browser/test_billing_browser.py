"""Billing in a real browser: a Member sees it read-only. Screenshots at 1280 and 390 px
(var/screenshots/), shared with test_billing_alert_browser.py."""

from datetime import datetime
from pathlib import Path

import pytest

from tests.factories import PASSWORD, daily_usage

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"billing-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_a_member_sees_billing_read_only_in_the_browser(world, new_page):
    from datetime import UTC

    from billing import invoicing, services
    from billing.models import PaymentMethod

    services.save_spend_limit(organization=world.org, actor=None, enabled=True,
                              cap_micros=1_000_000_000, thresholds=[50, 80, 90])  # fmt: skip
    services.save_spend_limit(organization=world.org, actor=None, enabled=True,
                              cap_micros=200_000_000, thresholds=[50, 80, 100],
                              scope="workspace", workspace=world.workspace)  # fmt: skip
    today = datetime.now(world.org.tzinfo).date()
    daily_usage(world.org, today, 180_000_000, workspace_id=world.workspace.pk)
    daily_usage(world.org, today.replace(day=1), 120_000_000, model="claude-sonnet-4-5")
    PaymentMethod.objects.create(organization=world.org, kind="card", brand="visa", last4="4242",
                                 exp_month=12, exp_year=2030, holder_name="Fran Finance",
                                 is_default=True)  # fmt: skip
    daily_usage(world.org, today.replace(day=1).replace(month=1), 42_420_000)
    invoicing.close_periods(now=datetime(today.year, 2, 1, 3, tzinfo=UTC))
    page = new_page()
    log_in(page, "dev@example.com", PASSWORD)
    page.goto("/o/acme-support/billing/")
    main = page.locator("main")
    assert "View only" in main.inner_text()
    assert "$300.00" in main.inner_text()
    shoot(page, "member-overview")
    page.get_by_role("link", name="Spending Limits").click()
    page.wait_for_url("**/billing/limits/")
    assert page.get_by_role("button", name="Save limit").count() == 0
    assert "Workspace Development" in main.inner_text()
    shoot(page, "member-limits")
    page.get_by_role("link", name="Invoices").click()
    page.wait_for_url("**/billing/invoices/")
    page.get_by_role("link", name=f"ACME-{today.year}-0001").click()
    assert "$42.42" in main.inner_text() and "Record a payment" not in main.inner_text()
    shoot(page, "member-invoice")
    page.get_by_role("link", name="Payment methods").click()
    assert "Visa •••• 4242" in main.inner_text() and "Remove" not in main.inner_text()
    shoot(page, "member-payment-methods")
