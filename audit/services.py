import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from .context import current_origin, current_via
from .models import AuditEvent
from .registry import ACTIONS

# Any constant: all writers of the chain take this lock, so each event sees the true predecessor.
_CHAIN_LOCK_ID = 0x4155444954  # "AUDIT"


def _plain_json(value: Any) -> Any:
    """Dates, Decimals and UUIDs become strings now, so the stored JSON hashes the same later."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def event_hash(event: AuditEvent) -> str:
    payload = {
        "created_at": event.created_at.isoformat(),
        "organization_id": event.organization_id,
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target_label": event.target_label,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "before": event.before,
        "after": event.after,
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def actor_label_for(user) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return user.email


@transaction.atomic
def record_event(
    *,
    action: str,
    organization=None,
    actor=None,
    actor_label: str | None = None,
    target=None,
    target_label: str | None = None,
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Record one audit event inside the caller's transaction. `action` must be registered."""
    if action not in ACTIONS:
        raise ValueError(f"Unregistered audit action {action!r}")
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    origin = current_origin()
    if actor_label is None:
        actor_label = actor_label_for(actor)
        via = current_via()
        if via:
            actor_label = f"{actor_label} via {via}" if actor_label else via
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_ID])
    previous = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    event = AuditEvent(
        created_at=timezone.now(),
        organization=organization,
        actor=actor,
        actor_label=actor_label[:254],
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label if target_label is not None else str(target or ""))[:254],
        ip_address=origin.ip_address if origin else None,
        user_agent=origin.user_agent if origin else "",
        before=_plain_json(before),
        after=_plain_json(after),
        prev_hash=previous or "",
    )
    event.hash = event_hash(event)
    event.save(force_insert=True)
    return event
