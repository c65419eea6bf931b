"""Periodic API key work (schedules in settings.CELERY_BEAT_SCHEDULE). Both tasks are idempotent."""

from celery import shared_task

from . import services


@shared_task
def key_hygiene() -> dict:
    """Daily: record expiries (apikey.expired, once), then email owners about keys expiring
    within 7 days, 90 days old, or unused for 30 days (each at most once per key and reason)."""
    return {
        "expired": services.record_expiries(),
        "notices": services.send_due_notices(),
    }


@shared_task
def flush_key_last_used() -> int:
    """Every minute: move the verifiers' last-used stamps from Redis into the database."""
    return services.flush_last_used()
