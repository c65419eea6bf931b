"""The demo users in a real browser: the Admin sees the org home and the Company sidebar; the
Billing-only user sees no API Keys entry."""

import pytest
from django.core.management import call_command

from console.management.commands.seed_demo import DEFAULT_PASSWORD

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sidebar_labels(page) -> list[str]:
    return [label.strip() for label in page.locator("[data-testid=sidebar] a").all_inner_texts()]


def test_demo_admin_sees_org_home_and_sidebar(new_page):
    call_command("seed_demo")
    page = new_page()
    log_in(page, "admin@example.com", DEFAULT_PASSWORD)
    page.wait_for_url("**/o/acme-support/")
    assert page.locator("h1").inner_text() == "Acme Support"
    assert sidebar_labels(page) == [
        "Overview", "Members", "API Keys", "Billing", "Usage", "Settings", "Workspaces", "Audit log",
    ]  # fmt: skip
    page.click("[data-testid=sidebar] >> text=Workspaces")
    page.wait_for_url("**/workspaces/")
    names = page.locator("tbody tr td:first-child").all_inner_texts()
    assert names == ["Default", "Development", "Production", "Testing"]
    # Sorting swaps just the table (htmx), and pushes the sorted URL.
    page.locator("thead").get_by_text("Name").click()
    page.wait_for_url("**sort=-name**")
    names = page.locator("tbody tr td:first-child").all_inner_texts()
    assert names == ["Testing", "Production", "Development", "Default"]
    assert page.locator("[data-testid=sidebar]").count() == 1  # not a page nested in the table


def test_billing_only_user_sees_no_api_keys_entry(new_page):
    call_command("seed_demo")
    page = new_page()
    log_in(page, "finance@example.com", DEFAULT_PASSWORD)
    page.wait_for_url("**/o/acme-support/")
    labels = sidebar_labels(page)
    assert "Billing" in labels and "Usage" in labels
    assert "API Keys" not in labels and "Members" not in labels
    # The page itself is refused too, with the console's 403 page.
    response = page.goto("/o/acme-support/api-keys/")
    assert response.status == 403
    assert "does not allow" in page.content()


def test_sidebar_works_at_phone_width(new_page):
    call_command("seed_demo")
    page = new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, "dev@example.com", DEFAULT_PASSWORD)
    page.wait_for_url("**/o/acme-support/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    sidebar = page.locator("[data-testid=sidebar]")
    assert not sidebar.is_visible()  # folded away behind the menu button
    page.click("button[aria-controls=sidebar]")
    sidebar.get_by_text("API Keys").wait_for(state="visible")


def test_typing_in_a_lists_search_box_filters_without_submitting(new_page):
    call_command("seed_demo")
    page = new_page()
    log_in(page, "admin@example.com", DEFAULT_PASSWORD)
    page.goto("/o/acme-support/workspaces/")
    page.locator("input[type=search][name=q]").press_sequentially("prod")  # no Enter, no click
    page.wait_for_url("**q=prod**")
    assert page.locator("tbody tr td:first-child").all_inner_texts() == ["Production"]
    assert page.locator("[data-testid=sidebar]").count() == 1  # the table was swapped alone
