"""Step 3 of the guide in a real browser: a developer (Member) creates a "Development" key in the
Development workspace, copies it from the page — the only time it is shown; a reload does not make another — then
revokes it."""

import re

import pytest

from apikeys.keyformat import KEY_PATTERN
from apikeys.models import ApiKey
from apikeys.verification import Failure, verify_key
from tests.factories import PASSWORD

from .conftest import log_in


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_member_creates_copies_and_revokes_a_key_that_is_never_shown_again(world, new_page):
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, "dev@example.com", PASSWORD)
    page.goto("/o/acme-support/api-keys/")
    page.get_by_role("link", name="Create Key").click()
    page.fill("input[name=name]", "Development")
    page.select_option("select[name=workspace]", label="Development")
    page.get_by_role("button", name="Create Key").click()

    main = page.locator("main")
    assert "Copy the key now: you won't see it again" in main.inner_text()
    key = page.get_by_test_id("new-key").input_value()
    assert re.fullmatch(KEY_PATTERN, key)
    assert verify_key(key).ok
    page.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == key
    assert key not in page.url

    # A reload resubmits the form: nothing is minted, and the key is not shown again.
    page.reload()
    assert "Development was created already" in main.inner_text()
    assert "A key is shown only once" in main.inner_text()
    assert key not in page.content()
    assert ApiKey.objects.filter(name="Development").count() == 1
    page.get_by_role("link", name="Back to API keys").click()
    page.wait_for_url("**/o/acme-support/api-keys/")
    assert key not in page.content()
    row = page.locator("#table-region tr", has_text="Development")
    assert row.get_by_text(key[:8]).is_visible()  # the prefix…last4 only
    row.get_by_role("button", name="Actions for Development").click()
    row.get_by_role("link", name="Revoke").click()
    page.wait_for_url("**/revoke/")
    assert "Revoke Development?" in main.inner_text()
    page.get_by_role("button", name="Revoke key").click()
    page.wait_for_url("**/o/acme-support/api-keys/")
    assert "Development is revoked" in main.inner_text()
    row = page.locator("#table-region tr", has_text="Development")
    assert row.locator("[data-status=revoked]").inner_text() == "Revoked"
    assert verify_key(key).failure == Failure.REVOKED

    page.reload()
    assert key not in page.content()
    assert page.locator("#table-region [data-status=revoked]").count() == 1
    page.goto("/o/acme-support/api-keys/new/")
    assert key not in page.content()
