"""The guide's Step 4 in a real browser: finance@ sets a monthly limit of $1,000 with alerts at
50 %, 80 % and 90 %; traffic through the gateway crosses 50 % and the alert arrives once; admin@
sees the change and the alert in the audit log. Screenshots at 1280 and 390 px."""

from datetime import datetime

import anthropic
import pytest
from django.core import mail

from billing.models import AlertStatus, SpendAlert, SpendLimit
from gateway.services import configure_upstream
from tests.factories import PASSWORD, daily_usage
from tests.gateway.conftest import (  # noqa: F401 (fixtures)
    MODEL,
    _fresh_gateway_caches,
    gateway,
    mint_key,
    seed_prices,
    simulator,
)

from .conftest import drain_usage, log_in
from .test_billing_browser import shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_sets_the_guides_limit_and_the_50_percent_alert_arrives_once(
    world,
    new_page,
    simulator,  # noqa: F811
    gateway,  # noqa: F811
):
    from console.celery import app

    page = new_page()
    log_in(page, "finance@example.com", PASSWORD)
    page.goto("/o/acme-support/billing/")
    page.get_by_role("link", name="Spending Limits").click()
    page.wait_for_url("**/billing/limits/")
    toggle = page.get_by_label("Enable spending limit")
    if not toggle.is_checked():
        toggle.check()
    page.get_by_label("Monthly cap (USD)").fill("1000")
    page.get_by_label("Email alerts at (% of the cap)").fill("50, 80, 90")
    page.get_by_role("button", name="Save limit").click()
    page.wait_for_url("**/billing/limits/")
    main = page.locator("main")
    assert "Spending limit saved: $1,000.00 a month, alerts at 50%, 80%, 90% (on)." in (
        main.inner_text()
    )
    assert page.get_by_label("Monthly cap (USD)").input_value() == "1000"
    limit = SpendLimit.objects.get(organization=world.org)
    assert (limit.monthly_cap_micros, limit.thresholds) == (1_000_000_000, [50, 80, 90])
    shoot(page, "limits-saved")

    # Earlier this month the organization spent just under half; one more request crosses it.
    daily_usage(world.org, datetime.now(world.org.tzinfo).date(), 499_999_990)
    seed_prices()
    configure_upstream(organization=world.org, base_url=simulator.url,
                       api_key="sk-sim-browser", actor=None)  # fmt: skip
    raw, _ = mint_key(world.admin, world.org.workspaces.get(is_default=True))
    client = anthropic.Anthropic(api_key=raw, base_url=gateway.url, max_retries=0)
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True  # as `make run` runs tasks; a Celery worker elsewhere
    try:
        client.messages.create(model=MODEL, max_tokens=64,
                               messages=[{"role": "user", "content": "Hello"}])  # fmt: skip
        drain_usage()
        client.messages.create(model=MODEL, max_tokens=64,
                               messages=[{"role": "user", "content": "Again"}])  # fmt: skip
        drain_usage()
    finally:
        app.conf.task_always_eager = eager
    alerts = list(SpendAlert.objects.filter(limit=limit))
    assert [(a.threshold, a.status) for a in alerts] == [(50, AlertStatus.SENT)]
    subjects = [(m.to[0], m.subject) for m in mail.outbox if "spent 50%" in m.subject]
    assert sorted(subjects) == [
        ("admin@example.com",
         "[Console] Organization Acme Support has spent 50% of its $1,000.00 monthly limit"),
        ("finance@example.com",
         "[Console] Organization Acme Support has spent 50% of its $1,000.00 monthly limit"),
    ]  # fmt: skip
    page.reload()
    assert "50% · fired" in main.inner_text()
    shoot(page, "limits-alert-fired")
    page.goto("/o/acme-support/")
    assert "$500.00" in main.inner_text()  # the finance home leads with the month's spend
    shoot(page, "finance-home")

    admin = new_page()
    log_in(admin, "admin@example.com", PASSWORD)
    admin.goto("/o/acme-support/audit/")
    log = admin.locator("main").inner_text()
    assert "Changed a spending limit" in log and "finance@example.com" in log
    assert "Changed a spending limit's alert thresholds" in log
    assert "Sent a spending alert" in log
    shoot(admin, "audit-log")
