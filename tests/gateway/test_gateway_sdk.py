"""The official Anthropic Python SDK, pointed at a live gateway (uvicorn serving console.asgi)
whose upstream is the simulator: what a developer with a console key sees."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from apikeys.services import revoke_api_key

from .conftest import MODEL, events_for

pytestmark = pytest.mark.django_db(transaction=True)

CACHED_SYSTEM = [
    {
        "type": "text",
        "text": "You are a support agent for Acme. " * 40,
        "cache_control": {"type": "ephemeral"},
    }
]


def test_messages_create_answers_and_records_exact_usage(gw):
    with gw.client() as client:
        message = client.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "Hello there"}]
        )
    assert message.type == "message" and message.content[0].text
    [event] = events_for(gw.org.pk, 1)
    assert event.status == 200 and event.error_type == "" and not event.stream
    assert event.model == MODEL
    assert event.organization_id == gw.org.pk
    assert event.api_key_id == gw.key_row.pk
    assert event.workspace_id == gw.key_row.workspace_id
    assert event.input_tokens == message.usage.input_tokens
    assert event.output_tokens == message.usage.output_tokens
    assert event.service_tier == "standard"
    assert event.cost_micros > 0
    assert event.upstream_request_id.startswith("req_sim_")


def test_cache_tokens_are_recorded_for_create_and_stream(gw):
    with gw.client() as client:
        first = client.messages.create(
            model=MODEL,
            max_tokens=32,
            system=CACHED_SYSTEM,
            messages=[{"role": "user", "content": "Where is my order?"}],
        )
        with client.messages.stream(
            model=MODEL,
            max_tokens=32,
            system=CACHED_SYSTEM,
            messages=[{"role": "user", "content": "Where is my order?"}],
        ) as stream:
            second = stream.get_final_message()
    assert first.usage.cache_creation_input_tokens > 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    created, read = events_for(gw.org.pk, 2)
    assert created.cache_creation_input_tokens == first.usage.cache_creation_input_tokens
    assert created.cache_read_input_tokens == 0
    assert read.stream
    assert read.cache_read_input_tokens == second.usage.cache_read_input_tokens
    assert read.cache_creation_input_tokens == 0
    assert read.input_tokens == second.usage.input_tokens
    assert read.output_tokens == second.usage.output_tokens


def test_one_hour_cache_writes_are_recorded_and_priced_at_their_rate(gw):
    from decimal import Decimal

    from usage.pricing import price_for

    system = [{**CACHED_SYSTEM[0], "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    question = [{"role": "user", "content": "Where is my parcel?"}]
    with gw.client() as client:
        message = client.messages.create(
            model=MODEL, max_tokens=32, system=system, messages=question
        )
        with client.messages.stream(
            model=MODEL,
            max_tokens=32,
            system=[{**system[0], "text": "Other rules. " * 60}],
            messages=question,
        ) as stream:
            streamed = stream.get_final_message()  # fmt: skip
    written = message.usage.cache_creation.ephemeral_1h_input_tokens
    assert written == message.usage.cache_creation_input_tokens > 0
    created, created_streamed = events_for(gw.org.pk, 2)
    assert created.cache_creation_input_tokens == written
    assert created.cache_creation_1h_input_tokens == written
    assert created_streamed.stream
    streamed_written = streamed.usage.cache_creation.ephemeral_1h_input_tokens
    assert created_streamed.cache_creation_1h_input_tokens == streamed_written > 0
    price = price_for(MODEL)
    expected = (
        price.input * message.usage.input_tokens
        + price.output * message.usage.output_tokens
        + price.input * 2 * written  # 1-hour writes cost twice the input price
    )
    assert created.cost_micros == int(expected.to_integral_value(rounding="ROUND_CEILING"))
    assert price.cache_write_1h == price.input * 2 != price.cache_write
    assert isinstance(expected, Decimal)


def test_messages_stream_relays_text_and_final_message(gw):
    with (
        gw.client() as client,
        client.messages.stream(
            model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Tell me a story"}]
        ) as stream,
    ):
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text and len(text.split()) == final.usage.output_tokens
    [event] = events_for(gw.org.pk, 1)
    assert event.stream and event.status == 200
    assert event.input_tokens == final.usage.input_tokens
    assert event.output_tokens == final.usage.output_tokens


def test_count_tokens_and_models_pass_through(gw):
    with gw.client() as client:
        counted = client.messages.count_tokens(
            model=MODEL, messages=[{"role": "user", "content": "Count me"}]
        )
        models = client.models.list()
        one = client.models.retrieve("claude-sonnet-4-5")
    assert counted.input_tokens > 0
    assert MODEL in [m.id for m in models.data]
    assert one.id.startswith("claude-sonnet-4-5")
    events = events_for(gw.org.pk, 3)
    assert [e.endpoint for e in events] == ["count_tokens", "models", "models"]
    assert all(e.status == 200 for e in events)


def test_upstream_headers_come_back_and_version_is_forwarded(gw):
    response = httpx.post(
        f"{gw.url}/v1/messages",
        headers={"x-api-key": gw.key, "anthropic-version": "2023-06-01"},
        json={"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_sim_")
    assert response.headers["anthropic-ratelimit-requests-limit"]
    assert response.headers["console-request-id"].startswith("req_gw_")


def test_bearer_authorization_is_accepted(gw):
    response = httpx.get(f"{gw.url}/v1/models", headers={"authorization": f"Bearer {gw.key}"})
    assert response.status_code == 200


def test_revoked_key_is_refused_with_authentication_error(gw):
    revoke_api_key(key=gw.key_row, actor=None)
    with gw.client() as client, pytest.raises(anthropic.AuthenticationError) as raised:
        client.messages.create(
            model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "hi"}]
        )
    assert "revoked" in raised.value.message
    [event] = events_for(gw.org.pk, 1)  # the organization is known: metered to it
    assert event.status == 401 and event.error_type == "authentication_error"


def test_unknown_and_missing_keys_are_refused(gw):
    from apikeys.keyformat import generate_key

    with gw.client(key=generate_key()) as client, pytest.raises(anthropic.AuthenticationError) as e:
        client.models.list()
    assert "does not exist" in e.value.message
    from gateway.app import stats

    missing_before = stats["missing_key"]
    response = httpx.get(f"{gw.url}/v1/models")
    assert response.status_code == 401
    # No key, no organization: counted, not recorded as anyone's usage.
    assert stats["missing_key"] == missing_before + 1
    assert response.json()["error"]["type"] == "authentication_error"
    assert "x-api-key" in response.json()["error"]["message"]
    assert events_for(gw.org.pk, 0, timeout=0.2) == []


def test_expired_key_is_refused_with_authentication_error(gw):
    import datetime as dt

    from apikeys.models import ApiKey

    # A key minted with a future expiry that has since passed (nothing cached it yet).
    ApiKey.objects.filter(pk=gw.key_row.pk).update(
        expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    )
    with gw.client() as client, pytest.raises(anthropic.AuthenticationError) as raised:
        client.models.list()
    assert "expired" in raised.value.message
    [event] = events_for(gw.org.pk, 1)
    assert event.status == 401 and event.api_key_id == gw.key_row.pk
