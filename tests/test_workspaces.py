"""Workspaces: list, create, rename, archive; exactly one default workspace per organization."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse

from audit.models import AuditEvent
from orgs import services
from orgs.models import Workspace

pytestmark = pytest.mark.django_db


def test_admin_creates_a_workspace(client, world):
    client.force_login(world.admin.user)
    response = client.post(reverse("workspace_create", args=[world.org.slug]), {"name": "Testing"})
    assert response.status_code == 302
    assert world.org.workspaces.filter(name="Testing", is_default=False).exists()
    assert AuditEvent.objects.filter(action="workspace.created", organization=world.org).exists()


@pytest.mark.parametrize("name", ["", "   ", "development", "DEVELOPMENT", "x" * 65])
def test_workspace_names_must_be_present_unique_and_short(client, world, name):
    client.force_login(world.admin.user)
    before = world.org.workspaces.count()
    response = client.post(reverse("workspace_create", args=[world.org.slug]), {"name": name})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert world.org.workspaces.count() == before


def test_same_workspace_name_in_another_org_is_fine(world):
    services.create_workspace(organization=world.other_org, actor=None, name="Development")


def test_rename_and_archive_and_restore(client, world):
    client.force_login(world.admin.user)
    slug, pk = world.org.slug, world.workspace.pk
    client.post(reverse("workspace_rename", args=[slug, pk]), {"name": "Dev"})
    world.workspace.refresh_from_db()
    assert world.workspace.name == "Dev"
    # GET asks for confirmation and changes nothing.
    assert client.get(reverse("workspace_archive", args=[slug, pk])).status_code == 200
    world.workspace.refresh_from_db()
    assert not world.workspace.is_archived
    client.post(reverse("workspace_archive", args=[slug, pk]))
    world.workspace.refresh_from_db()
    assert world.workspace.is_archived
    client.post(reverse("workspace_archive", args=[slug, pk]))
    world.workspace.refresh_from_db()
    assert not world.workspace.is_archived
    actions = list(
        AuditEvent.objects.filter(organization=world.org, action__startswith="workspace.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["workspace.renamed", "workspace.archived", "workspace.unarchived"]


def test_the_default_workspace_cannot_be_archived(client, world):
    default = world.org.workspaces.get(is_default=True)
    client.force_login(world.admin.user)
    response = client.post(
        reverse("workspace_archive", args=[world.org.slug, default.pk]), follow=True
    )
    assert "cannot be archived" in response.content.decode()
    default.refresh_from_db()
    assert not default.is_archived


def test_the_database_refuses_a_second_default_workspace(world):
    with pytest.raises(IntegrityError), transaction.atomic():
        Workspace.objects.create(organization=world.org, name="Other", is_default=True)


def test_an_archived_workspace_cannot_become_the_default(world):
    services.archive_workspace(workspace=world.workspace, actor=None)
    with pytest.raises(ValidationError):
        services.update_organization_settings(
            organization=world.org,
            actor=None,
            name=world.org.name,
            slug=world.org.slug,
            require_mfa=False,
            default_workspace=world.workspace,
        )
    assert world.org.workspaces.get(is_default=True).name == "Default"


def test_workspace_list_filters_and_exports_csv(client, world):
    services.archive_workspace(workspace=world.workspace, actor=None)
    client.force_login(world.admin.user)
    url = reverse("workspaces", args=[world.org.slug])
    archived = client.get(url, {"status": "archived"}).content.decode()
    assert "Development" in archived and ">Default<" not in archived
    partial = client.get(
        url, {"status": "active"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="table-region"
    )
    assert partial.templates[0].name == "partials/table.html"
    export = client.get(url, {"_export": "csv"})
    assert export["Content-Type"].startswith("text/csv")
    lines = export.content.decode().splitlines()
    assert lines[0].startswith("Name,Status")
    assert len(lines) == 3


def test_workspace_of_another_org_is_not_found(client, world):
    client.force_login(world.admin.user)
    url = reverse("workspace_rename", args=[world.org.slug, world.other_workspace.pk])
    assert client.post(url, {"name": "Mine now"}).status_code == 404
    world.other_workspace.refresh_from_db()
    assert world.other_workspace.name == "Globex Dev"
