"""Step 2 of the guide in a real browser: the Admin invites the finance person as Billing-only;
the invitee opens the emailed link in their own browser, signs up, and sees what the role allows."""

import re

import pytest
from django.core import mail

from members.models import Membership, Role
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory

from .conftest import log_in

LINK = re.compile(r"https?://[^/\s]+(/invitations/[^/\s]+/)")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_invites_finance_as_billing_only_and_they_join_from_the_email(new_page):
    org = OrganizationFactory(name="Support Bot", slug="support-bot")
    MembershipFactory(
        organization=org, role=Role.ADMIN, user=UserFactory(email="lead@supportbot.test")
    )

    admin = new_page()
    log_in(admin, "lead@supportbot.test", PASSWORD)
    admin.goto("/o/support-bot/members/")
    admin.get_by_role("link", name="Invite member").click()
    admin.fill("input[name=email]", "finance@supportbot.test")
    admin.get_by_label("Billing-only").check()
    admin.get_by_role("button", name="Send invitation").click()
    admin.wait_for_url("**/o/support-bot/members/invitations/")
    assert (
        "Invitation sent to finance@supportbot.test as Billing-only"
        in admin.locator("main").inner_text()
    )
    assert admin.locator("#table-region").get_by_text("finance@supportbot.test").is_visible()

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["finance@supportbot.test"]
    link = LINK.search(mail.outbox[0].body).group(1)

    invitee = new_page()
    invitee.goto(link)
    invitee.wait_for_url("**/invitations/accept/")
    assert "to join Support Bot as Billing-only" in invitee.locator("main").inner_text()
    invitee.get_by_role("link", name="Sign up").click()
    assert invitee.input_value("input[name=email]") == "finance@supportbot.test"
    invitee.fill("input[name=name]", "Fran Finance")
    invitee.fill("input[name=password1]", "a-long-unusual-passphrase-91")
    invitee.fill("input[name=password2]", "a-long-unusual-passphrase-91")
    invitee.locator("form button[type=submit]").last.click()
    invitee.wait_for_url("**/invitations/accept/")
    invitee.get_by_role("button", name="Join Support Bot").click()
    invitee.wait_for_url("**/o/support-bot/")

    sidebar = invitee.get_by_test_id("sidebar")
    links = [text.strip() for text in sidebar.locator("a").all_inner_texts()]
    assert "Billing" in links and "Usage" in links
    assert "Members" not in links and "API Keys" not in links
    assert "You joined as Billing-only" in invitee.locator("main").inner_text()

    membership = Membership.objects.get(organization=org, user__email="finance@supportbot.test")
    assert membership.role == Role.BILLING
    # No second email: the link already proved the address.
    assert len(mail.outbox) == 1
