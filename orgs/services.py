from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from audit.services import record_event

from .models import RESERVED_SLUGS, FormerSlug, Organization, Workspace

DEFAULT_WORKSPACE_NAME = "Default"

# Sent inside the archive transaction, once the workspace is marked archived. Apps above `orgs`
# (API keys) connect to it to end what works in the workspace: kwargs workspace, actor.
# A receiver returns how many API keys it revoked (or None), for the archive to report.
workspace_archiving = Signal()


def validate_slug(slug: str, *, exclude_pk: int | None = None) -> None:
    """Refuse a reserved slug, one in use, and one another organization used before (its old
    links redirect there). An organization may take back a slug it used itself."""
    if slug in RESERVED_SLUGS:
        raise ValidationError({"slug": f"“{slug}” is reserved by the console. Choose another."})
    taken = Organization.objects.filter(slug=slug)
    retired = FormerSlug.objects.filter(slug=slug)
    if exclude_pk is not None:
        taken = taken.exclude(pk=exclude_pk)
        retired = retired.exclude(organization_id=exclude_pk)
    if taken.exists() or retired.exists():
        raise ValidationError({"slug": f"“{slug}” is already taken. Choose another."})


@transaction.atomic
def create_empty_organization(*, name: str, slug: str, actor) -> Organization:
    """An organization with its default workspace and no member yet: only for
    `members.services.create_organization`, which adds the first Admin in the same transaction
    (`orgs` cannot: memberships live above it)."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the organization a name."})
    validate_slug(slug)
    organization = Organization(name=name, slug=slug)
    organization.full_clean()
    try:
        with transaction.atomic():
            organization.save()
    except IntegrityError as exc:  # a concurrent creation took the slug
        raise ValidationError({"slug": "This slug is already taken. Choose another."}) from exc
    Workspace.objects.create(
        organization=organization, name=DEFAULT_WORKSPACE_NAME, is_default=True
    )
    record_event(
        action="org.created",
        organization=organization,
        actor=actor,
        target=organization,
        after={"name": organization.name, "slug": organization.slug},
    )
    return organization


@transaction.atomic
def update_organization_settings(
    *,
    organization: Organization,
    actor,
    name: str,
    slug: str,
    require_mfa: bool,
    default_workspace: Workspace,
    timezone: str | None = None,
    audit_logging: bool | None = None,
    usage_retention_months: int | None = None,
    spike_factor: Decimal | None = None,
) -> Organization:
    """Save the settings page. The optional settings left None stay as they are.

    A changed slug keeps the old one as a FormerSlug (old links redirect). Settings changes
    are always recorded, so turning audit logging off is recorded too; a new default workspace
    is its own event."""
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the organization a name."})
    validate_slug(slug, exclude_pk=organization.pk)
    wanted = {
        "name": name,
        "slug": slug,
        "require_mfa": require_mfa,
        "timezone": timezone,
        "audit_logging": audit_logging,
        "usage_retention_months": usage_retention_months,
        "spike_factor": spike_factor,
    }
    wanted = {field: value for field, value in wanted.items() if value is not None}
    before = {field: getattr(organization, field) for field in wanted}
    for field, value in wanted.items():
        setattr(organization, field, value)
    organization.full_clean(exclude=["member_limit"])
    changed = [field for field in wanted if getattr(organization, field) != before[field]]
    old_slug = before["slug"]
    if changed:
        try:
            with transaction.atomic():
                organization.save(update_fields=changed)
        except IntegrityError as exc:
            raise ValidationError({"slug": f"“{slug}” is already taken. Choose another."}) from exc
    if "slug" in changed:
        FormerSlug.objects.filter(organization=organization, slug=slug).delete()  # in use again
        FormerSlug.objects.get_or_create(slug=old_slug, defaults={"organization": organization})
    if changed:
        record_event(
            action="org.settings_changed",
            organization=organization,
            actor=actor,
            target=organization,
            before={field: before[field] for field in changed},
            after={field: getattr(organization, field) for field in changed},
        )
    current_default = organization.workspaces.filter(is_default=True).first()
    if current_default is None or default_workspace.pk != current_default.pk:
        new_default = _make_default(organization, default_workspace)
        record_event(
            action="workspace.default_changed",
            organization=organization,
            actor=actor,
            target=new_default,
            before={"workspace": current_default.name if current_default else None},
            after={"workspace": new_default.name},
        )
    return organization


def _make_default(organization: Organization, workspace: Workspace) -> None:
    # Re-read under lock: the caller's instance may predate an archive.
    workspace = (
        Workspace.objects.select_for_update().filter(pk=workspace.pk, organization=organization)
    ).first()
    if workspace is None:
        raise ValidationError({"default_workspace": "Choose a workspace of this organization."})
    if workspace.is_archived:
        raise ValidationError({"default_workspace": "An archived workspace cannot be the default."})
    organization.workspaces.filter(is_default=True).update(is_default=False)
    Workspace.objects.filter(pk=workspace.pk).update(is_default=True)
    workspace.is_default = True
    return workspace


def _check_name_free(organization: Organization, name: str, exclude_pk: int | None = None) -> str:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the workspace a name."})
    if len(name) > 64:
        raise ValidationError({"name": "Use at most 64 characters."})
    clash = organization.workspaces.filter(name__iexact=name)
    if exclude_pk is not None:
        clash = clash.exclude(pk=exclude_pk)
    if clash.exists():
        raise ValidationError({"name": "A workspace with this name already exists."})
    return name


@transaction.atomic
def create_workspace(*, organization: Organization, actor, name: str) -> Workspace:
    name = _check_name_free(organization, name)
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(organization=organization, name=name)
    except IntegrityError as exc:
        raise ValidationError({"name": "A workspace with this name already exists."}) from exc
    record_event(
        action="workspace.created",
        organization=organization,
        actor=actor,
        target=workspace,
        after={"name": name},
    )
    return workspace


@transaction.atomic
def rename_workspace(*, workspace: Workspace, actor, name: str) -> Workspace:
    old_name = workspace.name
    name = _check_name_free(workspace.organization, name, exclude_pk=workspace.pk)
    if name == old_name:
        return workspace
    workspace.name = name
    try:
        with transaction.atomic():
            workspace.save(update_fields=["name"])
    except IntegrityError as exc:
        raise ValidationError({"name": "A workspace with this name already exists."}) from exc
    record_event(
        action="workspace.renamed",
        organization=workspace.organization,
        actor=actor,
        target=workspace,
        before={"name": old_name},
        after={"name": name},
    )
    return workspace


@dataclass(frozen=True)
class ArchivedWorkspace:
    """What archiving did, for the Admin's confirmation message."""

    workspace: Workspace
    api_keys_revoked: int = 0


@transaction.atomic
def archive_workspace(*, workspace: Workspace, actor) -> ArchivedWorkspace:
    """Archive a workspace: no new keys or members, and its active API keys are revoked."""
    workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
    if workspace.is_default:
        raise ValidationError(
            "The default workspace cannot be archived. Make another workspace the default first."
        )
    if workspace.is_archived:
        return ArchivedWorkspace(workspace)
    workspace.archived_at = timezone.now()
    workspace.save(update_fields=["archived_at"])
    # The row lock above keeps new keys out until this commits (key creation locks it too).
    responses = workspace_archiving.send(sender=Workspace, workspace=workspace, actor=actor)
    revoked = sum(response or 0 for _, response in responses)
    record_event(
        action="workspace.archived",
        organization=workspace.organization,
        actor=actor,
        target=workspace,
        after={"api_keys_revoked": revoked},
    )
    return ArchivedWorkspace(workspace, api_keys_revoked=revoked)


@transaction.atomic
def unarchive_workspace(*, workspace: Workspace, actor) -> Workspace:
    workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
    if not workspace.is_archived:
        return workspace
    workspace.archived_at = None
    workspace.save(update_fields=["archived_at"])
    record_event(
        action="workspace.unarchived",
        organization=workspace.organization,
        actor=actor,
        target=workspace,
    )
    return workspace
