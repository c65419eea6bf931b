"""The spend hook: an organization's monthly cap is enforced before any upstream call, and
concurrent requests cannot overshoot it by more than one reservation."""

from __future__ import annotations

import asyncio
import threading

import anthropic
import httpx
import pytest

from billing import spend
from billing.models import SpendLimit
from usage.pricing import price_usage

from .conftest import MODEL, events_for

pytestmark = pytest.mark.django_db(transaction=True)


def counter_value(org_id: int) -> int:
    from core import hotpath

    return int(hotpath.client().hget(spend.counter_key(org_id), "total") or 0)


def test_a_request_at_the_cap_is_refused_before_the_upstream(gw):
    SpendLimit.objects.create(organization=gw.org, monthly_cap_micros=5_000_000)
    from core import hotpath

    hotpath.client().hset(spend.counter_key(gw.org.pk), mapping={"total": 5_000_000, "epoch": "t"})
    with gw.client() as client, pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    message = refused.value.message
    reset = spend.period_reset()
    assert "monthly spend limit of $5.00" in message
    assert f"resets on {reset:%Y-%m-%d}" in message
    [event] = events_for(gw.org.pk, 1)
    assert (event.status, event.error_type) == (400, "invalid_request_error")
    assert event.upstream_request_id == ""  # no upstream call was made


def test_settling_replaces_the_reservation_by_the_actual_cost(gw):
    SpendLimit.objects.create(organization=gw.org, monthly_cap_micros=50_000_000)
    with gw.client() as client:
        message = client.messages.create(
            model=MODEL, max_tokens=1000, messages=[{"role": "user", "content": "hello"}]
        )
        with client.messages.stream(
            model=MODEL, max_tokens=1000, messages=[{"role": "user", "content": "hello"}]
        ) as stream:
            streamed = stream.get_final_message()
    events = events_for(gw.org.pk, 2)
    expected = price_usage(MODEL, message.usage.model_dump()) + price_usage(
        MODEL, streamed.usage.model_dump()
    )
    assert [e.cost_micros for e in events] == [
        price_usage(MODEL, message.usage.model_dump()),
        price_usage(MODEL, streamed.usage.model_dump()),
    ]
    assert counter_value(gw.org.pk) == expected


def test_requests_of_an_organization_without_a_cap_are_not_counted(gw):
    with gw.client() as client:
        client.messages.create(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert counter_value(gw.org.pk) == 0


def test_concurrent_requests_cannot_overshoot_the_cap_by_more_than_one_reservation(gw):
    cap = 25_000
    SpendLimit.objects.create(organization=gw.org, monthly_cap_micros=cap)
    body = {
        "model": MODEL,
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "Write a long answer please"}],
    }
    reservation = spend.max_cost_micros(MODEL, 1000, len(httpx.Request(
        "POST", "http://x", json=body).content))  # fmt: skip
    statuses: list[int] = []

    async def burst() -> None:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def one() -> int:
                response = await client.post(
                    f"{gw.url}/v1/messages", json=body, headers={"x-api-key": gw.key}
                )
                return response.status_code

            statuses.extend(await asyncio.gather(*(one() for _ in range(100))))

    thread = threading.Thread(target=lambda: asyncio.run(burst()))
    thread.start()
    thread.join()
    assert set(statuses) <= {200, 400}
    assert statuses.count(200) >= 1 and statuses.count(400) >= 1  # the cap did bite
    events = events_for(gw.org.pk, 100)
    assert len(events) == 100
    spent = sum(e.cost_micros for e in events)
    assert spent <= cap + reservation
    assert counter_value(gw.org.pk) == spent  # every reservation was settled
    refused = [e for e in events if e.status == 400]
    assert len(refused) == statuses.count(400) and all(e.cost_micros == 0 for e in refused)


def test_a_counter_redis_lost_is_rebuilt_from_the_months_usage_rollups(gw):
    from datetime import UTC, datetime, timedelta

    from tests.factories import daily_usage

    today = datetime.now(UTC).date()
    month_start = today.replace(day=1)
    daily_usage(gw.org, today, 3_000_000)
    daily_usage(gw.org, month_start, 1_000_000, model="claude-sonnet-4-5")
    daily_usage(gw.org, month_start - timedelta(days=3), 90_000_000)  # the month before
    SpendLimit.objects.create(organization=gw.org, monthly_cap_micros=50_000_000)
    assert counter_value(gw.org.pk) == 0  # Redis has no counter for this month
    with gw.client() as client:
        message = client.messages.create(
            model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    events = events_for(gw.org.pk, 1)
    assert counter_value(gw.org.pk) == 4_000_000 + price_usage(MODEL, message.usage.model_dump())
    assert events[-1].status == 200


def test_the_rebuilt_counter_enforces_the_cap(gw):
    from datetime import UTC, datetime

    from tests.factories import daily_usage

    daily_usage(gw.org, datetime.now(UTC).date(), 5_000_000)
    SpendLimit.objects.create(organization=gw.org, monthly_cap_micros=5_000_000)
    with gw.client() as client, pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(
            model=MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    assert "monthly spend limit of $5.00" in refused.value.message
    assert counter_value(gw.org.pk) == 5_000_000


def test_concurrent_rebuilds_of_one_counter_count_the_usage_once(gw):
    from datetime import UTC, datetime

    from tests.factories import daily_usage

    daily_usage(gw.org, datetime.now(UTC).date(), 2_000_000)

    async def rebuild_many() -> list[int]:
        return await asyncio.gather(*(spend.rebuild_counter(gw.org.pk) for _ in range(20)))

    values: list[int] = []
    # A thread of its own: other tests (the browser's) may leave a loop running in this one.
    thread = threading.Thread(target=lambda: values.extend(asyncio.run(rebuild_many())))
    thread.start()
    thread.join()
    assert values == [2_000_000] * 20
    assert counter_value(gw.org.pk) == 2_000_000


def test_a_repricing_brings_the_counters_the_gateway_caps_with_to_the_repriced_spend(gw):
    """`manage.py reprice` after a price correction: the organization's and the key's monthly
    counters and the prepaid credits' hold what billing reads from the repriced rollups, and
    keep counting from there."""
    from datetime import datetime
    from decimal import Decimal

    from django.core.management import call_command

    from billing import credits, selectors
    from billing.models import CreditAccount, LimitScope
    from core import hotpath
    from usage import pricing
    from usage.models import ModelPrice

    SpendLimit.objects.create(organization=gw.org, monthly_cap_micros=50_000_000)
    SpendLimit.objects.create(organization=gw.org, monthly_cap_micros=40_000_000,
                              scope=LimitScope.API_KEY, api_key=gw.key_row)  # fmt: skip
    credits.configure_credits(organization=gw.org, actor=None, enabled=True,
                              auto_recharge=False, recharge_threshold_micros=0,
                              recharge_amount_micros=0, expected_version=None)  # fmt: skip
    credits.grant_credits(organization=gw.org, actor=None, amount_micros=30_000_000, memo="Start")
    ask = {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]}
    with gw.client() as client:
        for _ in range(3):
            client.messages.create(**ask)
    events_for(gw.org.pk, 3)
    today = datetime.now(gw.org.tzinfo).date()
    month = today.replace(day=1)
    key_counter = f"{spend._key('k', gw.key_row.pk)}:{month:%Y-%m}"

    window = CreditAccount.objects.get(organization=gw.org).window_started_at
    credit_counter = f"{spend._key('c', gw.org.pk)}:{int(window.timestamp())}"

    def counters() -> tuple[int, int]:
        client = hotpath.client()
        return counter_value(gw.org.pk), int(client.hget(key_counter, "total") or 0)

    def credit_used() -> int:
        return int(hotpath.client().hget(credit_counter, "total") or 0)

    before = selectors.period_spend(gw.org.pk, month)
    assert before > 0 and counters() == (before, before)
    assert credit_used() == selectors.consumed_since(gw.org.pk, window) == before

    # The operator finds Haiku's prices were entered 3 times too high, corrects and reprices.
    ModelPrice.objects.filter(model="claude-haiku-4-5").update(
        input_per_mtok=Decimal("0.33"), output_per_mtok=Decimal("1.66")
    )
    pricing.invalidate()
    call_command("reprice", "--org", gw.org.slug, "--from", str(today), "--to", str(today))
    after = selectors.period_spend(gw.org.pk, month)
    assert 0 < after < before
    assert counters() == (after, after)
    assert not hotpath.client().exists(credit_counter)  # rebuilt from usage when next needed

    # The gateway goes on counting from the corrected figure (the counters' epoch is kept).
    with gw.client() as client:
        client.messages.create(**ask)
    events_for(gw.org.pk, 4)
    assert counters() == (selectors.period_spend(gw.org.pk, month),) * 2
    assert counters()[0] > after
    assert credit_used() == selectors.consumed_since(gw.org.pk, window) == counters()[0]
