import hashlib
import json
from pathlib import Path
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from .chain import end_line, event_hash, event_line, header_line, verify_lines
from .context import current_origin, current_via
from .models import AuditArchive, AuditEvent
from .registry import ACTIONS, is_always_recorded

# All writers of one chain take this lock (with the organization's id), so each event sees the
# true predecessor; different organizations do not wait for each other.
_CHAIN_LOCK_CLASS = 0x4155  # "AU"


def _plain_json(value: Any) -> Any:
    """Dates, Decimals and UUIDs become strings now, so the stored JSON hashes the same later."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def actor_label_for(user) -> str:
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return user.email


def chain_anchor(organization_id: int | None) -> str:
    """Where the chain of `organization_id` starts in the database: its last archive's hash."""
    archive = AuditArchive.objects.filter(organization_id=organization_id).first()
    return archive.last_hash if archive else ""


def chain_events(organization_id: int | None):
    """The events of one chain (an organization's, or the site's for None), oldest first."""
    if organization_id is None:
        return AuditEvent.objects.filter(organization__isnull=True).order_by("id")
    return AuditEvent.objects.filter(organization_id=organization_id).order_by("id")


def _lock_chain(organization_id: int | None) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [_CHAIN_LOCK_CLASS, (organization_id or 0) % 2**31],
            )


def _chain_head(organization_id: int | None) -> str:
    last = chain_events(organization_id).order_by("-id").values_list("hash", flat=True).first()
    return last if last is not None else chain_anchor(organization_id)


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
) -> AuditEvent | None:
    """Record one audit event inside the caller's transaction. `action` must be registered.

    Returns None, recording nothing, for an organization that turned its audit log off, unless
    the action is always recorded (registry.ALWAYS_RECORDED: security events)."""
    if action not in ACTIONS:
        raise ValueError(f"Unregistered audit action {action!r}")
    if (
        organization is not None
        and not getattr(organization, "audit_logging", True)
        and not is_always_recorded(action)
    ):
        return None
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    origin = current_origin()
    if actor_label is None:
        actor_label = actor_label_for(actor)
        via = current_via()
        if via:
            actor_label = f"{actor_label} via {via}" if actor_label else via
    organization_id = organization.pk if organization is not None else None
    _lock_chain(organization_id)
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
        prev_hash=_chain_head(organization_id),
    )
    event.hash = event_hash(event)
    event.save(force_insert=True)
    return event


@transaction.atomic
def archive_chain(
    *, organization, before, path, actor_label: str = "system"
) -> AuditArchive | None:
    """Move the events of `organization`'s chain (the site's for None) recorded before `before`
    (an aware datetime) into the JSON Lines file `path`, and delete them from the table.

    The file is a complete segment of the chain (audit/chain.py format) and is verified before
    anything is deleted; the chain left in the database starts from its last hash, recorded as
    an AuditArchive. Returns None, writing nothing, when no event is that old."""
    organization_id = organization.pk if organization is not None else None
    _lock_chain(organization_id)
    old = chain_events(organization_id).filter(created_at__lt=before)
    through = old.order_by("-id").first()
    if through is None:
        return None
    events = chain_events(organization_id).filter(id__lte=through.id)
    anchor = chain_anchor(organization_id)
    path = Path(path)
    count, last_hash = 0, anchor
    with path.open("x", encoding="utf-8") as out:  # never overwrite an earlier archive
        out.write(
            header_line(
                organization=organization,
                anchor=anchor,
                exported_at=timezone.now().isoformat(),
                kind="archive",
            )
        )
        for event in events.iterator(chunk_size=2000):
            out.write(event_line(event))
            count, last_hash = count + 1, event.hash
        out.write(end_line(events=count, last_hash=last_hash))
    try:
        with path.open(encoding="utf-8") as written:
            report = verify_lines(written)
        if report.broken is not None or report.events != count:
            raise ValueError(f"The archive does not verify ({report.broken}); nothing deleted.")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # The append-only trigger lets this transaction, and only it, delete.
                cursor.execute("SET LOCAL console.audit_archiving = 'on'")
        deleted = events._raw_delete(events.db)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL console.audit_archiving = 'off'")
        if deleted != count:
            raise ValueError(f"{deleted} events deleted, {count} archived: rolled back.")
        archive = AuditArchive.objects.create(
            organization_id=organization_id,
            through_event_id=through.id,
            through_created_at=through.created_at,
            events=count,
            anchor=anchor,
            last_hash=last_hash,
            file_name=str(path),
            file_sha256=digest,
        )
        record_event(
            action="audit.archived",
            organization=organization,
            actor_label=actor_label,
            after={
                "events": count,
                "through": through.created_at,
                "last_hash": last_hash,
                "file": path.name,
                "file_sha256": digest,
            },
        )
    except BaseException:
        path.unlink(missing_ok=True)  # the database is rolled back: the file would mislead
        raise
    return archive
