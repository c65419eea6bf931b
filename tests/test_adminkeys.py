"""Admin keys: the Admin API's credentials. Their own prefix and checksum, created only by
Admins (console tab or `manage.py create_admin_key`), shown once, stored hashed, revocable at
once, audited, and ended when their owner stops being an Admin."""

import io
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from apikeys import selectors, services
from apikeys.keyformat import (
    ADMIN_KEY_PATTERN,
    ADMIN_PREFIX,
    KEY_LENGTH,
    check_key_format,
    generate_key,
    hash_key,
)
from apikeys.models import AdminKey
from audit.models import AuditEvent
from members import services as member_services
from members.models import Role

pytestmark = pytest.mark.django_db


def url(name, world, *args):
    return reverse(f"apikeys:{name}", args=[world.org.slug, *args])


# -- the format ------------------------------------------------------------------------------


def test_an_admin_key_has_its_own_prefix_and_the_same_checksum_scheme():
    key = generate_key(ADMIN_PREFIX)
    assert key.startswith("cak_") and len(key) == KEY_LENGTH
    assert re.fullmatch(ADMIN_KEY_PATTERN, key)
    assert check_key_format(key, ADMIN_PREFIX) is None
    damaged = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert "checksum" in check_key_format(damaged, ADMIN_PREFIX)


def test_one_kind_of_key_is_never_taken_for_the_other():
    admin_key, api_key = generate_key(ADMIN_PREFIX), generate_key()
    assert "admin key" in check_key_format(admin_key)  # offered at /v1/messages
    assert "API key" in check_key_format(api_key, ADMIN_PREFIX)  # offered to the Admin API
    # Same body, other prefix: the checksum covers the prefix, so it still fails.
    swapped = "csk_" + admin_key[4:]
    assert "checksum" in check_key_format(swapped)


# -- the console tab -------------------------------------------------------------------------


def test_admin_creates_an_admin_key_on_its_own_tab_and_sees_it_once(client, world):
    client.force_login(world.admin.user)
    listing = client.get(url("list", world)).content.decode()
    assert url("admin_keys", world) in listing  # the tab
    response = client.post(url("admin_key_create", world), {"name": "Terraform"})
    assert response.status_code == 200
    plaintext = response.context["issued"].plaintext
    page = response.content.decode()
    assert plaintext in page and "you won't see it again" in page
    assert "no-store" in response["Cache-Control"]
    key = AdminKey.objects.get(organization=world.org)
    assert (key.name, key.owner) == ("Terraform", world.admin.user)
    assert key.key_hash == hash_key(plaintext) and plaintext not in key.display
    event = AuditEvent.objects.get(action="adminkey.created")
    assert event.actor == world.admin.user and plaintext not in str(event.after)
    tab = client.get(url("admin_keys", world)).content.decode()
    assert key.display in tab and plaintext not in tab
    assert selectors.authenticate_admin_key(plaintext).membership == world.admin


def test_members_do_not_see_the_admin_keys_tab(client, world):
    client.force_login(world.member.user)
    page = client.get(url("list", world)).content.decode()
    assert url("admin_keys", world) not in page
    assert client.get(url("admin_keys", world)).status_code == 403
    assert client.post(url("admin_key_create", world), {"name": "x"}).status_code == 403
    assert not AdminKey.objects.exists()


def test_an_empty_or_long_name_creates_nothing(client, world):
    client.force_login(world.admin.user)
    for name in ("", "   ", "x" * 101):
        response = client.post(url("admin_key_create", world), {"name": name})
        assert response.status_code == 200 and response.context["form"].errors
    assert not AdminKey.objects.exists()


def test_only_admins_hold_admin_keys(world):
    for membership in (world.member, world.billing):
        with pytest.raises(ValidationError, match="only Admins"):
            services.create_admin_key(membership=membership, name="x", actor=None)
    assert not AdminKey.objects.exists()


def test_revoking_an_admin_key_refuses_it_at_once_and_is_audited(client, world):
    issued = services.create_admin_key(membership=world.admin, name="CI", actor=None)
    assert selectors.authenticate_admin_key(issued.plaintext).ok
    client.force_login(world.admin.user)
    confirm = client.get(url("admin_key_revoke", world, issued.key.pk))
    assert b"Revoke CI?" in confirm.content
    client.post(url("admin_key_revoke", world, issued.key.pk))
    check = selectors.authenticate_admin_key(issued.plaintext)
    assert check.failure == "revoked" and "revoked" in check.message
    event = AuditEvent.objects.get(action="adminkey.revoked")
    assert event.actor == world.admin.user and event.target_id == str(issued.key.pk)


def test_an_admin_key_of_another_org_is_not_found_from_ones_own(client, world):
    theirs = services.create_admin_key(membership=world.outsider, name="Globex", actor=None)
    client.force_login(world.admin.user)
    assert client.get(url("admin_key_revoke", world, theirs.key.pk)).status_code == 404
    assert client.post(url("admin_key_revoke", world, theirs.key.pk)).status_code == 404
    assert selectors.authenticate_admin_key(theirs.plaintext).ok


def test_an_owner_who_stops_being_admin_or_leaves_has_their_admin_keys_revoked(world, db):
    from tests.factories import MembershipFactory

    second = MembershipFactory(organization=world.org, role=Role.ADMIN)
    kept = services.create_admin_key(membership=world.admin, name="kept", actor=None)
    demoted = services.create_admin_key(membership=second, name="demoted", actor=None)
    member_services.change_role(membership=second, role=Role.MEMBER, actor=world.admin.user)
    assert selectors.authenticate_admin_key(demoted.plaintext).failure == "revoked"
    assert AuditEvent.objects.filter(
        action="adminkey.revoked", target_id=str(demoted.key.pk)
    ).exists()
    member_services.change_role(membership=second, role=Role.ADMIN, actor=world.admin.user)
    again = services.create_admin_key(membership=second, name="again", actor=None)
    member_services.remove_member(membership=second, actor=world.admin.user)
    assert selectors.authenticate_admin_key(again.plaintext).failure == "revoked"
    assert selectors.authenticate_admin_key(kept.plaintext).ok


def test_an_owner_no_longer_admin_is_refused_even_without_a_revocation(world):
    issued = services.create_admin_key(membership=world.admin, name="x", actor=None)
    # Changed behind the services' back (SQL): the key is still checked against the role.
    type(world.admin).objects.filter(pk=world.admin.pk).update(role=Role.MEMBER)
    assert selectors.authenticate_admin_key(issued.plaintext).failure == "not_admin"


# -- manage.py create_admin_key --------------------------------------------------------------


def create(**options):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_admin_key", stdout=out, stderr=err, **options)
    return out.getvalue()


def test_the_command_prints_the_admin_key_alone(world):
    out = create(org="acme-support", owner="ADMIN@example.com", name="Terraform")
    assert out.endswith("\n") and out.count("\n") == 1
    raw = out.strip()
    assert check_key_format(raw, ADMIN_PREFIX) is None
    assert selectors.authenticate_admin_key(raw).membership == world.admin
    event = AuditEvent.objects.get(action="adminkey.created")
    assert event.actor_label == "manage.py create_admin_key"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"org": "nope"}, "not a member"),
        ({"owner": "outsider@globex.test"}, "not a member"),
        ({"owner": "dev@example.com"}, "only Admins"),
        ({"owner": "finance@example.com"}, "only Admins"),
        ({"name": " "}, "Give the key a name"),
    ],
)
def test_the_command_refuses_bad_input_and_creates_nothing(world, options, message):
    base = {"org": "acme-support", "owner": "admin@example.com", "name": "Terraform"}
    with pytest.raises(CommandError, match=message):
        create(**{**base, **options})
    assert not AdminKey.objects.exists()
