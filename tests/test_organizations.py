"""The guide's "Step 1: Create an Organization", switching between organizations, requiring MFA.
The settings page: tests/test_organization_settings.py."""

import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from members.models import Membership, Role
from orgs.models import Organization, Workspace

from .factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_user_without_organization_is_sent_to_create_one(client):
    client.force_login(UserFactory())
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("org_create")
    assert "not in any organization yet" in client.get(response["Location"]).content.decode()


def test_creating_an_organization_makes_the_creator_admin_with_a_default_workspace(client):
    user = UserFactory()
    client.force_login(user)
    response = client.post(reverse("org_create"), {"name": "Acme Support", "slug": ""})
    organization = Organization.objects.get(slug="acme-support")
    assert response["Location"] == f"/o/{organization.slug}/"
    membership = Membership.objects.get(organization=organization, user=user)
    assert membership.role == Role.ADMIN
    assert list(organization.workspaces.values_list("name", "is_default")) == [("Default", True)]
    actions = set(
        AuditEvent.objects.filter(organization=organization).values_list("action", flat=True)
    )
    assert {"org.created", "member.added"} <= actions


@pytest.mark.parametrize(
    ("name", "slug", "field", "message"),
    [
        ("", "acme", "name", "This field is required"),
        ("   ", "acme", "name", "This field is required"),
        ("Acme", "Acme Corp", "slug", "lowercase letters"),
        ("Acme", "ab", "slug", "at least 3"),
        ("Acme", "-acme", "slug", "lowercase letters"),
        ("Acme", "admin", "slug", "reserved"),
        ("!!", "", "name", "at least 3 letters or digits"),
        ("Admin", "", "name", "“admin”, which is reserved"),
    ],
)
def test_invalid_organization_input_gets_a_form_error_and_creates_nothing(
    client, name, slug, field, message
):
    client.force_login(UserFactory())
    response = client.post(reverse("org_create"), {"name": name, "slug": slug})
    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert not Organization.objects.exists()
    assert not Workspace.objects.exists()


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Acme_Labs", "acme-labs"), ("Acme__ _Labs", "acme-labs"), ("_Acme - Labs_", "acme-labs")],
)
def test_an_empty_slug_is_made_from_the_name(client, name, slug):
    client.force_login(UserFactory())
    response = client.post(reverse("org_create"), {"name": name, "slug": ""})
    assert response.status_code == 302
    assert Organization.objects.get().slug == slug


def test_a_taken_slug_made_from_the_name_is_the_names_error(client):
    OrganizationFactory(slug="acme-labs")
    client.force_login(UserFactory())
    response = client.post(reverse("org_create"), {"name": "Acme Labs", "slug": ""})
    errors = response.context["form"].errors
    assert "slug" not in errors
    assert "“acme-labs”, which is already taken" in " ".join(errors["name"])


def test_a_taken_slug_is_refused_with_a_form_error(client):
    OrganizationFactory(slug="acme")
    client.force_login(UserFactory())
    response = client.post(reverse("org_create"), {"name": "Acme", "slug": "acme"})
    assert "already taken" in " ".join(response.context["form"].errors["slug"])
    assert Organization.objects.count() == 1


def test_user_in_several_organizations_switches_between_them(client):
    user = UserFactory()
    first = MembershipFactory(user=user, role=Role.ADMIN).organization
    second = MembershipFactory(user=user, role=Role.MEMBER).organization
    client.force_login(user)
    page = client.get(f"/o/{first.slug}/").content.decode()
    assert f"/o/{second.slug}/" in page  # the switcher lists the other organization
    client.get(f"/o/{second.slug}/")
    # Home returns to the organization used last.
    assert client.get("/")["Location"] == f"/o/{second.slug}/"


def test_org_requiring_mfa_sends_a_member_without_it_to_set_it_up(client, world):
    world.org.require_mfa = True
    world.org.save()
    client.force_login(world.member.user)
    response = client.get(f"/o/{world.org.slug}/")
    assert response.status_code == 302 and response["Location"] == reverse("mfa_activate_totp")
    # Another org without the requirement is unaffected.
    assert client.get("/orgs/new/").status_code == 200


def test_org_requiring_mfa_lets_a_member_who_signed_in_with_totp_in(client, world):
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import generate_totp_secret

    from .test_accounts import log_in, totp_code

    secret = generate_totp_secret()
    Authenticator.objects.create(
        user=world.member.user, type=Authenticator.Type.TOTP, data={"secret": secret}
    )
    world.org.require_mfa = True
    world.org.save()
    log_in(client, world.member.user.email)
    client.post(reverse("mfa_authenticate"), {"code": totp_code(secret)})
    assert client.get(f"/o/{world.org.slug}/").status_code == 200
    # More about sessions and the second factor: tests/test_mfa_enforcement.py.


def test_org_home_tells_non_admins_who_can_invite_and_how_to_leave(client, world):
    client.force_login(world.member.user)
    page = client.get(f"/o/{world.org.slug}/").content.decode()
    assert "Only Admins can invite members" in page and "admin@example.com" in page
    assert f"/o/{world.org.slug}/members/leave/" in page
    client.force_login(world.admin.user)
    assert (
        "Only Admins can invite members" not in client.get(f"/o/{world.org.slug}/").content.decode()
    )


def test_org_home_walks_admins_through_the_guides_production_setup(client, world):
    from apikeys.services import create_api_key
    from billing import services as billing_services

    def steps(membership):
        client.force_login(membership.user)
        page = client.get(f"/o/{world.org.slug}/").content.decode()
        return re.findall(r'data-done="(\w+)"', page)

    # The world has members already: organization and team are done, keys and limit are not.
    assert steps(world.admin) == ["yes", "yes", "no", "no", "ongoing"]
    create_api_key(membership=world.member, workspace=world.workspace, name="Development",
                   actor=None)  # fmt: skip
    billing_services.save_spend_limit(organization=world.org, actor=None, enabled=True,
                                      cap_micros=1_000_000_000, thresholds=[50, 80, 90])  # fmt: skip
    assert steps(world.admin) == ["yes", "yes", "yes", "yes", "ongoing"]
    assert steps(world.member) == [] and steps(world.billing) == []  # Admins set it up
