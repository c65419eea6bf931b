"""The Content-Security-Policy in a real browser: the demo Admin walks the main pages (htmx table
sorting, the usage chart, the statement's month picker and print button) and chromium reports
no violation of the policy."""

import pytest
from django.core.management import call_command

from console.management.commands.seed_demo import DEFAULT_PASSWORD

from .conftest import csp_violations, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = ("", "members/", "api-keys/", "usage/", "billing/", "billing/statements/", "audit/",
         "settings/", "workspaces/")  # fmt: skip


def test_the_main_pages_break_no_rule_of_the_policy(new_page):
    call_command("seed_demo")
    page = new_page()
    violations = csp_violations(page)
    log_in(page, "admin@example.com", DEFAULT_PASSWORD)
    page.wait_for_url("**/o/acme-support/")
    for path in PAGES:
        response = page.goto(f"/o/acme-support/{path}")
        assert response.status == 200, path
        page.wait_for_load_state("networkidle")
    page.goto("/o/acme-support/workspaces/")
    page.locator("thead").get_by_text("Name").click()  # htmx swaps the table
    page.wait_for_url("**sort=-name**")
    # Scripts ran: htmx is loaded and the policy header reached the browser.
    assert page.evaluate("typeof htmx") == "object"
    assert violations == [], violations
