"""The minimal consumer of the usage stream: Redis stream → `UsageEvent` rows, exactly once.

    ingest_batch(consumer="web-1")     # one XREADGROUP batch: insert, then XACK + XDEL

Reads with the consumer group `GROUP`, so several consumers share the stream and an event is
acknowledged only after its row is committed. Inserts use `bulk_create(ignore_conflicts=True)`,
i.e. INSERT … ON CONFLICT DO NOTHING on the unique `request_id`: an event delivered twice (a spool
replay, a consumer that died after inserting and before acknowledging) is stored once.
Events left pending by a dead consumer are claimed after `CLAIM_IDLE_MS`.

Run it as `manage.py consume_usage` (production), as the Celery task
`usage.tasks.ingest_usage_events`, or, in `make run`, as the web process's background thread
(`start_background_drain`). The usage issue replaces this with COPY-based batches and rollups.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import orjson
import redis
from django.db import DatabaseError, close_old_connections, transaction

from core import hotpath

from .models import UsageEvent
from .stream import FIELD, stream_key

logger = logging.getLogger(__name__)

GROUP = "usage-ingest"
BATCH = 2000
CLAIM_IDLE_MS = 60_000

_INT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_creation_1h_input_tokens",
    "cache_read_input_tokens",
    "cost_micros",
)


def dead_letter_key() -> str:
    """Events the database refused, with the reason (`XRANGE` it; replay after a fix)."""
    return stream_key() + ":refused"


def ensure_group(client) -> None:
    """Create the consumer group (and the stream) unless they exist: one cheap call a batch,
    so a flushed or restarted Redis needs no restart of the consumers."""
    try:
        client.xgroup_create(stream_key(), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


_MAX_INT = 2**63 - 1


def _text(value, limit: int) -> str:
    """A value as it may be stored: text, no NUL (PostgreSQL refuses it), at most `limit`."""
    return ("" if value is None else str(value)).replace("\x00", "")[:limit]


def _int(value, limit: int = _MAX_INT) -> int:
    try:
        return min(max(0, int(value or 0)), limit)
    except (TypeError, ValueError, OverflowError):
        return 0


def event_row(event: dict) -> UsageEvent:
    """The row of an event, every field made storable (an upstream or a client controls some of
    them: a NUL or an overlong string must not stop the batch it arrives in)."""
    workspace_id, api_key_id = event.get("workspace_id"), event.get("api_key_id")
    row = UsageEvent(
        request_id=_text(event["request_id"], 64),
        upstream_request_id=_text(event.get("upstream_request_id"), 128),
        created_at=datetime.fromtimestamp(float(event["time"]), tz=UTC),
        organization_id=int(event["organization_id"]),
        workspace_id=None if workspace_id is None else _int(workspace_id),
        api_key_id=None if api_key_id is None else _int(api_key_id),
        endpoint=_text(event.get("endpoint"), 32) or "messages",
        model=_text(event.get("model"), 128),
        stream=bool(event.get("stream")),
        status=_int(event.get("status"), 32767),
        error_type=_text(event.get("error_type"), 64),
        service_tier=_text(event.get("service_tier"), 32),
        latency_ms=float(event.get("latency_ms") or 0.0),
    )
    for name in _INT_FIELDS:
        setattr(row, name, _int(event.get(name)))
    return row


def store_events(events: list[dict]) -> list[tuple[dict, str]]:
    """Insert events, skipping request ids already stored, in one transaction. If the batch
    fails, each event is inserted on its own (a savepoint each) so one bad event cannot hold
    back the others. Returns the events that could not be stored, with the reason."""
    try:
        rows = [event_row(e) for e in events]
        with transaction.atomic():
            UsageEvent.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        return []
    except (DatabaseError, KeyError, TypeError, ValueError, OverflowError) as exc:
        logger.warning("Usage batch of %d refused (%r): storing one by one", len(events), exc)
    refused = []
    for event in events:
        try:
            row = event_row(event)
            with transaction.atomic():
                UsageEvent.objects.bulk_create([row], ignore_conflicts=True)
        except (DatabaseError, KeyError, TypeError, ValueError, OverflowError) as exc:
            refused.append((event, repr(exc)[:500]))
    return refused


def _decode(entries) -> tuple[list, list[dict], list[bytes]]:
    ids, events, unreadable = [], [], []
    for entry_id, fields in entries:
        ids.append(entry_id)
        payload = fields.get(FIELD) or fields.get(FIELD.decode())
        if payload is None:
            continue
        try:
            events.append(orjson.loads(payload))
        except orjson.JSONDecodeError:
            unreadable.append(payload)
    return ids, events, unreadable


def ingest_batch(*, consumer: str, client=None, count: int = BATCH, block_ms: int | None = None):
    """Ingest up to `count` events; returns how many stream entries were handled."""
    client = client or hotpath.client()
    ensure_group(client)
    stream = stream_key()
    try:
        # First what a dead consumer left pending, then new entries.
        claimed = client.xautoclaim(stream, GROUP, consumer, CLAIM_IDLE_MS, "0-0", count=count)
        entries = claimed[1] if claimed else []
        if not entries:
            response = client.xreadgroup(
                GROUP, consumer, {stream: ">"}, count=count, block=block_ms
            )
            entries = response[0][1] if response else []
    except redis.ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        return 0  # the stream was deleted (a flushed Redis) since ensure_group: next round
    if not entries:
        return 0
    ids, events, unreadable = _decode(entries)
    valid = [e for e in events if isinstance(e, dict) and e.get("request_id")]
    refused = store_events(valid) if valid else []
    refused += [(e, "not an event") for e in events if e not in valid]
    pipe = client.pipeline(transaction=False)
    for event, reason in refused:  # kept, for an operator to look at: never dropped silently
        logger.error("Usage event could not be stored (%s): %.200r", reason, event)
        pipe.xadd(dead_letter_key(), {FIELD: orjson.dumps(event), b"reason": reason})
    for payload in unreadable:
        logger.error("Unreadable usage event: %.200r", payload)
        pipe.xadd(dead_letter_key(), {FIELD: payload, b"reason": "unreadable"})
    pipe.xack(stream, GROUP, *ids)
    pipe.xdel(stream, *ids)
    pipe.execute()
    return len(ids)


def drain(*, consumer: str, client=None) -> int:
    """Ingest until the stream has nothing new. Returns the number of entries handled."""
    total = 0
    while True:
        handled = ingest_batch(consumer=consumer, client=client)
        total += handled
        if not handled:
            return total


_drain_thread: threading.Thread | None = None


def start_background_drain(interval: float = 0.5) -> None:
    """`make run`: no Celery worker, so a daemon thread of the web process drains the stream."""
    global _drain_thread
    if _drain_thread is not None and _drain_thread.is_alive():
        return
    import os

    consumer = f"web-{os.getpid()}"

    def run() -> None:
        while True:
            try:
                drain(consumer=consumer)
            except Exception:
                logger.exception("Usage drain failed; retrying")
            finally:
                close_old_connections()
            time.sleep(interval)

    _drain_thread = threading.Thread(target=run, name="usage-drain", daemon=True)
    _drain_thread.start()
