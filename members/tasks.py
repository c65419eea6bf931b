from celery import shared_task

from . import services


@shared_task
def expire_invitations() -> int:
    """Periodic sweep: write `expired` on overdue pending invitations (idempotent). Views and
    services already treat an overdue invitation as expired; this keeps the stored status true."""
    return services.expire_invitations()
