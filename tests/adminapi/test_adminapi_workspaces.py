"""Workspaces and their members through the SDK: orgs.services and members.services do the
work (unique names, the default workspace kept, keys revoked on archive, audit)."""

from __future__ import annotations

import anthropic
import pytest

from adminapi import ids
from apikeys.models import ApiKey
from apikeys.services import create_api_key
from audit.models import AuditEvent
from members.models import WorkspaceMembership
from orgs.models import Workspace

pytestmark = pytest.mark.django_db(transaction=True)


def wid(workspace) -> str:
    return ids.encode("workspace", workspace.pk)


def uid(membership) -> str:
    return ids.encode("user", membership.user_id)


def test_workspaces_are_created_listed_renamed_and_archived(admin_api):
    world = admin_api.world
    key = create_api_key(
        membership=world.member, workspace=world.workspace, name="dev", actor=None
    ).key
    with admin_api.client() as client:
        created = client.organization.workspaces.create(name="Research")
        assert created.name == "Research" and created.id.startswith("wrkspc_")
        assert created.archived_at is None and created.type == "workspace"
        names = [w.name for w in client.organization.workspaces.list()]
        assert names == ["Development", "Research"]  # the default one only on request
        with_default = client.organization.workspaces.list(include_default=True)
        assert len(with_default.data) == 3
        renamed = client.organization.workspaces.update(created.id, name="Research & Dev")
        assert renamed.name == "Research & Dev"
        archived = client.organization.workspaces.archive(wid(world.workspace))
        assert archived.archived_at is not None
        assert [w.name for w in client.organization.workspaces.list()] == ["Research & Dev"]
        everything = client.organization.workspaces.list(include_archived=True)
        assert [w.name for w in everything] == ["Development", "Research & Dev"]
        only = client.organization.workspaces.list(ids=[created.id], include_archived=True)
        assert [w.id for w in only.data] == [created.id]
        assert client.organization.workspaces.retrieve(created.id).name == "Research & Dev"
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"workspace.created", "workspace.renamed", "workspace.archived"} <= actions


def test_workspace_rules_hold_through_the_api(admin_api):
    default = admin_api.world.org.workspaces.get(is_default=True)
    with admin_api.client() as client:
        with pytest.raises(anthropic.BadRequestError, match="name: A workspace with this"):
            client.organization.workspaces.create(name="development")
        with pytest.raises(anthropic.BadRequestError, match="default workspace cannot be"):
            client.organization.workspaces.archive(wid(default))
        with pytest.raises(anthropic.BadRequestError, match="display colors"):
            client.organization.workspaces.create(name="Colourful", display_color="#ff0000")
    assert not Workspace.objects.filter(name="Colourful").exists()


def test_workspace_members_follow_the_organization_role(admin_api):
    world = admin_api.world
    research = Workspace.objects.create(organization=world.org, name="Research")
    with admin_api.client() as client:
        members = client.organization.workspaces.members
        listed = {m.user_id: m.workspace_role for m in members.list(wid(world.workspace))}
        assert listed == {
            uid(world.admin): "workspace_admin",
            uid(world.member): "workspace_developer",
        }
        added = members.add(
            wid(research), user_id=uid(world.member), workspace_role="workspace_developer"
        )
        assert added.workspace_id == wid(research) and added.type == "workspace_member"
        assert members.retrieve(uid(world.member), workspace_id=wid(research)).workspace_role == (
            "workspace_developer"
        )
        with pytest.raises(
            anthropic.BadRequestError, match=r"workspace_role: .*workspace_developer"
        ):
            members.update(
                uid(world.member), workspace_id=wid(research), workspace_role="workspace_admin"
            )
        with pytest.raises(anthropic.BadRequestError, match="already a member"):
            members.add(
                wid(research), user_id=uid(world.member), workspace_role="workspace_developer"
            )
        with pytest.raises(anthropic.BadRequestError, match="every workspace"):
            members.add(wid(research), user_id=uid(world.admin), workspace_role="workspace_admin")
        billing = members.add(
            wid(research), user_id=uid(world.billing), workspace_role="workspace_billing"
        )
        assert billing.workspace_role == "workspace_billing"
        removed = members.remove(uid(world.member), workspace_id=wid(research))
        assert removed.type == "workspace_member_deleted"
        with pytest.raises(anthropic.NotFoundError):
            members.retrieve(uid(world.member), workspace_id=wid(research))
    assert not WorkspaceMembership.objects.filter(
        membership=world.member, workspace=research
    ).exists()
    assert AuditEvent.objects.filter(action="workspace_member.added").count() == 2
    assert AuditEvent.objects.filter(action="workspace_member.removed").exists()
