import contextlib

from celery import shared_task
from redis.exceptions import LockError

from core import hotpath

from . import partitions
from .ingest import consumer_name, drain
from .stream import stream_key

DRAIN_LOCK_SECONDS = 30


@shared_task
def ingest_usage_events() -> int:
    """Drain the usage stream once (one drain at a time across workers: a Redis lock).

    Not scheduled: workers ingest continuously (usage/worker.py). Kept as the measured
    alternative of decision 0005 and for operators who turn the worker's loop off."""
    client = hotpath.client()
    lock = client.lock(stream_key() + ":drain-lock", timeout=DRAIN_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        return 0
    try:
        return drain(consumer=consumer_name("task-"), client=client)
    finally:
        with contextlib.suppress(LockError):  # expired meanwhile: dedupe allows a second drain
            lock.release()


@shared_task
def maintain_usage_partitions() -> list[str]:
    """Create this month's and the next three months' partitions of the raw events ahead of
    time (ingestion creates a missing one itself, but not under every batch's feet)."""
    return [partitions.partition_name(m) for m in partitions.create_future_partitions(ahead=3)]


@shared_task
def apply_usage_retention() -> dict:
    """Raw-event retention: drop partitions past every organization's retention, delete the
    older events of organizations with a shorter one (usage/partitions.py)."""
    done = partitions.drop_expired_partitions()
    return {
        "dropped": [partitions.partition_name(m) for m in done["dropped"]],
        "deleted_rows": done["deleted_rows"],
    }


@shared_task
def detect_usage_spikes() -> int:
    """Each organization's yesterday (its own zone) checked for spikes, which are emailed to its
    Admins once (usage/spikes.py). Hourly, so each zone's day is checked soon after it ends;
    the claims make every later run of the same day a no-op, and retry unsent emails."""
    from . import spikes

    return len(spikes.detect_spikes())


@shared_task
def send_weekly_usage_digests() -> int:
    """The weekly digest of every organization whose Monday morning it is (its own zone), once
    a week (usage/digest.py). Hourly, so every zone's Monday 07:00 is met; unsent deliveries
    are retried by the next run."""
    from . import digest

    return len(digest.send_weekly_digests())


@shared_task
def import_anthropic_usage() -> int:
    """Every 15 minutes: each organization with an Anthropic Admin API key whose next attempt is
    due imports its usage (usage/anthropic_import.py); a refused key backs off by itself."""
    from . import anthropic_import

    return anthropic_import.import_due()


@shared_task
def import_anthropic_usage_now(source_id: int) -> bool:
    """One organization's import at once (after its key was saved, or "Import now")."""
    from . import anthropic_import

    return anthropic_import.import_usage(source_id)
