"""The usage pipeline's state as Redis tells it, for /readyz and /metrics (console/health.py):
how far ingestion is behind the gateway, and whether any ingestion worker is alive.

Ingestion acknowledges and deletes each stream entry once its batch is stored, so what is left
in the stream is what waits: its length, and the age of its oldest entry (the entry id's
milliseconds) is the lag. Consumers stamp `last_heartbeat_key()` every second (usage/ingest.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from core import hotpath

from .ingest import dead_letter_key, last_heartbeat_key, stats
from .stream import stream_key


@dataclass(frozen=True)
class PipelineState:
    length: int  # entries waiting in the stream (each a batch of events)
    lag_seconds: float  # age of the oldest waiting entry; 0 when none waits
    heartbeat_age: float | None  # seconds since a consumer last beat; None: never
    refused: int  # entries on the dead-letter stream
    stored: int  # events stored since the stream began
    duplicates: int


def pipeline_state(client=None, now: float | None = None) -> PipelineState:
    client = client or hotpath.client()
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    pipe.xlen(stream_key())
    pipe.xrange(stream_key(), count=1)
    pipe.get(last_heartbeat_key())
    pipe.xlen(dead_letter_key())
    length, oldest, beat, refused = pipe.execute()
    lag = 0.0
    if oldest:
        entry_id = oldest[0][0]
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        lag = max(0.0, now - int(entry_id.split("-")[0]) / 1000)
    counters = stats(client)
    return PipelineState(
        length=length,
        lag_seconds=lag,
        heartbeat_age=None if beat is None else max(0.0, now - float(beat)),
        refused=refused,
        stored=counters.get("stored", 0),
        duplicates=counters.get("duplicates", 0),
    )
