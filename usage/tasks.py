import os
import socket

from celery import shared_task

from .ingest import drain


@shared_task
def ingest_usage_events() -> int:
    """Drain the usage stream into the database (idempotent: request ids are unique)."""
    return drain(consumer=f"celery-{socket.gethostname()}-{os.getpid()}")
