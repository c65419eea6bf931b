"""Security headers and sessions: a Content-Security-Policy that allows no inline script (and
templates that need none), sessions that expire, production's HTTPS settings, and the password
asked again before creating an Admin key, changing a role or changing an upstream."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from apikeys.models import AdminKey
from gateway.models import UpstreamConfig
from members.models import Membership, Role
from tests.factories import PASSWORD

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {
        part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()
    }  # fmt: skip


def test_pages_carry_a_csp_without_inline_scripts(client, world):
    pages = [
        (None, "/accounts/login/"),
        (world.admin.user, reverse("org_home", args=[world.org.slug])),
    ]
    for user, path in pages:
        if user:
            client.force_login(user)
        response = client.get(path)
        assert response.status_code == 200, path
        directives = csp_directives(response)
        assert directives["script-src"] == ["'self'"], directives
        assert "'unsafe-inline'" not in directives["default-src"]
        assert directives["frame-ancestors"] == ["'none'"]
        assert directives["object-src"] == ["'none'"]
        assert response["X-Frame-Options"] == "DENY"


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
HANDLER = re.compile(r"\s(on[a-z]+|hx-on[:\w-]*)\s*=", re.I)


def test_templates_have_no_inline_script_or_event_handler():
    """The CSP would block them: behaviour lives in static/console/console.js."""
    found = []
    for path in (ROOT / "templates").rglob("*.html"):
        if "emails" in path.parts:  # mail clients, not browsers under our CSP
            continue
        text = path.read_text()
        found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in INLINE_SCRIPT.finditer(text)]
        found += [f"{path.relative_to(ROOT)}: {m.group(1)}=" for m in HANDLER.finditer(text)]
        if "javascript:" in text:
            found.append(f"{path.relative_to(ROOT)}: javascript: URL")
    assert found == []


def test_the_check_can_fail():
    assert INLINE_SCRIPT.search("<script>alert(1)</script>")
    assert not INLINE_SCRIPT.search('<script src="/static/x.js"></script>')
    assert HANDLER.search('<button onclick="x()">') and HANDLER.search("<a hx-on:click='x'>")


def test_sessions_expire(settings):
    assert 0 < settings.SESSION_COOKIE_AGE <= 24 * 3600
    assert settings.SESSION_COOKIE_HTTPONLY


def test_production_sets_https_only_cookies_and_hsts():
    import subprocess
    import sys

    code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS >= 31536000,"
        " s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_INCLUDE_SUBDOMAINS)"
    )
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "CONSOLE_SETTINGS")}
    env["CONSOLE_ENV_FILE"] = str(ROOT / ".env.example")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True"] * 5


# -- re-authentication ---------------------------------------------------------------------------


@pytest.fixture
def signed_in(client, world, settings):
    """The Admin signed in through the login form, with reauthentication on (as in production);
    the last password is then older than the reauthentication window."""
    settings.CONSOLE_REAUTHENTICATION = True
    settings.ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
    response = client.post(
        reverse("account_login"), {"login": world.admin.user.email, "password": PASSWORD}
    )
    assert response.status_code == 302
    session = client.session
    for record in session.get("account_authentication_methods", []):
        record["at"] -= 3600  # signed in an hour ago
    session.save()
    return client


def reauthenticate(client, response, password=PASSWORD):
    """Follow the redirect to allauth's reauthenticate page and give the password there."""
    assert response.status_code == 302, response.status_code
    assert response["Location"].startswith(reverse("account_reauthenticate")), response["Location"]
    page = client.get(response["Location"])
    assert page.status_code == 200
    return client.post(response["Location"], {"password": password})


def test_creating_an_admin_key_asks_for_the_password_then_creates_it(signed_in, world):
    url = reverse("apikeys:admin_key_create", args=[world.org.slug])
    assert signed_in.get(url).status_code == 200  # the form opens freely
    held = signed_in.post(url, {"name": "Terraform"})
    assert not AdminKey.objects.exists()  # nothing done before the password
    wrong = reauthenticate(signed_in, held, password="not-the-password")
    assert wrong.status_code == 200 and not AdminKey.objects.exists()
    done = reauthenticate(signed_in, held)  # the held POST is carried out: the new key shown
    assert done.status_code == 200 and "Terraform" in done.content.decode()
    assert AdminKey.objects.filter(name="Terraform", organization=world.org).count() == 1
    # Within the next five minutes, no second question.
    again = signed_in.post(url, {"name": "Second"})
    assert again.status_code == 200 and AdminKey.objects.filter(name="Second").exists()


def test_changing_a_role_asks_for_the_password(signed_in, world):
    url = reverse("members:role", args=[world.org.slug, world.member.pk])
    held = signed_in.post(url, {"role": Role.BILLING})
    assert Membership.objects.get(pk=world.member.pk).role == Role.MEMBER
    reauthenticate(signed_in, held)
    assert Membership.objects.get(pk=world.member.pk).role == Role.BILLING


def test_the_upstream_page_asks_for_the_password_first_and_never_holds_a_key(signed_in, world):
    url = reverse("gateway:upstream", args=[world.org.slug])
    values = {"base_url": "https://a.example", "api_key": "sk-ant-api03-new-key-WXYZ",
              "timeout_seconds": 60, "action": "save"}  # fmt: skip
    # A POST without a recent password: not saved, not held (the key would wait in the session).
    late = signed_in.post(url, values)
    assert late.status_code == 302 and late["Location"].startswith(
        reverse("account_reauthenticate")
    )
    assert not UpstreamConfig.objects.filter(organization=world.org).exists()
    from django.contrib.sessions.models import Session

    assert not any("new-key-WXYZ" in str(s.get_decoded()) for s in Session.objects.all())
    # The page asks for the password before it opens, then saves at once.
    page = signed_in.get(url)
    assert page.status_code == 302 and page["Location"].startswith(
        reverse("account_reauthenticate")
    )
    reauthenticate(signed_in, page)
    assert signed_in.get(url).status_code == 200
    assert signed_in.post(url, values).status_code == 302
    assert UpstreamConfig.objects.get(organization=world.org, workspace=None).base_url == (
        "https://a.example"
    )


def test_a_member_is_refused_before_being_asked_for_a_password(client, world, settings):
    settings.CONSOLE_REAUTHENTICATION = True
    client.force_login(world.member.user)
    url = reverse("apikeys:admin_key_create", args=[world.org.slug])
    assert client.post(url, {"name": "x"}).status_code == 403
