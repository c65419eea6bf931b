"""Resending invitations is throttled, per invitation and per organization per hour, so an Admin
(or a script with an Admin's session) cannot turn the console into a mail cannon."""

import pytest
from django.core import mail
from django.urls import reverse

from audit.models import AuditEvent
from members import services
from members.models import Invitation, Role

pytestmark = pytest.mark.django_db


def resend(client, world, invitation, capture):
    with capture(execute=True):
        return client.post(
            reverse("members:invitation_resend", args=[world.org.slug, invitation.pk]),
            follow=True,
        )


def test_one_invitation_is_resent_at_most_three_times_an_hour(
    client, world, django_capture_on_commit_callbacks
):
    invitation = services.invite_member(
        organization=world.org, email="patient@acme.test", role=Role.MEMBER, actor=None
    )
    client.force_login(world.admin.user)
    for _ in range(3):
        page = resend(client, world, invitation, django_capture_on_commit_callbacks)
        assert "Invitation sent again" in page.content.decode()
    mail.outbox.clear()
    page = resend(client, world, invitation, django_capture_on_commit_callbacks)
    text = page.content.decode()
    assert "sent 3 times in the last hour" in text and "Try again after" in text
    assert mail.outbox == []
    assert AuditEvent.objects.filter(action="invitation.resent").count() == 3
    assert services.RESENDS_PER_INVITATION_PER_HOUR == 3


def test_an_organization_resends_at_most_twenty_invitations_an_hour(world):
    invitations = [
        services.invite_member(
            organization=world.org, email=f"p{n}@acme.test", role=Role.MEMBER, actor=None
        )
        for n in range(8)
    ]
    sent = 0
    refusal = ""
    for invitation in invitations * 3:
        try:
            services.resend_invitation(invitation=invitation, actor=world.admin.user)
            sent += 1
        except services.ValidationError as error:
            refusal = " ".join(error.messages)
    assert "20 invitations were resent in the last hour" in refusal
    assert sent == 20 == services.RESENDS_PER_ORGANIZATION_PER_HOUR
    # Another organization is not held back.
    other = services.invite_member(
        organization=world.other_org, email="x@globex.test", role=Role.MEMBER, actor=None
    )
    services.resend_invitation(invitation=other, actor=world.outsider.user)
    assert Invitation.objects.filter(organization=world.other_org).count() == 1
