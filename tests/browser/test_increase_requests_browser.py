"""The limit request flow in a real browser: a Member asks for a higher cap on their workspace,
the Billing-only member approves it with a lower cap. Screenshots at 1280 and 390 px
(var/screenshots/billing-limit-requests-*)."""

import pytest

from tests.factories import PASSWORD

from .conftest import log_in
from .test_billing_browser import shoot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_member_asks_for_a_higher_cap_and_finance_approves_it(world, new_page):
    from billing.models import SpendLimit

    member = new_page()
    log_in(member, "dev@example.com", PASSWORD)
    member.goto("/o/acme-support/billing/")
    member.get_by_role("link", name="Limit requests").click()
    member.select_option("select[name=target]", label="Workspace Development")
    member.fill("input[name=cap]", "300")
    member.fill("textarea[name=reason]", "Load tests for the launch")
    member.get_by_role("button", name="Send request").click()
    assert "Request sent" in member.locator("main").inner_text()
    shoot(member, "limit-requests-member")

    finance = new_page()
    log_in(finance, "finance@example.com", PASSWORD)
    finance.goto("/o/acme-support/billing/limit-requests/")
    table = finance.get_by_test_id("increase-requests")
    assert "dev@example.com" in table.inner_text() and "$300.00" in table.inner_text()
    shoot(finance, "limit-requests-finance")
    finance.get_by_role("link", name="Approve").click()
    finance.fill("input[name=cap]", "250")
    shoot(finance, "limit-request-approve")
    finance.get_by_role("button", name="Approve and set the limit").click()
    assert "may now spend $250.00 a month" in finance.locator("main").inner_text()
    limit = SpendLimit.objects.get(scope="workspace", workspace=world.workspace)
    assert limit.monthly_cap_micros == 250_000_000
