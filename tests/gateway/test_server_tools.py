"""Server tools and unknown models through the real gateway: `usage.server_tool_use` (web search
and web fetch requests) is recorded from JSON answers and from streams, priced per use as its
own share of the cost, and a model without a price row is priced at the fallback and flagged,
on the event and in the rollups."""

from __future__ import annotations

import pytest

from usage.models import UsageDaily, UsageHourly
from usage.pricing import cost_of

from .conftest import MODEL, events_for

pytestmark = pytest.mark.django_db(transaction=True)

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
WEB_FETCH = {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2}
HELLO = [{"role": "user", "content": "what is new today?"}]


def test_web_searches_and_fetches_are_recorded_and_priced_from_json_and_streams(gw):
    with gw.client() as client:
        message = client.messages.create(
            model=MODEL, max_tokens=64, messages=HELLO, tools=[WEB_SEARCH, WEB_FETCH]
        )
        with client.messages.stream(
            model=MODEL, max_tokens=64, messages=HELLO, tools=[WEB_SEARCH]
        ) as stream:
            streamed = stream.get_final_message()
        client.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    assert message.usage.server_tool_use.web_search_requests == 3  # the simulator's answer
    assert streamed.usage.server_tool_use.web_search_requests == 3
    json_event, stream_event, plain_event = events_for(gw.org.pk, 3)

    assert (json_event.web_search_requests, json_event.web_fetch_requests) == (3, 2)
    # $10 per 1,000 searches = 10,000 micro-dollars each; web fetch costs its tokens only
    assert json_event.server_tool_cost_micros == 30_000
    tokens_only = cost_of(MODEL, {"input_tokens": json_event.input_tokens,
                                  "output_tokens": json_event.output_tokens})  # fmt: skip
    assert json_event.cost_micros == tokens_only.micros + 30_000

    assert stream_event.stream
    assert (stream_event.web_search_requests, stream_event.web_fetch_requests) == (3, 0)
    assert stream_event.server_tool_cost_micros == 30_000
    assert (plain_event.web_search_requests, plain_event.server_tool_cost_micros) == (0, 0)

    for rollup in (UsageHourly, UsageDaily):
        row = rollup.objects.get(organization_id=gw.org.pk)
        assert (row.web_search_requests, row.web_fetch_requests) == (6, 2)
        assert row.server_tool_cost_micros == 60_000
        assert row.cost_micros == sum(
            e.cost_micros for e in (json_event, stream_event, plain_event)
        )


def test_a_model_without_a_price_is_priced_at_the_fallback_and_flagged(gw, settings):
    settings.USAGE_FALLBACK_PRICE_MODEL = "claude-opus-4-1"
    from usage import pricing

    pricing.invalidate()
    with gw.client() as client:
        client.messages.create(model="claude-nova-9", max_tokens=64, messages=HELLO)
        client.messages.create(model=MODEL, max_tokens=64, messages=HELLO)
    unknown, known = sorted(events_for(gw.org.pk, 2), key=lambda e: e.model != "claude-nova-9")
    assert unknown.model == "claude-nova-9" and unknown.fallback_priced
    # Opus 4.1: $15 / $75 per million tokens, never $0
    assert unknown.cost_micros == unknown.input_tokens * 15 + unknown.output_tokens * 75 > 0
    assert not known.fallback_priced
    daily = UsageDaily.objects.get(organization_id=gw.org.pk, model="claude-nova-9")
    assert (daily.requests, daily.fallback_priced_requests) == (1, 1)


def test_counts_an_upstream_could_not_have_meant_are_not_metered():
    from gateway.sse import take_usage

    into: dict[str, int] = {}
    take_usage(
        {
            "input_tokens": -5, "output_tokens": 10**13, "cache_read_input_tokens": 1.5,
            "cache_creation_input_tokens": True,
            "server_tool_use": {"web_search_requests": -1, "web_fetch_requests": "3"},
        },
        into,
    )  # fmt: skip
    assert into == {}
    take_usage({"input_tokens": 7, "server_tool_use": {"web_search_requests": 2}}, into)
    assert into == {"input_tokens": 7, "web_search_requests": 2}
