"""Spend counters around a Redis loss: settlements from before a rebuild leave the rebuilt counter
alone, requests admitted while Redis was away still count, and reserve() admits unreserved when
Redis cannot be reached."""

from __future__ import annotations

import pytest

from billing import spend
from core import hotpath
from usage.stream import UsagePublisher

from .conftest import MODEL, usage_event

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_settlement_from_before_a_rebuild_does_not_touch_the_rebuilt_counter(world, settings):
    key = spend.counter_key(world.org.pk)
    client = hotpath.client()
    client.hset(key, mapping={"total": 500, "epoch": "rebuilt"})
    publisher = UsagePublisher()
    publisher._spooled = False
    publisher.publish(usage_event(world.org.pk, 1), counters=[(key, -400, "before-the-loss")])
    publisher.publish(usage_event(world.org.pk, 2), counters=[(key, -100, "rebuilt")])
    publisher.flush()
    assert int(client.hget(key, "total")) == 400


def test_a_request_admitted_while_redis_was_away_still_counts_its_cost(world):
    key = spend.counter_key(world.org.pk)
    unreserved = spend.Reservation(((key, "*"),), 0)
    assert spend.settlement(unreserved, 67) == [(key, 67, "*")]
    client = hotpath.client()
    client.hset(key, mapping={"total": 1000, "epoch": "any"})
    publisher = UsagePublisher()
    publisher._spooled = False
    publisher.publish(usage_event(world.org.pk, 1), counters=spend.settlement(unreserved, 67))
    publisher.flush()
    assert int(client.hget(key, "total")) == 1067


def test_reserve_admits_unreserved_when_redis_is_unreachable(world, settings):
    import asyncio

    from billing.models import SpendLimit

    SpendLimit.objects.create(organization=world.org, monthly_cap_micros=10_000)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    spend.forget_limits()

    async def attempt():
        return await spend.reserve(
            organization_id=world.org.pk, model=MODEL, max_tokens=10, body_bytes=100
        )

    result: list = []
    import threading

    thread = threading.Thread(target=lambda: result.append(asyncio.run(attempt())))
    thread.start()
    thread.join()
    assert result == [spend.Reservation(((spend.counter_key(world.org.pk), "*"),), 0)]
