"""Signals of the usage app, for the apps above it (billing) that must react to usage without
usage importing them.

`usage_ingested` is sent after each ingestion batch has committed, by the process that ingested
it (a Celery worker's ingestion thread, `manage.py consume_usage`, the web process's drain in
`make run`, the Admin-API import and repricing too), and only when the batch stored something:

    from usage.signals import usage_ingested

    @receiver(usage_ingested)
    def on_usage(sender, spans, source, **kwargs):
        for span in spans:   # one per organization with newly stored usage
            check_thresholds.delay(span.organization_id)   # queue work; return quickly

`spans` is a list of `IngestedSpan`: the organization, the first and last time of its events
newly stored by the batch (UTC), how many and what they cost (micro-dollars). A replayed batch
stores nothing and sends nothing. `source` is "gateway", "imported" or "repriced".

Receivers run in the ingesting thread, after the commit: they must be quick (queue a task
rather than work) and their exceptions are logged, never raised into ingestion (`send_robust`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.dispatch import Signal

usage_ingested = Signal()


@dataclass(frozen=True, slots=True)
class IngestedSpan:
    organization_id: int
    first: datetime
    last: datetime
    events: int
    cost_micros: int
