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
from django.db import close_old_connections, transaction

from apikeys import hotpath

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


def ensure_group(client) -> None:
    """Create the consumer group (and the stream) unless they exist: one cheap call a batch,
    so a flushed or restarted Redis needs no restart of the consumers."""
    try:
        client.xgroup_create(stream_key(), GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def event_row(event: dict) -> UsageEvent:
    row = UsageEvent(
        request_id=event["request_id"],
        upstream_request_id=(event.get("upstream_request_id") or "")[:128],
        created_at=datetime.fromtimestamp(event["time"], tz=UTC),
        organization_id=event["organization_id"],
        workspace_id=event.get("workspace_id"),
        api_key_id=event.get("api_key_id"),
        endpoint=event.get("endpoint") or "messages",
        model=(event.get("model") or "")[:128],
        stream=bool(event.get("stream")),
        status=event["status"],
        error_type=event.get("error_type") or "",
        service_tier=event.get("service_tier") or "",
        latency_ms=event.get("latency_ms") or 0.0,
    )
    for name in _INT_FIELDS:
        setattr(row, name, max(0, int(event.get(name) or 0)))
    return row


def store_events(events: list[dict]) -> int:
    """Insert events, skipping request ids already stored. Returns the number given."""
    rows = [event_row(e) for e in events]
    with transaction.atomic():
        UsageEvent.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


def _decode(entries) -> tuple[list, list[dict]]:
    ids, events = [], []
    for entry_id, fields in entries:
        ids.append(entry_id)
        payload = fields.get(FIELD) or fields.get(FIELD.decode())
        if payload is None:
            continue
        try:
            events.append(orjson.loads(payload))
        except orjson.JSONDecodeError:
            logger.error("Unreadable usage event %s skipped", entry_id)
    return ids, events


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
    ids, events = _decode(entries)
    valid = [e for e in events if isinstance(e, dict) and e.get("request_id")]
    if valid:
        store_events(valid)
    pipe = client.pipeline(transaction=False)
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
