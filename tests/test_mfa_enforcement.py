"""An organization's "Require MFA" holds per session: a session must have signed in with a second
factor, not merely belong to a user who has one; a member who must enrol re-authenticates first,
and the enrolment is audited and emailed to the account."""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import generate_totp_secret
from django.core import mail
from django.urls import reverse

from audit.models import AuditEvent

from .factories import PASSWORD
from .test_accounts import log_in, totp_code

pytestmark = pytest.mark.django_db


@pytest.fixture
def strict_org(world):
    world.org.require_mfa = True
    world.org.save()
    return world


def give_totp(user) -> str:
    secret = generate_totp_secret()
    Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": secret})
    return secret


def test_a_password_only_session_is_refused_once_the_user_has_enrolled_elsewhere(
    client, strict_org
):
    user = strict_org.member.user
    assert log_in(client, user.email)["Location"] == "/"  # no TOTP yet: password only
    give_totp(user)  # enrolled from another browser
    response = client.get(f"/o/{strict_org.org.slug}/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_reauthenticate"))


def test_the_session_gets_in_after_proving_the_second_factor(client, strict_org):
    user = strict_org.member.user
    log_in(client, user.email)
    secret = give_totp(user)
    org_home = f"/o/{strict_org.org.slug}/"
    client.post(reverse("mfa_reauthenticate"), {"code": totp_code(secret)})
    assert client.get(org_home).status_code == 200


def test_a_session_that_signed_in_with_totp_gets_in(client, strict_org):
    user = strict_org.member.user
    secret = give_totp(user)
    assert log_in(client, user.email)["Location"] == reverse("mfa_authenticate")
    client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert client.get(f"/o/{strict_org.org.slug}/").status_code == 200


def test_a_session_without_any_sign_in_record_is_refused(client, strict_org):
    user = strict_org.member.user
    give_totp(user)
    client.force_login(user)  # a session that never proved anything here
    response = client.get(f"/o/{strict_org.org.slug}/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("mfa_reauthenticate"))


@pytest.mark.django_db(transaction=True)  # allauth announces the enrolment on commit
def test_enrolling_for_the_org_asks_for_the_password_again_and_is_audited_and_emailed(
    client, strict_org
):
    user = strict_org.member.user
    log_in(client, user.email)
    response = client.get(f"/o/{strict_org.org.slug}/")
    assert response["Location"] == reverse("mfa_activate_totp")
    # Knowing the password is asked again before a second factor can be added.
    response = client.get(reverse("mfa_activate_totp"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    client.post(response["Location"], {"password": PASSWORD})
    client.get(reverse("mfa_activate_totp"))
    secret = client.session["mfa.totp.secret"]
    mail.outbox.clear()
    response = client.post(reverse("mfa_activate_totp"), {"code": totp_code(secret)})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="user.mfa_added", actor=user).exists()
    [notice] = [m for m in mail.outbox if m.to == [user.email]]
    assert "authenticator" in notice.subject.lower() or "two-factor" in notice.subject.lower()
    # The session that just proved the new factor is let in.
    assert client.get(f"/o/{strict_org.org.slug}/").status_code == 200


def test_an_org_without_the_requirement_takes_a_password_session(client, world):
    user = world.member.user
    log_in(client, user.email)
    give_totp(user)
    assert client.get(f"/o/{world.org.slug}/").status_code == 200
