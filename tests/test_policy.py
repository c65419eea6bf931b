"""The role policy mirrors the guide's role table."""

import pytest
from django.core.exceptions import ValidationError

from members import services
from members.models import Membership, Role
from members.policy import can

pytestmark = pytest.mark.django_db


class Owned:
    def __init__(self, owner_id):
        self.owner_id = owner_id


# (capability, Admin, Member, Billing-only) — from the guide: API keys, Billing, Members, Usage.
GUIDE = [
    ("apikeys.view", True, True, False),
    ("apikeys.view_all", True, False, False),
    ("apikeys.create", True, True, False),
    ("billing.view", True, True, True),
    ("billing.manage", True, False, True),
    ("members.view", True, False, False),
    ("members.manage", True, False, False),
    ("usage.view", True, True, True),
    ("usage.view_all", True, False, True),
    ("settings.manage", True, False, False),
    ("audit.view", True, False, False),
    ("workspaces.manage", True, False, False),
    # Not in the guide: admin keys (the Admin API) carry the Admin role, so Admins only.
    ("adminkeys.view", True, False, False),
    ("adminkeys.create", True, False, False),
    ("adminkeys.manage", True, False, False),
]


@pytest.mark.parametrize(("capability", "admin", "member", "billing"), GUIDE)
def test_role_table_matches_the_guide(world, capability, admin, member, billing):
    assert can(world.admin, capability) is admin
    assert can(world.member, capability) is member
    assert can(world.billing, capability) is billing


def test_member_manages_own_keys_only(world):
    own, others = Owned(world.member.user_id), Owned(world.admin.user_id)
    assert can(world.member, "apikeys.manage", own)
    assert not can(world.member, "apikeys.manage", others)
    assert not can(world.member, "apikeys.manage")
    assert can(world.admin, "apikeys.manage", others)
    assert not can(world.billing, "apikeys.manage", Owned(world.billing.user_id))


def test_no_membership_means_no_access():
    assert not can(None, "billing.view")


def test_unknown_capabilities_are_programming_errors(world):
    with pytest.raises(ValueError):
        can(world.admin, "apikeys.destroy")
    with pytest.raises(ValueError):
        can(world.admin, "rockets.view")


def test_the_last_admin_cannot_be_demoted_or_removed(world):
    with pytest.raises(ValidationError, match="at least one Admin"):
        services.change_role(membership=world.admin, role=Role.MEMBER, actor=world.admin.user)
    with pytest.raises(ValidationError, match="at least one Admin"):
        services.remove_member(membership=world.admin, actor=world.admin.user)
    with pytest.raises(ValidationError, match="at least one Admin"):
        services.leave_organization(membership=world.admin)
    world.admin.refresh_from_db()
    assert world.admin.role == Role.ADMIN


def test_an_admin_can_step_down_once_another_admin_exists(world):
    services.change_role(membership=world.member, role=Role.ADMIN, actor=world.admin.user)
    services.change_role(membership=world.admin, role=Role.BILLING, actor=world.admin.user)
    assert Membership.objects.get(pk=world.admin.pk).role == Role.BILLING


def test_roles_outside_the_three_are_refused(world):
    with pytest.raises(ValidationError):
        services.change_role(membership=world.member, role="owner", actor=world.admin.user)


def test_console_pages_answer_other_methods_with_a_405(client_for, world):
    from django.urls import reverse

    client = client_for(world.admin)
    for name in ("org_settings", "org_home", "workspace_create"):
        url = reverse(name, args=[world.org.slug])
        assert client.delete(url).status_code == 405
        assert client.put(url).status_code == 405
