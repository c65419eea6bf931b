from collections.abc import Iterator

from .models import AuditEvent
from .services import event_hash


def events_for_organization(organization):
    return AuditEvent.objects.filter(organization=organization).order_by("-id")


def broken_links(batch_size: int = 2000) -> Iterator[tuple[int, str]]:
    """Yield (event id, reason) for every event whose hash or link to its predecessor is wrong."""
    previous_hash = ""
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=batch_size):
        if event.prev_hash != previous_hash:
            yield event.id, "does not link to the event before it (an event was removed or moved)"
        if event_hash(event) != event.hash:
            yield event.id, "its content does not match its hash (the event was edited)"
        previous_hash = event.hash
