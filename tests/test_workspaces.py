"""Workspaces: list, create, rename, archive (which revokes the workspace's API keys); exactly one
default workspace per organization."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from apikeys import services as key_services
from apikeys.models import ApiKey
from apikeys.verification import VERSION_KEY, Failure, verify_key
from audit.models import AuditEvent
from core import hotpath
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
    client.post(reverse("workspace_archive", args=[slug, pk]), {"intent": "archive"})
    world.workspace.refresh_from_db()
    assert world.workspace.is_archived
    client.post(reverse("workspace_archive", args=[slug, pk]), {"intent": "restore"})
    world.workspace.refresh_from_db()
    assert not world.workspace.is_archived
    actions = list(
        AuditEvent.objects.filter(organization=world.org, action__startswith="workspace.")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["workspace.renamed", "workspace.archived", "workspace.unarchived"]


def test_a_second_archive_click_changes_nothing(client, world):
    issued = issue(world.member, world.workspace)
    client.force_login(world.admin.user)
    url = reverse("workspace_archive", args=[world.org.slug, world.workspace.pk])
    client.post(url, {"intent": "archive"})
    response = client.post(url, {"intent": "archive"}, follow=True)
    assert "Workspace Development is already archived. Nothing changed." in (
        response.content.decode()
    )
    world.workspace.refresh_from_db()
    assert world.workspace.is_archived
    assert verify_key(issued.plaintext).failure == Failure.REVOKED
    assert not AuditEvent.objects.filter(action="workspace.unarchived").exists()


def test_a_stale_restore_page_does_not_archive_or_revoke(client, world):
    """The restore page was opened while the workspace was archived; someone restored it since."""
    services.archive_workspace(workspace=world.workspace, actor=None)
    client.force_login(world.admin.user)
    url = reverse("workspace_archive", args=[world.org.slug, world.workspace.pk])
    assert 'name="intent" value="restore"' in client.get(url).content.decode()
    services.unarchive_workspace(workspace=world.workspace, actor=None)
    issued = issue(world.member, world.workspace)
    response = client.post(url, {"intent": "restore"}, follow=True)
    assert "Workspace Development is not archived. Nothing changed." in response.content.decode()
    world.workspace.refresh_from_db()
    assert not world.workspace.is_archived
    assert verify_key(issued.plaintext).ok
    assert AuditEvent.objects.filter(action="workspace.archived").count() == 1


def test_an_archive_post_without_an_intent_changes_nothing(client, world):
    client.force_login(world.admin.user)
    url = reverse("workspace_archive", args=[world.org.slug, world.workspace.pk])
    response = client.post(url, follow=True)
    assert "did not say whether to archive or restore" in response.content.decode()
    world.workspace.refresh_from_db()
    assert not world.workspace.is_archived


def test_the_list_links_say_what_they_offer_and_a_stale_link_changes_nothing(client, world):
    client.force_login(world.admin.user)
    url = reverse("workspace_archive", args=[world.org.slug, world.workspace.pk])
    page = client.get(reverse("workspaces", args=[world.org.slug])).content.decode()
    assert f'href="{url}?intent=archive"' in page
    services.archive_workspace(workspace=world.workspace, actor=None)
    # The list was loaded before someone else archived the workspace.
    response = client.get(url, {"intent": "archive"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("workspaces", args=[world.org.slug])
    assert "Workspace Development is already archived." in response.content.decode()
    page = client.get(reverse("workspaces", args=[world.org.slug])).content.decode()
    assert f'href="{url}?intent=restore"' in page


def test_the_default_workspace_cannot_be_archived(client, world):
    default = world.org.workspaces.get(is_default=True)
    client.force_login(world.admin.user)
    response = client.post(
        reverse("workspace_archive", args=[world.org.slug, default.pk]),
        {"intent": "archive"},
        follow=True,
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
    rows = [row for row in archived.split("<tbody")[1].split("</tbody>")[0].split("<tr")[1:]]
    assert len(rows) == 1 and "Development" in rows[0]
    partial = client.get(
        url, {"status": "active"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="table-region"
    )
    assert partial.templates[0].name == "partials/table.html"
    export = client.get(url, {"_export": "csv"})
    assert export["Content-Type"].startswith("text/csv")
    lines = export.content.decode().splitlines()
    assert lines[0] == "Name,Status,Default,Created,Archived"
    assert len(lines) == 3
    world.workspace.refresh_from_db()
    archived_row = next(line for line in lines if line.startswith("Development,"))
    # Exact moments in the organization's zone, with its offset (UTC here).
    created = world.workspace.created_at.isoformat(timespec="seconds")
    archived_at = world.workspace.archived_at.isoformat(timespec="seconds")
    assert archived_row.endswith(f",Archived,,{created},{archived_at}")


def test_workspace_of_another_org_is_not_found(client, world):
    client.force_login(world.admin.user)
    url = reverse("workspace_rename", args=[world.org.slug, world.other_workspace.pk])
    assert client.post(url, {"name": "Mine now"}).status_code == 404
    world.other_workspace.refresh_from_db()
    assert world.other_workspace.name == "Globex Dev"


# Archiving ends the workspace's API keys ---------------------------------------------------


def issue(membership, workspace, name="Key"):
    return key_services.create_api_key(
        membership=membership, workspace=workspace, name=name, actor=membership.user
    )


@pytest.fixture
def keys(world):
    """Keys in the workspace to archive (active, revoked, expired) and elsewhere."""
    default = world.org.workspaces.get(is_default=True)
    issued = {
        "member": issue(world.member, world.workspace, "Member's"),
        "admin": issue(world.admin, world.workspace, "Admin's"),
        "revoked": issue(world.member, world.workspace, "Revoked"),
        "expired": issue(world.member, world.workspace, "Expired"),
        "default": issue(world.admin, default, "Default's"),
        "other_org": issue(world.outsider, world.other_workspace, "Globex's"),
    }
    key_services.revoke_api_key(key=issued["revoked"].key, actor=None)
    ApiKey.objects.filter(pk=issued["expired"].key.pk).update(
        expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    return issued


def test_archiving_revokes_exactly_the_workspaces_active_keys(client, world, keys):
    for name in ("member", "admin", "default", "other_org"):
        assert verify_key(keys[name].plaintext).ok  # cached in this process: must be evicted
    revoked_before = ApiKey.objects.get(pk=keys["revoked"].key.pk).revoked_at
    client.force_login(world.admin.user)
    url = reverse("workspace_archive", args=[world.org.slug, world.workspace.pk])
    response = client.post(url, {"intent": "archive"}, follow=True)
    assert "Workspace Development archived. 2 API keys revoked." in response.content.decode()

    assert verify_key(keys["member"].plaintext).failure == Failure.REVOKED
    assert verify_key(keys["admin"].plaintext).failure == Failure.REVOKED
    assert verify_key(keys["default"].plaintext).ok
    assert verify_key(keys["other_org"].plaintext).ok
    assert verify_key(keys["expired"].plaintext).failure == Failure.EXPIRED
    assert ApiKey.objects.get(pk=keys["expired"].key.pk).revoked_at is None
    assert ApiKey.objects.get(pk=keys["revoked"].key.pk).revoked_at == revoked_before

    revocations = AuditEvent.objects.filter(action="apikey.revoked", actor=world.admin.user)
    assert sorted(int(e.target_id) for e in revocations) == sorted(
        [keys["member"].key.pk, keys["admin"].key.pk]
    )
    assert {e.after["reason"] for e in revocations} == {"workspace archived"}
    assert {e.organization_id for e in revocations} == {world.org.pk}
    archived = AuditEvent.objects.get(action="workspace.archived")
    assert archived.after == {"api_keys_revoked": 2}


def test_archiving_announces_each_revocation_to_every_gateway_process(
    world, keys, django_capture_on_commit_callbacks
):
    redis = hotpath.client()
    version = int(redis.get(VERSION_KEY) or 0)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.archive_workspace(workspace=world.workspace, actor=None)
    # The same announcement revoke_api_key makes: one per key, published on commit (the other
    # callbacks email the keys' owners).
    announcements = [c for c in callbacks if "announce_key_change" in c.__qualname__]
    assert len(announcements) == 2
    assert int(redis.get(VERSION_KEY)) == version + 2


def test_the_archive_confirmation_says_how_many_keys_will_be_revoked(client, world, keys):
    client.force_login(world.admin.user)
    url = reverse("workspace_archive", args=[world.org.slug, world.workspace.pk])
    issue(world.member, world.workspace, "Third")
    page = client.get(url).content.decode()
    assert (
        "3 active API keys in this workspace will be revoked and stop working immediately." in page
    )
    assert "revoked keys stay revoked" in page
    # Asking changed nothing.
    assert verify_key(keys["member"].plaintext).ok
    assert not AuditEvent.objects.filter(action="workspace.archived").exists()


def test_the_archive_confirmation_words_one_key_and_none(client, world):
    client.force_login(world.admin.user)
    url = reverse("workspace_archive", args=[world.org.slug, world.workspace.pk])
    assert "This workspace has no active API keys." in client.get(url).content.decode()
    issue(world.member, world.workspace)
    assert (
        "1 active API key in this workspace will be revoked and stops working immediately."
        in client.get(url).content.decode()
    )


def test_archiving_a_workspace_without_keys_says_none_were_revoked(client, world):
    client.force_login(world.admin.user)
    url = reverse("workspace_archive", args=[world.org.slug, world.workspace.pk])
    response = client.post(url, {"intent": "archive"}, follow=True)
    assert "No active API keys needed revoking." in response.content.decode()


def test_restoring_a_workspace_does_not_bring_its_keys_back(client, world, keys):
    archived = services.archive_workspace(workspace=world.workspace, actor=world.admin.user)
    assert archived.api_keys_revoked == 2
    client.force_login(world.admin.user)
    url = reverse("workspace_archive", args=[world.org.slug, world.workspace.pk])
    assert "stay revoked" in client.get(url).content.decode()
    client.post(url, {"intent": "restore"})
    world.workspace.refresh_from_db()
    assert not world.workspace.is_archived
    assert verify_key(keys["member"].plaintext).failure == Failure.REVOKED
    assert verify_key(keys["admin"].plaintext).failure == Failure.REVOKED
    # Archiving again has nothing left to revoke.
    again = services.archive_workspace(workspace=world.workspace, actor=None)
    assert again.api_keys_revoked == 0
    assert AuditEvent.objects.filter(action="apikey.revoked").count() == 3  # 2 + the fixture's


def test_a_refused_archive_revokes_nothing(world):
    default = world.org.workspaces.get(is_default=True)
    issued = issue(world.admin, default)
    with pytest.raises(ValidationError):
        services.archive_workspace(workspace=default, actor=None)
    assert verify_key(issued.plaintext).ok
