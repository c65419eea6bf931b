"""API keys end with the access of the person who owns them."""

from django.contrib.auth import get_user_model
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from members.services import member_removing

from .services import revoke_keys_of_member, revoke_keys_of_user


@receiver(member_removing, dispatch_uid="apikeys.revoke_on_member_removal")
def revoke_keys_on_member_removal(sender, membership, actor, **kwargs):
    # Inside the removal's transaction: the keys go if and only if the member goes.
    revoke_keys_of_member(membership=membership, actor=actor)


@receiver(pre_delete, sender=get_user_model(), dispatch_uid="apikeys.revoke_on_user_delete")
def revoke_keys_on_user_delete(sender, instance, **kwargs):
    revoke_keys_of_user(user=instance)
