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

`usage_repriced` is sent by `usage.services.reprice_usage` (`manage.py reprice`) after each
organization's repricing commits, with what changed, so that what counts spend outside the
rollups (billing's spend counters at the gateway) can follow:

    @receiver(usage_repriced)
    def on_repriced(sender, organization_id, days, start, end, **kwargs):
        for change in days:   # RepricedDay: per organization-local day, workspace and key
            ...               # change.cost_micros is the difference (new − old), often < 0

`start` and `end` are the instants of the repriced period (its first and last days' midnights
in the organization's zone, end exclusive).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.dispatch import Signal

usage_ingested = Signal()
usage_repriced = Signal()


@dataclass(frozen=True, slots=True)
class IngestedSpan:
    organization_id: int
    first: datetime
    last: datetime
    events: int
    cost_micros: int


@dataclass(frozen=True, slots=True)
class RepricedDay:
    """How much the gateway usage of one organization-local day, workspace and key changed by
    a repricing (micro-dollars, new − old; ids 0 for none), as the daily rollups hold it."""

    day: date
    workspace_id: int
    api_key_id: int
    cost_micros: int
