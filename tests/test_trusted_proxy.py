"""Behind a proxy (`TRUSTED_PROXY_COUNT`), the client's address is the one the proxy saw: login
rate limits key on it (and on the account), and audit rows record it. Without trusted proxies, a
client's own X-Forwarded-For is ignored."""

import pytest
from django.urls import reverse

from audit.models import AuditEvent

from .factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"


def log_in(client, email, password, *, client_ip, forwarded_for=None):
    chain = forwarded_for if forwarded_for is not None else client_ip
    return client.post(
        reverse("account_login"),
        {"login": email, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=chain,
    )


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def behind_one_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    return settings


def test_failed_logins_from_one_client_do_not_lock_out_others_behind_the_same_proxy(
    client, behind_one_proxy
):
    # One attacker guesses passwords of many accounts: the per-address limit stops them...
    for n in range(12):
        log_in(client, f"victim{n}@example.com", "guess", client_ip="203.0.113.7")
    refused = log_in(client, "victim99@example.com", "guess", client_ip="203.0.113.7")
    assert "Too many failed login attempts" in refused.content.decode()
    # ...and not everyone else arriving through the same proxy.
    user = UserFactory()
    response = log_in(client, user.email, PASSWORD, client_ip="198.51.100.20")
    assert response.status_code == 302
    assert signed_in(client)


def test_failed_logins_are_limited_per_account_from_any_address(client, behind_one_proxy):
    user = UserFactory()
    for n in range(5):
        log_in(client, user.email, "wrong-guess", client_ip=f"203.0.113.{n + 1}")
    response = log_in(client, user.email, PASSWORD, client_ip="198.51.100.20")
    assert "Too many failed login attempts" in response.content.decode()
    assert not signed_in(client)
    # Another account is not affected.
    other = UserFactory()
    assert log_in(client, other.email, PASSWORD, client_ip="203.0.113.1").status_code == 302


def test_audit_rows_record_the_client_address_not_the_proxys(client, behind_one_proxy):
    user = UserFactory()
    log_in(client, user.email, PASSWORD, client_ip="198.51.100.20",
           forwarded_for="192.0.2.66, 198.51.100.20")  # fmt: skip
    event = AuditEvent.objects.get(action="user.logged_in", actor=user)
    # The proxy appended the address it saw; what the client wrote before it is not trusted.
    assert event.ip_address == "198.51.100.20"


def test_without_trusted_proxies_a_forwarded_for_header_is_ignored(client, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    user = UserFactory()
    log_in(client, user.email, PASSWORD, client_ip="198.51.100.20")
    assert AuditEvent.objects.get(action="user.logged_in", actor=user).ip_address == PROXY


def test_production_reads_the_trusted_proxy_count_for_allauth_too(tmp_path):
    import os
    import subprocess
    import sys

    from .test_production_settings import ROOT

    env_file = tmp_path / "env"
    env_file.write_text((ROOT / ".env.example").read_text() + "\nTRUSTED_PROXY_COUNT=2\n")
    env = {k: v for k, v in os.environ.items() if k not in {"CONSOLE_SETTINGS", "DEBUG"}}
    env.update(CONSOLE_ENV_FILE=str(env_file), DJANGO_SETTINGS_MODULE="console.settings")
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.TRUSTED_PROXY_COUNT, settings.ALLAUTH_TRUSTED_PROXY_COUNT)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2"]
