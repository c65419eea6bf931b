"""Who may sign up: `CONSOLE_SIGNUP=open` (make run) lets anyone create an account and an
organization; `invite` (production's default) lets only invited addresses create accounts and
only site operators create organizations (`manage.py create_organization`)."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse

from members.models import Invitation, InvitationStatus, Membership, Role, User
from orgs.models import Organization

from .factories import UserFactory
from .test_members_invitations import LINK, SIGNUP_PASSWORD, invite, link_path

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def sign_up(client, email):
    return client.post(
        reverse("account_signup"),
        {"email": email, "name": "Someone", "password1": SIGNUP_PASSWORD,
         "password2": SIGNUP_PASSWORD},
    )  # fmt: skip


@pytest.fixture
def invite_only(settings):
    settings.CONSOLE_SIGNUP = "invite"
    return settings


def test_production_settings_close_sign_up():
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.CONSOLE_SIGNUP)"
    env = {k: v for k, v in os.environ.items() if k not in {"CONSOLE_SETTINGS", "DEBUG"}}
    env.update(
        CONSOLE_ENV_FILE=str(ROOT / ".env.example"), DJANGO_SETTINGS_MODULE="console.settings"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "invite"


def test_an_unknown_setting_value_stops_the_process(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text((ROOT / ".env.example").read_text() + "\nCONSOLE_SIGNUP=sometimes\n")
    env = {k: v for k, v in os.environ.items() if k not in {"CONSOLE_SETTINGS", "DEBUG"}}
    env.update(CONSOLE_ENV_FILE=str(env_file))
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "CONSOLE_SIGNUP must be open or invite" in result.stderr


def test_invite_only_sign_up_refuses_an_address_without_an_invitation(client, invite_only):
    page = client.get(reverse("account_signup")).content.decode()
    assert "Sign-up is by invitation" in page
    sign_up(client, "stranger@example.com")
    assert not User.objects.filter(email="stranger@example.com").exists()


def test_invite_only_sign_up_takes_the_invited_address_from_its_link(
    client, world, invite_only, django_capture_on_commit_callbacks
):
    invite(client, world, "newcomer@example.com", capture=django_capture_on_commit_callbacks)
    client.logout()
    [message] = [m for m in mail.outbox if m.to == ["newcomer@example.com"]]
    client.get(link_path(message))
    response = sign_up(client, "newcomer@example.com")
    assert response.status_code == 302, response.content.decode()
    assert User.objects.filter(email="newcomer@example.com").exists()


def test_invite_only_sign_up_refuses_another_address_than_the_invited_one(
    client, world, invite_only, django_capture_on_commit_callbacks
):
    invite(client, world, "newcomer@example.com", capture=django_capture_on_commit_callbacks)
    client.logout()
    [message] = [m for m in mail.outbox if m.to == ["newcomer@example.com"]]
    client.get(link_path(message))
    response = sign_up(client, "friend-of-newcomer@example.com")
    assert response.status_code == 200
    assert "has no invitation" in " ".join(response.context["form"].errors["email"])
    assert not User.objects.filter(email="friend-of-newcomer@example.com").exists()


def test_invite_only_organizations_are_created_by_site_operators(client, invite_only):
    user = UserFactory()
    client.force_login(user)
    page = client.get(reverse("org_create"))
    assert page.status_code == 403
    assert "create_organization" in page.content.decode()
    client.post(reverse("org_create"), {"name": "Sneaky", "slug": "sneaky"})
    assert not Organization.objects.filter(slug="sneaky").exists()
    operator = UserFactory(is_staff=True)
    client.force_login(operator)
    response = client.post(reverse("org_create"), {"name": "Official", "slug": "official"})
    assert response.status_code == 302
    assert Membership.objects.get(organization__slug="official").user == operator


def test_open_sign_up_lets_anyone_create_an_organization(client, settings):
    settings.CONSOLE_SIGNUP = "open"
    client.force_login(UserFactory())
    response = client.post(reverse("org_create"), {"name": "Mine", "slug": "mine"})
    assert response.status_code == 302


def test_an_operator_creates_an_organization_and_invites_its_first_admin(
    django_capture_on_commit_callbacks,
):
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("create_organization", "--name", "Initech", "--admin", "Boss@Initech.test",
                     stdout=out)  # fmt: skip
    organization = Organization.objects.get(name="Initech")
    assert organization.slug == "initech"
    invitation = Invitation.objects.get(organization=organization)
    assert (invitation.email, invitation.role) == ("boss@initech.test", Role.ADMIN)
    assert invitation.status == InvitationStatus.PENDING
    [message] = [m for m in mail.outbox if m.to == ["boss@initech.test"]]
    assert LINK.search(message.body)
    assert "Invitation sent to boss@initech.test" in out.getvalue()
    assert LINK.search(out.getvalue()) is None  # the link goes by email only


def test_an_operator_makes_an_existing_user_admin_of_a_new_organization():
    user = UserFactory(email="known@example.com")
    call_command("create_organization", "--name", "Globex 2", "--slug", "globex-2",
                 "--admin", "known@example.com", stdout=StringIO())  # fmt: skip
    membership = Membership.objects.get(organization__slug="globex-2")
    assert (membership.user, membership.role) == (user, Role.ADMIN)


def test_create_organization_refuses_a_taken_slug_in_words():
    call_command("create_organization", "--name", "Dup", "--admin", "a@example.com",
                 stdout=StringIO())  # fmt: skip
    with pytest.raises(CommandError, match="slug"):
        call_command("create_organization", "--name", "Dup", "--admin", "b@example.com",
                     stdout=StringIO())  # fmt: skip
