"""Security events of an account are audited (and always recorded): a changed password, MFA
recovery codes regenerated, an authenticator removed. Sign-in, sign-up and reset:
tests/test_accounts.py."""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

from audit.models import AuditEvent

from .factories import PASSWORD, UserFactory
from .test_accounts import log_in, totp_code

pytestmark = pytest.mark.django_db


def signed_in_with_totp(client):
    user = UserFactory()
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    RecoveryCodes.activate(user)
    assert log_in(client, user.email)["Location"] == "/accounts/2fa/authenticate/"
    assert (
        client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)}).status_code == 302
    )
    return user, secret


def post_after_reauthenticating(client, path):
    """allauth asks for the password again before MFA changes, then carries out the change it
    set aside. (Not the TOTP code: the one used to sign in a moment ago is refused again.)"""
    response = client.post(path)
    assert response.status_code == 302 and "reauthenticate" in response["Location"]
    return client.post(response["Location"], {"password": PASSWORD})


def test_a_password_change_is_audited(client):
    user = UserFactory()
    log_in(client, user.email)
    response = client.post(
        "/accounts/password/change/",
        {"oldpassword": PASSWORD, "password1": "another-long-phrase-42",
         "password2": "another-long-phrase-42"},
        REMOTE_ADDR="203.0.113.5",
    )  # fmt: skip
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="user.password_changed")
    assert (event.actor, event.ip_address) == (user, "203.0.113.5")
    assert "another-long-phrase-42" not in str(event.after)


def test_regenerating_recovery_codes_is_audited(client, django_capture_on_commit_callbacks):
    user, _ = signed_in_with_totp(client)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_after_reauthenticating(client, "/accounts/2fa/recovery-codes/generate/")
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="user.mfa_reset")
    assert event.actor == user and event.after == {"type": "recovery_codes"}


def test_removing_an_authenticator_is_audited(client, django_capture_on_commit_callbacks):
    user, _ = signed_in_with_totp(client)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_after_reauthenticating(client, "/accounts/2fa/totp/deactivate/")
    assert response.status_code == 302, response.content.decode()[:500]
    assert not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    # TOTP goes, and the recovery codes that came with it: one event each.
    removed = AuditEvent.objects.filter(action="user.mfa_removed", actor=user)
    assert sorted(e.after["type"] for e in removed) == ["recovery_codes", "totp"]
