"""Usage events the database would refuse are made storable, set aside or repaired, never lost
with the batch they came in."""

from __future__ import annotations

import json

import pytest

from core import hotpath
from usage.ingest import dead_letter_key, drain, event_row, store_events
from usage.models import UsageEvent
from usage.stream import UsagePublisher, dump_event

from .conftest import usage_event

pytestmark = pytest.mark.django_db(transaction=True)


def test_fields_a_database_refuses_are_made_storable(world):
    row = event_row(usage_event(world.org.pk, 1, model="m\x00x", error_type="e" * 80,
                                service_tier="t" * 40))  # fmt: skip
    assert row.model == "mx" and len(row.error_type) == 64 and len(row.service_tier) == 32


def test_one_event_the_database_refuses_does_not_hold_back_its_batch(world):
    good = [usage_event(world.org.pk, i) for i in range(3)]
    bad = usage_event(world.org.pk, 9, organization_id="not a number")
    absurd = usage_event(world.org.pk, 10, output_tokens=10**30)
    stored = store_events([good[0], bad, *good[1:], absurd])
    assert [event for event, _ in stored.refused] == [bad, absurd]
    assert UsageEvent.objects.filter(organization_id=world.org.pk).count() == 3


def test_refused_and_unreadable_events_are_kept_aside_not_lost(world):
    client = hotpath.client()
    publisher = UsagePublisher()
    publisher._spooled = False
    publisher.publish(usage_event(world.org.pk, 1))
    publisher.publish(usage_event(world.org.pk, 2, time="yesterday"))
    publisher.flush()
    from usage.stream import FIELD, stream_key

    client.xadd(stream_key(), {FIELD: b"{not json"})
    drain(consumer="tests")
    assert UsageEvent.objects.filter(organization_id=world.org.pk).count() == 1
    aside = client.xrange(dead_letter_key())
    reasons = sorted(fields[b"reason"].decode()[:10] for _, fields in aside)
    assert len(aside) == 2 and reasons[1] == "unreadable"
    assert client.xlen(stream_key()) == 0  # acknowledged and removed: the consumer moves on


def test_an_event_json_cannot_carry_is_repaired_not_dropped_with_its_batch():
    payload = dump_event({"request_id": "r", "output_tokens": 10**20, "status": 200})
    assert json.loads(payload) == {"request_id": "r", "output_tokens": 0, "status": 200}
