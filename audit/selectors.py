from collections.abc import Iterator

from .chain import Break, first_break
from .models import AuditEvent
from .services import chain_anchor, chain_events


def events_for_organization(organization):
    return AuditEvent.objects.filter(organization=organization).order_by("-id")


def chain_ids() -> list[int | None]:
    """Every chain in the database: each organization with events, and the site's (None)."""
    ids = AuditEvent.objects.order_by().values_list("organization_id", flat=True).distinct()
    return sorted(ids, key=lambda value: (value is not None, value or 0))


def chain_break(organization_id: int | None, batch_size: int = 2000) -> Break | None:
    """The first broken link of one chain, checked from its anchor, or None when it holds."""
    events = chain_events(organization_id).iterator(chunk_size=batch_size)
    return first_break(events, anchor=chain_anchor(organization_id))


def broken_chains() -> Iterator[tuple[int | None, Break]]:
    for organization_id in chain_ids():
        found = chain_break(organization_id)
        if found is not None:
            yield organization_id, found
