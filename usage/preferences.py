"""A person's usage email preferences (their profile page): the weekly digest on or off."""

from __future__ import annotations

from django.db import transaction

from audit.services import record_event

from .models import NotificationPreference


def weekly_digest_wanted(user) -> bool:
    preference = NotificationPreference.objects.filter(user=user).first()
    return preference is None or preference.weekly_digest


@transaction.atomic
def set_weekly_digest(*, user, weekly_digest: bool) -> bool:
    """Turn the weekly digest on or off for `user`; audited when it changes. True if changed."""
    preference, _ = NotificationPreference.objects.select_for_update().get_or_create(user=user)
    if preference.weekly_digest == weekly_digest:
        return False
    before = preference.weekly_digest
    preference.weekly_digest = weekly_digest
    preference.save(update_fields=["weekly_digest"])
    record_event(
        action="user.notifications_changed",
        actor=user,
        target=user,
        target_label=user.email,
        before={"weekly_digest": before},
        after={"weekly_digest": weekly_digest},
    )
    return True
