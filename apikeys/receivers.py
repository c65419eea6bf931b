"""API keys end with the access of the person who owns them, and with their workspace."""

from django.contrib.auth import get_user_model
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from members.policy import can
from members.services import member_removing, role_changed, workspace_access_lost
from orgs.services import workspace_archiving

from .services import (
    revoke_admin_keys_of_member,
    revoke_keys_in_workspace,
    revoke_keys_of_member,
    revoke_keys_of_member_in_workspaces,
    revoke_keys_of_user,
)


@receiver(member_removing, dispatch_uid="apikeys.revoke_on_member_removal")
def revoke_keys_on_member_removal(sender, membership, actor, **kwargs):
    # Inside the removal's transaction: the keys go if and only if the member goes.
    revoke_keys_of_member(membership=membership, actor=actor)
    revoke_admin_keys_of_member(membership=membership, actor=actor, reason="member removed")


@receiver(role_changed, dispatch_uid="apikeys.revoke_on_role_without_keys")
def revoke_keys_on_role_without_keys(sender, membership, old_role, actor, **kwargs):
    # Billing-only holds no API keys: a member moved there keeps none working.
    if not can(membership, "apikeys.create"):
        revoke_keys_of_member(
            membership=membership,
            actor=actor,
            reason=f"role changed to {membership.get_role_display()}",
        )
    # Admin keys act with the Admin role: a member who no longer has it keeps none working.
    if not can(membership, "adminkeys.create"):
        revoke_admin_keys_of_member(
            membership=membership,
            actor=actor,
            reason=f"role changed to {membership.get_role_display()}",
        )


@receiver(workspace_access_lost, dispatch_uid="apikeys.revoke_on_workspace_access_lost")
def revoke_keys_on_workspace_access_lost(sender, membership, workspaces, actor, **kwargs):
    revoke_keys_of_member_in_workspaces(membership=membership, workspaces=workspaces, actor=actor)


@receiver(workspace_archiving, dispatch_uid="apikeys.revoke_on_workspace_archive")
def revoke_keys_on_workspace_archive(sender, workspace, actor, **kwargs) -> int:
    # The count is the archive's answer to the Admin ("3 API keys revoked").
    return revoke_keys_in_workspace(workspace=workspace, actor=actor)


@receiver(pre_delete, sender=get_user_model(), dispatch_uid="apikeys.revoke_on_user_delete")
def revoke_keys_on_user_delete(sender, instance, **kwargs):
    revoke_keys_of_user(user=instance)
