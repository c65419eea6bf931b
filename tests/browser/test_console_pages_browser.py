"""The console as a newcomer meets it, in a real browser: every main page at 1280 and 390 px
(screenshots in var/screenshots/console-*.png, looked at when pages change), every list's row
actions reachable at phone width, and the sign-in pages in the console's layout."""

import datetime as dt
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from apikeys import services as key_services
from audit.models import AuditEvent
from console.management.commands.seed_demo import DEFAULT_PASSWORD
from members import services as member_services
from members.models import Membership, Role
from tests.console_urls import list_pages

from .conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
WIDTHS = (1280, 390)
SLUG = "acme-support"
MAIN_PAGES = [
    "org_home", "members:list", "members:invitations", "apikeys:list", "apikeys:admin_keys",
    "workspaces", "usage:overview", "billing:overview", "billing:limits", "billing:invoices",
    "audit_log", "org_settings", "gateway:upstream", "members:invite", "apikeys:create",
]  # fmt: skip


def demo_with_keys():
    """The demo organization with what a newcomer makes in the first hour: keys (one rotated,
    one revoked by the Admin) and a pending invitation."""
    call_command("seed_demo")
    admin = Membership.objects.get(organization__slug=SLUG, user__email="admin@example.com")
    dev = Membership.objects.get(organization__slug=SLUG, user__email="dev@example.com")
    development = dev.organization.workspaces.get(name="Development")
    for name in ("Development", "CI runner", "Laptop"):
        key_services.create_api_key(
            membership=dev, workspace=development, name=name, actor=dev.user
        )
    production = key_services.create_api_key(
        membership=admin,
        workspace=admin.organization.workspaces.get(name="Production"),
        name="Production",
        actor=admin.user,
    ).key
    key_services.rotate_api_key(key=production, overlap=dt.timedelta(hours=24), actor=admin.user)
    laptop = dev.organization.api_keys.get(name="Laptop")
    key_services.revoke_api_key(key=laptop, actor=admin.user)
    member_services.invite_member(
        organization=admin.organization, email="new.hire@example.com", role=Role.MEMBER,
        actor=admin.user,
    )  # fmt: skip


def shoot(page, name: str, width: int) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"console-{name}-{width}.png"), full_page=True)


def test_every_main_page_at_desktop_and_phone_width(new_page):
    demo_with_keys()
    page = new_page()
    log_in(page, "admin@example.com", DEFAULT_PASSWORD)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name in MAIN_PAGES:
            response = page.goto(reverse(name, args=[SLUG]))
            assert response.status == 200, name
            page.wait_for_load_state("networkidle")
            # Nothing wider than the screen: no sideways scrolling of the page itself.
            overflow = page.evaluate("document.documentElement.scrollWidth") - width
            assert overflow <= 0, f"{name} at {width} px is {overflow} px too wide"
            shoot(page, name.replace(":", "-"), width)


def test_at_phone_width_every_lists_row_actions_are_reachable(new_page):
    demo_with_keys()
    page = new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, "admin@example.com", DEFAULT_PASSWORD)
    checked = []
    for name in list_pages():
        page.goto(reverse(name, args=[SLUG]))
        buttons = page.locator("#table-region [data-testid=row-actions]")
        for index in range(buttons.count()):
            button = buttons.nth(index)
            button.scroll_into_view_if_needed()
            box = button.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, (name, index)
            button.click()
            menu = button.locator("xpath=following-sibling::div[contains(@class,'dropdown-menu')]")
            first = menu.locator(".dropdown-item").first
            first.wait_for(state="visible")
            item = first.bounding_box()
            assert item["x"] >= 0 and item["x"] + item["width"] <= 390, (name, index)
            page.keyboard.press("Escape")
            checked.append(name)
    # The demo's lists that have rows with actions were all seen.
    assert {"apikeys:list", "members:list", "members:invitations", "workspaces"} <= set(checked)


def test_the_sign_in_pages_are_in_the_consoles_layout(new_page):
    call_command("seed_demo")
    page = new_page()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in [
            ("login", "/accounts/login/"),
            ("signup", "/accounts/signup/"),
            ("password-reset", "/accounts/password/reset/"),
        ]:
            page.goto(path)
            # The console's navigation bar, stylesheet and card; allauth's stock pages have none.
            assert page.locator("nav .navbar-brand").inner_text() == "Console"
            assert page.locator("main.auth-card .card").count() == 1, name
            card = page.locator("main .card-body").bounding_box()
            fields = page.locator("main input:not([type=hidden]):not([type=checkbox])")
            assert fields.count() >= 1, name
            for index in range(fields.count()):
                # console.css's fields: the card's width, not the browser's stock 20 characters.
                assert fields.nth(index).bounding_box()["width"] >= card["width"] * 0.8, name
            assert page.locator("main button[type=submit].btn-primary").count() >= 1, name
            shoot(page, f"account-{name}", width)
    log_in(page, "admin@example.com", DEFAULT_PASSWORD)
    page.goto("/accounts/2fa/")
    assert page.locator("nav .navbar-brand").inner_text() == "Console"
    shoot(page, "account-2fa", 1280)


def test_admin_filters_the_audit_log_to_keys_revoked_in_the_last_7_days_and_downloads_the_csv(
    new_page,
):
    demo_with_keys()
    # An older revocation, outside the 7 days: it must not be in the download.
    admin = Membership.objects.get(organization__slug=SLUG, user__email="admin@example.com")
    old = key_services.create_api_key(
        membership=admin, workspace=admin.organization.workspaces.get(name="Testing"),
        name="Old experiment", actor=admin.user,
    ).key  # fmt: skip
    key_services.revoke_api_key(key=old, actor=admin.user)
    revoked_old = AuditEvent.objects.get(action="apikey.revoked", target_id=str(old.pk))
    # Audit rows are append-only: the test moves this one back in time with the trigger off.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute(
            "UPDATE audit_auditevent SET created_at = created_at - interval '10 days' "
            "WHERE id = %s",
            [revoked_old.pk],
        )
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")

    page = new_page()
    log_in(page, "admin@example.com", DEFAULT_PASSWORD)
    page.goto(reverse("audit_log", args=[SLUG]))
    page.select_option("select[name=action]", label="Revoked an API key")
    page.wait_for_url("**action=apikey.revoked**")
    page.select_option("select[name=period]", label="Last 7 days")
    page.wait_for_url("**period=7d**")
    rows = page.locator("#table-region tbody tr")
    assert rows.count() == 1
    assert "revoked API key Laptop" in rows.first.inner_text()
    shoot(page, "audit-revoked-7d", 1280)
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    lines = Path(download.path()).read_text().splitlines()
    assert len(lines) == 2, lines
    assert "Laptop" in lines[1] and "Old experiment" not in "".join(lines)
