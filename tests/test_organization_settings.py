"""The guide's "Organization Settings": name, slug (old links redirect; reserved and taken slugs
refused), default workspace, time zone, audit logging, require MFA, raw-usage retention, the
spike factor, and the member limit shown. Every change is audited."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from apikeys.services import create_api_key
from audit.models import AuditEvent
from orgs import services as org_services
from orgs.models import FormerSlug, Organization, Workspace

pytestmark = pytest.mark.django_db


def settings_data(world, **changes) -> dict:
    data = {
        "name": world.org.name,
        "slug": world.org.slug,
        "default_workspace": world.org.workspaces.get(is_default=True).pk,
        "timezone": world.org.timezone,
        "audit_logging": "on",
        "usage_retention_months": world.org.usage_retention_months,
        "spike_factor": world.org.spike_factor,
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def post_settings(client, world, **changes):
    client.force_login(world.admin.user)
    url = reverse("org_settings", args=[world.org.slug])
    return client.post(url, settings_data(world, **changes))


def test_admin_changes_every_setting_and_each_change_is_audited(client, world):
    response = post_settings(
        client,
        world,
        name="Acme Support EU",
        slug="acme-eu",
        require_mfa="on",
        default_workspace=world.workspace.pk,
        timezone="Europe/Paris",
        usage_retention_months=24,
        spike_factor="2.5",
        REMOTE_ADDR="198.51.100.7",
    )
    assert response.status_code == 302 and response["Location"] == "/o/acme-eu/settings/"
    org = Organization.objects.get(pk=world.org.pk)
    assert (org.name, org.slug, org.require_mfa, org.timezone) == (
        "Acme Support EU", "acme-eu", True, "Europe/Paris",
    )  # fmt: skip
    assert (org.usage_retention_months, org.spike_factor) == (24, Decimal("2.5"))
    assert Workspace.objects.get(organization=org, is_default=True) == world.workspace
    event = AuditEvent.objects.get(action="org.settings_changed")
    assert event.actor_label == "admin@example.com"
    assert event.before == {
        "name": "Acme Support", "slug": "acme-support", "require_mfa": False, "timezone": "UTC",
        "usage_retention_months": 13, "spike_factor": "3.00",
    }  # fmt: skip
    assert event.after == {
        "name": "Acme Support EU", "slug": "acme-eu", "require_mfa": True,
        "timezone": "Europe/Paris", "usage_retention_months": 24, "spike_factor": "2.5",
    }  # fmt: skip
    default = AuditEvent.objects.get(action="workspace.default_changed")
    assert (default.before, default.after) == (
        {"workspace": "Default"},
        {"workspace": "Development"},
    )


def test_saving_unchanged_settings_records_nothing(client, world):
    assert post_settings(client, world).status_code == 302
    assert not AuditEvent.objects.filter(
        action__in=["org.settings_changed", "workspace.default_changed"]
    ).exists()


def test_old_links_redirect_after_a_slug_change(client, world):
    post_settings(client, world, slug="acme-eu")
    response = client.get("/o/acme-support/api-keys/?status=active")
    assert response.status_code == 302
    assert response["Location"] == "/o/acme-eu/api-keys/?status=active"
    assert client.get("/o/acme-support/").url == "/o/acme-eu/"
    # Someone else learns nothing from the old slug.
    client.force_login(world.outsider.user)
    assert client.get("/o/acme-support/").status_code == 404
    # Signed out: sign in first, then the redirect.
    client.logout()
    assert client.get("/o/acme-support/")["Location"].startswith("/accounts/login/")


def test_a_former_slug_stays_reserved_for_its_organization(client, world):
    post_settings(client, world, slug="acme-eu")
    assert FormerSlug.objects.filter(slug="acme-support", organization=world.org).exists()
    # Another organization cannot take it: old links would lead there.
    client.force_login(world.outsider.user)
    response = client.post(
        reverse("org_settings", args=[world.other_org.slug]),
        {**settings_data(world), "name": "Globex", "slug": "acme-support",
         "default_workspace": world.other_org.workspaces.get(is_default=True).pk},
    )  # fmt: skip
    assert "already taken" in " ".join(response.context["form"].errors["slug"])
    # The organization itself may take it back.
    world.org.refresh_from_db()
    response = post_settings(client, world, slug="acme-support")
    assert response["Location"] == "/o/acme-support/settings/"
    assert FormerSlug.objects.filter(organization=world.org).values_list(
        "slug", flat=True
    ).get() == ("acme-eu")


@pytest.mark.parametrize("slug", ["admin", "accounts", "v1", "api", "settings"])
def test_reserved_slugs_are_refused(client, world, slug):
    response = post_settings(client, world, slug=slug)
    assert response.status_code == 200
    assert "reserved" in " ".join(response.context["form"].errors["slug"])
    world.org.refresh_from_db()
    assert world.org.slug == "acme-support"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("slug", "globex", "already taken"),
        ("slug", "Acme Support", "lowercase letters"),
        ("timezone", "Mars/Olympus_Mons", "not a time zone we know"),
        ("timezone", "", "required"),
        ("usage_retention_months", "0", "greater than or equal to 1"),
        ("usage_retention_months", "121", "less than or equal to 120"),
        ("usage_retention_months", "twelve", "whole number"),
        ("spike_factor", "1.0", "greater than or equal to 1.1"),
        ("spike_factor", "NaN", "number"),
        ("name", "   ", "required"),
    ],
)
def test_bad_settings_get_a_clear_form_error_and_change_nothing(
    client, world, field, value, message
):
    response = post_settings(client, world, **{field: value})
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors.get(field, []))
    assert message in errors.lower() or message in errors, response.context["form"].errors
    world.org.refresh_from_db()
    assert (world.org.slug, world.org.timezone) == ("acme-support", "UTC")
    assert not AuditEvent.objects.filter(action="org.settings_changed").exists()


def test_another_orgs_workspace_cannot_be_the_default(client, world):
    response = post_settings(client, world, default_workspace=world.other_workspace.pk)
    assert "default_workspace" in response.context["form"].errors
    assert world.other_workspace.is_default is False


def test_a_tampered_slug_in_a_post_is_not_found(client, world):
    """An Admin of one org posting to another org's settings URL gets 404 and changes nothing."""
    client.force_login(world.outsider.user)
    url = reverse("org_settings", args=[world.org.slug])
    response = client.post(url, {"name": "Pwned", "slug": "pwned", "default_workspace": 1})
    assert response.status_code == 404
    world.org.refresh_from_db()
    assert world.org.name == "Acme Support"


def test_turning_audit_logging_off_is_recorded_and_security_events_still_are(client, world):
    response = post_settings(client, world, audit_logging=None)  # the box unticked
    assert response.status_code == 302
    world.org.refresh_from_db()
    assert world.org.audit_logging is False
    event = AuditEvent.objects.get(action="org.settings_changed")
    assert (event.before, event.after) == ({"audit_logging": True}, {"audit_logging": False})
    # Ordinary changes are no longer recorded...
    org_services.create_workspace(organization=world.org, actor=world.admin.user, name="Ops")
    assert not AuditEvent.objects.filter(action="workspace.created").exists()
    # ...security events are: keys, roles, sign-ins.
    create_api_key(membership=world.member, workspace=world.workspace, name="k", actor=None)
    assert AuditEvent.objects.filter(action="apikey.created", organization=world.org).exists()
    client.force_login(world.admin.user)
    post_settings(client, world, audit_logging="on")
    assert AuditEvent.objects.filter(action="org.settings_changed").count() == 2


def test_the_page_shows_the_member_limit_the_live_url_and_no_empty_slug(client, world):
    client.force_login(world.admin.user)
    page = client.get(reverse("org_settings", args=[world.org.slug])).content.decode()
    assert "/o//" not in page
    assert "http://127.0.0.1:8000/o/<span>acme-support</span>/" in page
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "3 of 50 seats used" in text  # admin@, dev@ and finance@
    assert "contact your console&#x27;s operator" in text


def test_the_create_form_shows_the_live_url_too(client, world):
    client.force_login(world.admin.user)
    page = client.get(reverse("org_create")).content.decode()
    assert "/o//" not in page and 'data-testid="slug-preview"' in page
