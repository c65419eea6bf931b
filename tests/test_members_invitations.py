"""Inviting members by email: the invitation's life from the Admin's form to the invitee's first
page in the organization, and every way a link can be out of date, damaged or in the wrong hands."""

import re
import threading
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.core import mail, signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from members import invitation_links, services
from members.models import Invitation, InvitationStatus, Membership, Role
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://[^/\s]+(/invitations/[^/\s]+/)")
SIGNUP_PASSWORD = "a-long-unusual-passphrase-91"


def invite(client, world, email, role="member", *, capture, **extra):
    """The Admin submits the invite form; returns the response (emails go out on commit)."""
    client.force_login(world.admin.user)
    with capture(execute=True):
        return client.post(
            reverse("members:invite", args=[world.org.slug]),
            {"email": email, "role": role, **extra},
        )


def link_path(message) -> str:
    match = LINK.search(message.body)
    assert match, message.body
    return match.group(1)


def invitation_for(email) -> Invitation:
    return Invitation.objects.get(email=email)


# The whole lifecycle --------------------------------------------------------------------------


def test_invitee_signs_up_from_the_emailed_link_and_joins_with_the_invited_role(
    client, world, django_capture_on_commit_callbacks
):
    response = invite(
        client, world, "pat@acme.test", "billing", capture=django_capture_on_commit_callbacks
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("members:invitations", args=[world.org.slug])

    # The email: subject, plain text and HTML, to the invited address, with the link.
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["pat@acme.test"]
    assert "invited you to join Acme Support" in message.subject
    assert "Billing-only" in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and link_path(message) in html
    path = link_path(message)

    invitation = invitation_for("pat@acme.test")
    assert invitation.status == InvitationStatus.PENDING
    assert invitation.role == Role.BILLING
    assert invitation.invited_by == world.admin.user
    assert timedelta(days=6, hours=23) < invitation.expires_at - timezone.now() <= timedelta(days=7)
    # The link's token is not stored: only its hash.
    token = signing.loads(path.split("/")[2], salt=invitation_links.SALT)["t"]
    assert token not in invitation.token_hash
    assert invitation.token_hash == invitation_links.hash_token(token)

    # The invitee, not signed in, follows the link: the token leaves the address bar.
    client.logout()
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == reverse("invitations:accept")
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "Sign up" in page.content.decode()
    assert "email=pat%40acme.test" in page.context["signup_url"]
    # The Sign in link fills the address in too, for someone who has an account already.
    sign_in = client.get(page.context["login_url"])
    assert sign_in.context["form"]["login"].value() == "pat@acme.test"
    assert 'value="pat@acme.test"' in sign_in.content.decode()

    # Sign up through allauth with the invited address: no second verification email.
    response = client.post(
        page.context["signup_url"],
        {
            "email": "pat@acme.test",
            "password1": SIGNUP_PASSWORD,
            "password2": SIGNUP_PASSWORD,
            "name": "Pat Finance",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("invitations:accept")
    assert len(mail.outbox) == 1
    assert EmailAddress.objects.get(email="pat@acme.test").verified

    page = client.get(reverse("invitations:accept"))
    assert page.status_code == 200
    assert "Join Acme Support" in page.content.decode()
    response = client.post(reverse("invitations:accept"))
    assert response.status_code == 302
    assert response["Location"] == reverse("org_home", args=[world.org.slug])

    membership = Membership.objects.get(organization=world.org, user__email="pat@acme.test")
    assert membership.role == Role.BILLING
    assert [w.name for w in membership.workspaces.all()] == ["Default"]
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.ACCEPTED
    assert invitation.accepted_by == membership.user
    actions = list(
        AuditEvent.objects.filter(organization=world.org)
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions[-3:] == ["member.invited", "member.joined", "invitation.accepted"]

    # The new member is in: the org home opens.
    assert client.get(reverse("org_home", args=[world.org.slug])).status_code == 200

    # The link works once.
    response = client.get(path)
    assert response.status_code == 410
    assert "already been used" in response.content.decode()


def test_invited_workspaces_are_given_on_join(client, world, django_capture_on_commit_callbacks):
    invite(
        client,
        world,
        "dev2@acme.test",
        "member",
        capture=django_capture_on_commit_callbacks,
        workspaces=[world.workspace.pk],
    )
    invitation = invitation_for("dev2@acme.test")
    assert list(invitation.workspaces.all()) == [world.workspace]
    user = UserFactory(email="dev2@acme.test")
    membership = services.accept_invitation(
        invitation=invitation, token_hash=invitation.token_hash, user=user
    )
    assert list(membership.workspaces.all()) == [world.workspace]


def test_an_existing_user_signs_in_from_the_link_and_joins(
    client, world, django_capture_on_commit_callbacks
):
    invite(
        client,
        world,
        "Outsider@Globex.test",
        "member",
        capture=django_capture_on_commit_callbacks,
    )
    path = link_path(mail.outbox[0])
    client.logout()
    client.get(path)
    response = client.post(
        reverse("account_login"), {"login": "outsider@globex.test", "password": PASSWORD}
    )
    # After signing in, allauth brings the invitee back to the invitation.
    assert response.status_code == 302
    assert response["Location"] == reverse("invitations:accept")
    client.post(reverse("invitations:accept"))
    membership = Membership.objects.get(organization=world.org, user=world.outsider.user)
    assert membership.role == Role.MEMBER
    # Their own organization is untouched.
    assert Membership.objects.filter(user=world.outsider.user).count() == 2


# Links that no longer work --------------------------------------------------------------------


def test_an_expired_invitation_link_says_so(client, world, django_capture_on_commit_callbacks):
    invite(client, world, "late@acme.test", capture=django_capture_on_commit_callbacks)
    path = link_path(mail.outbox[0])
    Invitation.objects.filter(email="late@acme.test").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    client.logout()
    response = client.get(path)
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert not Membership.objects.filter(user__email="late@acme.test").exists()


def test_an_invitation_expiring_between_open_and_accept_is_refused(
    client, world, django_capture_on_commit_callbacks
):
    invite(client, world, "outsider@globex.test", capture=django_capture_on_commit_callbacks)
    path = link_path(mail.outbox[0])
    client.force_login(world.outsider.user)
    assert client.get(path).status_code == 302
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.post(reverse("invitations:accept"))
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert not Membership.objects.filter(organization=world.org, user=world.outsider.user).exists()


def test_a_revoked_invitation_link_stops_working(client, world, django_capture_on_commit_callbacks):
    invite(client, world, "gone@acme.test", capture=django_capture_on_commit_callbacks)
    path = link_path(mail.outbox[0])
    invitation = invitation_for("gone@acme.test")
    revoke_url = reverse("members:invitation_revoke", args=[world.org.slug, invitation.pk])
    # GET asks for confirmation and changes nothing.
    assert client.get(revoke_url).status_code == 200
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.PENDING
    client.post(revoke_url)
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.REVOKED
    assert AuditEvent.objects.filter(action="invitation.revoked", target_id=invitation.pk).exists()
    client.logout()
    response = client.get(path)
    assert response.status_code == 410
    assert "withdrawn" in response.content.decode()


def test_a_revoked_invitation_cannot_be_accepted_from_an_open_session(
    client, world, django_capture_on_commit_callbacks
):
    invite(client, world, "outsider@globex.test", capture=django_capture_on_commit_callbacks)
    path = link_path(mail.outbox[0])
    invitation = invitation_for("outsider@globex.test")
    services.revoke_invitation(invitation=invitation, actor=world.admin.user)
    client.force_login(world.outsider.user)
    response = client.get(path)
    assert response.status_code == 410
    # Even with the token hash in hand, the service refuses.
    with pytest.raises(ValidationError, match="withdrawn"):
        services.accept_invitation(
            invitation=invitation, token_hash=invitation.token_hash, user=world.outsider.user
        )


def test_resend_sends_a_new_link_with_a_new_expiry_and_kills_the_old_link(
    client, world, django_capture_on_commit_callbacks
):
    invite(client, world, "again@acme.test", capture=django_capture_on_commit_callbacks)
    old_path = link_path(mail.outbox[0])
    invitation = invitation_for("again@acme.test")
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() + timedelta(hours=1)
    )
    resend_url = reverse("members:invitation_resend", args=[world.org.slug, invitation.pk])
    assert client.get(resend_url).status_code == 200
    assert len(mail.outbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        client.post(resend_url)
    assert len(mail.outbox) == 2
    new_path = link_path(mail.outbox[1])
    assert new_path != old_path
    invitation.refresh_from_db()
    assert invitation.expires_at - timezone.now() > timedelta(days=6)
    assert AuditEvent.objects.filter(action="invitation.resent", target_id=invitation.pk).exists()
    client.logout()
    response = client.get(old_path)
    assert response.status_code == 410
    assert "replaced by a newer invitation" in response.content.decode()
    assert client.get(new_path).status_code == 302


def test_an_expired_invitation_can_be_resent(client, world, django_capture_on_commit_callbacks):
    invite(client, world, "slow@acme.test", capture=django_capture_on_commit_callbacks)
    invitation = invitation_for("slow@acme.test")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now())
    services.expire_invitations()
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.EXPIRED
    assert AuditEvent.objects.filter(action="invitation.expired").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("members:invitation_resend", args=[world.org.slug, invitation.pk]))
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.PENDING
    client.logout()
    assert client.get(link_path(mail.outbox[-1])).status_code == 302


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),  # signature edited
        lambda token: token[: len(token) // 2],  # cut short
        lambda token: "x" + token,  # payload edited
        lambda token: "garbage",
    ],
)
def test_a_tampered_link_gets_a_clear_page_not_an_error(
    client, world, django_capture_on_commit_callbacks, tamper
):
    invite(client, world, "pat@acme.test", capture=django_capture_on_commit_callbacks)
    token = link_path(mail.outbox[0]).split("/")[2]
    client.logout()
    response = client.get(reverse("invitations:open", args=[tamper(token)]))
    assert response.status_code == 400
    assert "damaged or incomplete" in response.content.decode()
    assert invitation_links.SESSION_KEY not in client.session


def test_a_validly_signed_link_with_a_made_up_token_is_refused(
    client, world, django_capture_on_commit_callbacks
):
    invite(client, world, "pat@acme.test", capture=django_capture_on_commit_callbacks)
    invitation = invitation_for("pat@acme.test")
    forged = invitation_links.link_token(invitation.pk, "guessed-token")
    client.logout()
    response = client.get(reverse("invitations:open", args=[forged]))
    assert response.status_code == 410
    assert invitation_links.SESSION_KEY not in client.session
    unknown = invitation_links.link_token(invitation.pk + 1000, "whatever")
    assert client.get(reverse("invitations:open", args=[unknown])).status_code == 404


def test_the_accept_page_without_an_invitation_in_progress_explains(client):
    response = client.get(reverse("invitations:accept"))
    assert response.status_code == 200
    assert "no invitation in progress" in response.content.decode()
    # Posting there without one changes nothing and does not fail.
    assert client.post(reverse("invitations:accept")).status_code == 200


# The wrong person -----------------------------------------------------------------------------


def test_an_account_with_another_email_cannot_accept(
    client, world, django_capture_on_commit_callbacks
):
    invite(client, world, "pat@acme.test", capture=django_capture_on_commit_callbacks)
    path = link_path(mail.outbox[0])
    client.force_login(world.outsider.user)
    client.get(path)
    page = client.get(reverse("invitations:accept"))
    assert page.status_code == 403
    text = page.content.decode()
    assert "sent to pat@acme.test" in text and "signed in as outsider@globex.test" in text
    response = client.post(reverse("invitations:accept"))
    assert response.status_code == 403
    assert not Membership.objects.filter(organization=world.org, user=world.outsider.user).exists()
    assert invitation_for("pat@acme.test").status == InvitationStatus.PENDING
    invitation = invitation_for("pat@acme.test")
    with pytest.raises(ValidationError, match=re.escape("sent to pat@acme.test")):
        services.accept_invitation(
            invitation=invitation, token_hash=invitation.token_hash, user=world.outsider.user
        )


def test_signing_up_with_another_address_does_not_verify_it(
    client, world, django_capture_on_commit_callbacks
):
    invite(client, world, "pat@acme.test", capture=django_capture_on_commit_callbacks)
    client.logout()
    client.get(link_path(mail.outbox[0]))
    client.post(
        reverse("account_signup"),
        {"email": "someone-else@acme.test", "password1": SIGNUP_PASSWORD,
         "password2": SIGNUP_PASSWORD},
    )  # fmt: skip
    address = EmailAddress.objects.get(email="someone-else@acme.test")
    assert not address.verified
    assert not Membership.objects.filter(user__email="someone-else@acme.test").exists()


# Refusals at invite time ----------------------------------------------------------------------


@pytest.mark.parametrize("email", ["not-an-email", "pat@", "@acme.test", "pat acme@test", ""])
def test_a_malformed_address_gets_a_form_error(
    client, world, django_capture_on_commit_callbacks, email
):
    response = invite(client, world, email, capture=django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert response.context["form"].errors["email"]
    assert not Invitation.objects.exists()
    assert not mail.outbox


def test_the_service_refuses_a_malformed_address_too(world):
    with pytest.raises(ValidationError, match="valid email"):
        services.invite_member(
            organization=world.org, email="nope", role=Role.MEMBER, actor=world.admin.user,
        )  # fmt: skip


@pytest.mark.parametrize("email", ["dev@example.com", "DEV@Example.com"])
def test_inviting_an_existing_member_is_refused(
    client, world, django_capture_on_commit_callbacks, email
):
    response = invite(client, world, email, capture=django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert "already a member of Acme Support" in str(response.context["form"].errors["email"])
    assert not Invitation.objects.exists()


def test_inviting_an_address_with_a_pending_invitation_is_refused(
    client, world, django_capture_on_commit_callbacks
):
    invite(client, world, "pat@acme.test", capture=django_capture_on_commit_callbacks)
    response = invite(client, world, "PAT@acme.test", capture=django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert "already has a pending invitation" in str(response.context["form"].errors["email"])
    assert Invitation.objects.count() == 1
    assert len(mail.outbox) == 1


def test_an_expired_invitation_does_not_block_a_new_one(
    client, world, django_capture_on_commit_callbacks
):
    invite(client, world, "pat@acme.test", capture=django_capture_on_commit_callbacks)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(days=1))
    response = invite(client, world, "pat@acme.test", capture=django_capture_on_commit_callbacks)
    assert response.status_code == 302
    states = sorted(Invitation.objects.values_list("status", flat=True))
    assert states == [InvitationStatus.EXPIRED, InvitationStatus.PENDING]


def test_the_database_allows_one_pending_invitation_per_address(world):
    Invitation.objects.create(organization=world.org, email="pat@acme.test", token_hash="a" * 64)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invitation.objects.create(
            organization=world.org, email="Pat@Acme.test", token_hash="b" * 64
        )
    # Another organization, or a closed invitation, is fine.
    Invitation.objects.create(
        organization=world.other_org, email="pat@acme.test", token_hash="c" * 64
    )
    Invitation.objects.create(
        organization=world.org, email="pat@acme.test", token_hash="d" * 64, status="revoked"
    )


@pytest.mark.parametrize("role", ["owner", "ADMIN", "", "superuser"])
def test_roles_outside_the_three_are_refused(
    client, world, django_capture_on_commit_callbacks, role
):
    response = invite(
        client, world, "pat@acme.test", role, capture=django_capture_on_commit_callbacks
    )
    assert response.status_code == 200
    assert response.context["form"].errors["role"]
    assert not Invitation.objects.exists()
    with pytest.raises(ValidationError):
        services.invite_member(
            organization=world.org, email="pat@acme.test", role=role, actor=world.admin.user,
        )  # fmt: skip


def test_the_database_refuses_an_invitation_role_outside_the_three(world):
    with pytest.raises(IntegrityError), transaction.atomic():
        Invitation.objects.create(
            organization=world.org, email="pat@acme.test", role="owner", token_hash="a" * 64
        )


def test_workspaces_of_another_organization_are_refused(world):
    with pytest.raises(ValidationError, match="this organization"):
        services.invite_member(
            organization=world.org, email="pat@acme.test", role=Role.MEMBER,
            workspaces=[world.other_workspace], actor=world.admin.user,
        )  # fmt: skip


# The member limit -----------------------------------------------------------------------------


@override_settings(CONSOLE_SUPPORT_CONTACT="ops@acme.test")
def test_member_limit_counts_pending_invitations(client, world, django_capture_on_commit_callbacks):
    world.org.member_limit = 5  # 3 members already
    world.org.save(update_fields=["member_limit"])
    for email in ["one@acme.test", "two@acme.test"]:
        response = invite(client, world, email, capture=django_capture_on_commit_callbacks)
        assert response.status_code == 302
    response = invite(client, world, "three@acme.test", capture=django_capture_on_commit_callbacks)
    assert response.status_code == 200
    errors = " ".join(response.context["form"].non_field_errors())
    assert "Acme Support has reached its member limit" in errors
    assert "contact ops@acme.test" in errors
    assert not Invitation.objects.filter(email="three@acme.test").exists()
    assert len(mail.outbox) == 2

    # Revoking a pending invitation frees its seat; so does an expiry.
    services.revoke_invitation(invitation=invitation_for("one@acme.test"), actor=None)
    assert (
        invite(
            client, world, "three@acme.test", capture=django_capture_on_commit_callbacks
        ).status_code
        == 302
    )
    Invitation.objects.filter(email="two@acme.test").update(expires_at=timezone.now())
    assert (
        invite(
            client, world, "four@acme.test", capture=django_capture_on_commit_callbacks
        ).status_code
        == 302
    )


@override_settings(CONSOLE_SUPPORT_CONTACT="ops@acme.test")
def test_seats_used_of_the_limit_show_before_inviting_and_invite_is_disabled_when_full(
    client, world
):
    world.org.member_limit = 5  # 3 members already
    world.org.save(update_fields=["member_limit"])
    services.invite_member(
        organization=world.org, email="one@acme.test", role=Role.MEMBER, actor=world.admin.user
    )
    client.force_login(world.admin.user)
    members_url = reverse("members:list", args=[world.org.slug])
    home_url = reverse("org_home", args=[world.org.slug])
    invite_url = reverse("members:invite", args=[world.org.slug])

    def text(url, testid):
        page = client.get(url).content.decode()
        found = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</(p|div)>', page, re.S)
        return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split()) if found else None

    assert text(members_url, "seats").startswith(
        "4 of 5 seats used: 3 members and 1 pending invitation."
    )
    assert text(home_url, "home-seats") == "4 of 5 seats used (1 pending invitation)"
    page = client.get(members_url).content.decode()
    assert f'href="{invite_url}"' in page and "invite-disabled" not in page

    services.invite_member(
        organization=world.org, email="two@acme.test", role=Role.MEMBER, actor=world.admin.user
    )
    page = client.get(members_url).content.decode()
    assert f'href="{invite_url}"' not in page
    assert re.search(r'<button[^>]*disabled[^>]*data-testid="invite-disabled"', page)
    reason = text(members_url, "seats-full")
    assert "Every seat is taken (5 of 5)" in reason and "contact ops@acme.test" in reason
    assert text(home_url, "home-seats").endswith("· full")
    assert text(reverse("members:invitations", args=[world.org.slug]), "seats-full") == reason
    form = client.get(invite_url).content.decode()
    assert re.search(r'<button class="btn btn-primary" type="submit" disabled', form)
    assert "Every seat is taken" in form


def test_no_pending_invitations_offers_to_invite(client, world):
    client.force_login(world.admin.user)
    page = client.get(reverse("members:invitations", args=[world.org.slug])).content.decode()
    assert "No pending invitations" in page
    assert "Invite a member" in page


def test_resending_an_expired_invitation_needs_a_free_seat(world):
    invitation = services.invite_member(
        organization=world.org, email="pat@acme.test", role=Role.MEMBER, actor=world.admin.user,
    )  # fmt: skip
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now())
    world.org.member_limit = 3
    world.org.save(update_fields=["member_limit"])
    with pytest.raises(ValidationError, match="member limit"):
        services.resend_invitation(invitation=invitation, actor=world.admin.user)


# Concurrency ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_of_one_invitation_make_one_membership(world):
    invitation = services.invite_member(
        organization=world.org, email="outsider@globex.test", role=Role.MEMBER,
        actor=world.admin.user,
    )  # fmt: skip
    barrier = threading.Barrier(2)
    outcomes = []

    def accept():
        try:
            barrier.wait()
            services.accept_invitation(
                invitation=invitation, token_hash=invitation.token_hash, user=world.outsider.user
            )
            outcomes.append("joined")
        except ValidationError as error:
            outcomes.append(" ".join(error.messages))
        finally:
            connection.close()

    threads = [threading.Thread(target=accept) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == sorted(
        ["joined", "This invitation has already been used. Each invitation link works once."]
    )
    assert Membership.objects.filter(organization=world.org, user=world.outsider.user).count() == 1
    assert AuditEvent.objects.filter(action="member.joined").count() == 1


def test_accepting_when_already_a_member_closes_the_invitation_without_a_duplicate(world):
    invitation = services.invite_member(
        organization=world.org, email="outsider@globex.test", role=Role.BILLING,
        actor=world.admin.user,
    )  # fmt: skip
    existing = services.add_member(
        organization=world.org, user=world.outsider.user, role=Role.MEMBER, actor=None
    )
    membership = services.accept_invitation(
        invitation=invitation, token_hash=invitation.token_hash, user=world.outsider.user
    )
    assert membership.pk == existing.pk
    assert Membership.objects.filter(organization=world.org, user=world.outsider.user).count() == 1
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.ACCEPTED


# The Admin's list of invitations ---------------------------------------------------------------


def test_invitations_tab_lists_pending_invitations_by_default(
    client, world, django_capture_on_commit_callbacks
):
    invite(client, world, "pending@acme.test", capture=django_capture_on_commit_callbacks)
    invite(client, world, "revoked@acme.test", capture=django_capture_on_commit_callbacks)
    services.revoke_invitation(invitation=invitation_for("revoked@acme.test"), actor=None)
    url = reverse("members:invitations", args=[world.org.slug])

    def listed(**params):
        table = client.get(url, params).context["table"]
        return sorted((row.record.email, row.get_cell("state")) for row in table.rows)

    assert listed() == [("pending@acme.test", "Pending")]
    assert listed(state="") == [("pending@acme.test", "Pending"), ("revoked@acme.test", "Revoked")]
    Invitation.objects.filter(email="pending@acme.test").update(expires_at=timezone.now())
    assert listed(state="expired") == [("pending@acme.test", "Expired")]
    assert listed() == []
    export = client.get(url, {"state": "", "_export": "csv"})
    body = b"".join(export.streaming_content if export.streaming else [export.content]).decode()
    lines = body.splitlines()
    assert lines[0] == "Email,Role,Workspaces,Invited by,Sent,Expires,Status,Created,Closed"
    assert "revoked@acme.test" in body and "Revoked" in body
    revoked = invitation_for("revoked@acme.test")
    revoked_row = next(line for line in lines if line.startswith("revoked@acme.test,"))
    created, closed = (
        t.isoformat(timespec="seconds") for t in (revoked.created_at, revoked.closed_at)
    )
    assert revoked_row.endswith(f",Revoked,{created},{closed}")


def test_a_non_admin_sees_who_can_invite_and_no_invite_form(client, world):
    for membership in (world.member, world.billing):
        client.force_login(membership.user)
        response = client.get(reverse("members:invite", args=[world.org.slug]))
        assert response.status_code == 403
        text = response.content.decode()
        assert "Only Admins can" in text and "invite" in text
        assert "admin@example.com" in text
        assert 'name="email"' not in text
        posted = client.post(
            reverse("members:invite", args=[world.org.slug]),
            {"email": "x@acme.test", "role": "admin"},
        )
        assert posted.status_code == 403
    assert not Invitation.objects.exists()


def test_the_email_link_is_on_the_consoles_address_whatever_host_the_admin_used(
    client, world, django_capture_on_commit_callbacks, settings
):
    settings.CONSOLE_BASE_URL = "https://console.example.com"
    client.force_login(world.admin.user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("members:invite", args=[world.org.slug]),
            {"email": "pat@acme.test", "role": "member"},
            headers={"host": "localhost"},
        )
    body = mail.outbox[0].body
    assert "https://console.example.com/invitations/" in body and "localhost" not in body
    assert "Sent by Console (https://console.example.com/) for Acme Support." in body


def test_no_email_is_sent_when_the_invitation_is_rolled_back(world):
    with pytest.raises(RuntimeError), transaction.atomic():
        services.invite_member(
            organization=world.org, email="pat@acme.test", role=Role.MEMBER,
            actor=world.admin.user,
        )  # fmt: skip
        raise RuntimeError("roll back")
    assert not mail.outbox
    assert not Invitation.objects.exists()


def test_a_second_browser_cannot_use_the_first_ones_session(
    client, world, django_capture_on_commit_callbacks
):
    """The accept page acts on the invitation this browser opened a link of, nothing else."""
    invite(client, world, "outsider@globex.test", capture=django_capture_on_commit_callbacks)
    other = Client()
    other.force_login(world.outsider.user)
    response = other.post(reverse("invitations:accept"))
    assert response.status_code == 200
    assert not Membership.objects.filter(organization=world.org, user=world.outsider.user).exists()
