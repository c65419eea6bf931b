"""Audit chains per organization, TRUNCATE refused, deletes only by archiving.

1. Each organization's events (and the site's events of no organization) become one chain
   (audit/chain.py, docs/decisions/0010): existing rows are re-linked, in id order.
2. The append-only trigger also refuses TRUNCATE — except on a connection that sets
   `console.audit_allow_truncate = on` (the test suite's, which empties tables between tests) —
   and lets a DELETE through only in a transaction that set `console.audit_archiving = on`
   (archive_audit_events, after writing and verifying the archive file).
"""

import hashlib
import json

from django.db import migrations

HASHED_FIELDS = (
    "created_at",
    "organization_id",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "ip_address",
    "user_agent",
    "before",
    "after",
    "prev_hash",
)

TRIGGER = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('console.audit_archiving', true) = 'on' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'TRUNCATE' AND current_setting('console.audit_allow_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING
        MESSAGE = 'audit events are append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only();
"""

UNTRIGGER = """
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION USING
        MESSAGE = 'audit events are append-only: ' || TG_OP || ' refused',
        ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def _hash(row: dict) -> str:
    payload = {name: row.get(name) for name in HASHED_FIELDS}
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def relink(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    postgres = schema_editor.connection.vendor == "postgresql"
    if not AuditEvent.objects.exists():
        return
    if postgres:
        schema_editor.execute(
            "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only"
        )
    heads: dict = {}
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=2000):
        row = {
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
            "prev_hash": heads.get(event.organization_id, ""),
        }
        new_hash = _hash(row)
        AuditEvent.objects.filter(pk=event.pk).update(prev_hash=row["prev_hash"], hash=new_hash)
        heads[event.organization_id] = new_hash
    if postgres:
        schema_editor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER)


def untriggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UNTRIGGER)


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_auditarchive")]

    operations = [
        # Re-linking old rows is one-way: going back leaves them on per-organization chains.
        migrations.RunPython(relink, migrations.RunPython.noop),
        migrations.RunPython(triggers, untriggers),
    ]
