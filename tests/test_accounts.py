"""Accounts through django-allauth: sign-up with email verification, login and its rate limit,
MFA (TOTP + recovery codes), the Django admin signing in through allauth, and the audit trail."""

import re

import pytest
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail
from django.core.cache import cache

from audit.models import AuditEvent

from .factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def log_in(client, email, password=PASSWORD):
    return client.post(LOGIN, {"login": email, "password": password})


def totp_code(secret: str) -> str:
    import time

    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def test_sign_up_requires_verifying_the_email_address(client):
    response = client.post(
        "/accounts/signup/",
        {"email": "new@example.com", "name": "New Person", "password1": "a-long-pass-phrase-1",
         "password2": "a-long-pass-phrase-1"},
    )  # fmt: skip
    assert response["Location"] == "/accounts/confirm-email/"
    assert client.get("/").status_code == 302  # not signed in yet
    assert log_in(client, "new@example.com", "a-long-pass-phrase-1")["Location"] == (
        "/accounts/confirm-email/"
    )
    [message] = [m for m in mail.outbox if "new@example.com" in m.to][-1:]
    link = re.search(r"http://127.0.0.1:8000(/accounts/confirm-email/[^\s]+)", message.body).group(
        1
    )
    client.post(link)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/orgs/new/"
    assert AuditEvent.objects.filter(
        action="user.signed_up", actor_label="new@example.com"
    ).exists()


def test_login_and_logout_are_audited(client):
    user = UserFactory()
    assert log_in(client, user.email)["Location"] == "/"
    client.post("/accounts/logout/")
    actions = list(
        AuditEvent.objects.filter(actor=user).order_by("id").values_list("action", flat=True)
    )
    assert actions == ["user.logged_in", "user.logged_out"]


def test_a_failed_login_is_audited_without_the_password(client):
    user = UserFactory()
    response = log_in(client, user.email, "wrong-password-xyz")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="user.login_failed")
    assert event.actor_label == user.email
    assert "wrong-password-xyz" not in str(event.after)


def test_repeated_failed_logins_are_rate_limited_in_the_shared_cache(client):
    user = UserFactory()
    for _ in range(5):
        log_in(client, user.email, "wrong-password-xyz")
    response = log_in(client, user.email)  # even the right password is refused for now
    assert response.status_code in (200, 429)
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # The counter lives in Redis (the real cache), so every server process sees it.
    assert any(b"login_failed" in key for key in cache._cache.get_client().keys("*"))


def test_the_django_admin_signs_in_through_allauth(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    login = client.get(response["Location"])
    assert login.status_code == 302 and login["Location"].startswith(LOGIN)


def test_totp_setup_then_login_asks_for_a_code(client, django_capture_on_commit_callbacks):
    user = UserFactory()
    log_in(client, user.email)
    response = client.get("/accounts/2fa/totp/activate/")
    if response.status_code == 302:  # allauth asks for the password again before MFA changes
        assert response["Location"].startswith("/accounts/reauthenticate/")
        client.post(response["Location"], {"password": PASSWORD})
        response = client.get("/accounts/2fa/totp/activate/")
    assert response.status_code == 200
    secret = client.session["mfa.totp.secret"]
    # allauth announces the new authenticator once the transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="user.mfa_added", actor=user).exists()
    # Recovery codes come with TOTP.
    assert client.get("/accounts/2fa/recovery-codes/").status_code == 200

    client.post("/accounts/logout/")
    response = log_in(client, user.email)
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in client.session
    response = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert "_auth_user_id" not in client.session
    response = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_password_reset_by_email_is_audited(client, django_capture_on_commit_callbacks):
    user = UserFactory()
    client.post("/accounts/password/reset/", {"email": user.email})
    [message] = [m for m in mail.outbox if user.email in m.to]
    link = re.search(
        r"http://127.0.0.1:8000(/accounts/password/reset/key/[^\s]+)", message.body
    ).group(1)
    form_url = client.get(link)["Location"]  # allauth moves the key out of the URL first
    response = client.post(
        form_url, {"password1": "a-brand-new-phrase-9", "password2": "a-brand-new-phrase-9"}
    )
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="user.password_reset", actor=user).exists()
    assert log_in(client, user.email, "a-brand-new-phrase-9")["Location"] == "/"
