"""A stream cut short, by its client or by the upstream, is metered for what was relayed, never
less, and the spend counter settles the same amount (docs/decisions/0008)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from billing.models import SpendLimit
from gateway.sse import StreamUsage
from usage.pricing import price_usage

from .conftest import MODEL, events_for
from .test_gateway_spend import counter_value

pytestmark = pytest.mark.django_db(transaction=True)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def full_answer(simulator, text: str, max_tokens: int) -> tuple[str, int]:
    """The whole answer to `text`, asked of the simulator directly (it is deterministic)."""
    answer = httpx.post(
        f"{simulator.url}/v1/messages",
        headers={"x-api-key": "sk-sim-direct"},
        json={"model": MODEL, "max_tokens": max_tokens, "messages": user(text)},
    ).json()
    return answer["content"][0]["text"], answer["usage"]["output_tokens"]


def sse_events(lines):
    """(event, data) pairs of an SSE stream read line by line."""
    event = None
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            yield event, orjson.loads(line[5:])


def test_a_client_that_closes_after_the_last_text_delta_is_metered_for_all_it_received(
    gw, simulator
):
    SpendLimit.objects.create(organization=gw.org, monthly_cap_micros=50_000_000)
    text = "tell me everything you know [sim:drip:300]"
    expected_text, expected_tokens = full_answer(simulator, text, 64)
    received = ""
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/messages",
        headers={"x-api-key": gw.key},
        json={"model": MODEL, "max_tokens": 64, "stream": True, "messages": user(text)},
        timeout=20,
    ) as response:
        for event, data in sse_events(response.iter_lines()):
            assert event != "message_delta", "the client was meant to leave before this"
            if event == "content_block_delta":
                received += data["delta"]["text"]
                if received == expected_text:
                    break  # the last text delta: leave before the usage arrives
    assert received == expected_text
    [event] = events_for(gw.org.pk, 1)
    assert (event.status, event.error_type) == (499, "client_disconnected")
    assert event.output_tokens >= expected_tokens
    assert event.output_tokens <= 64  # never more than max_tokens
    assert event.cost_micros >= price_usage(
        MODEL, {"input_tokens": event.input_tokens, "output_tokens": expected_tokens}
    )
    # The spend counter settled the event's cost: the reservation is not left standing.
    assert counter_value(gw.org.pk) == event.cost_micros


def test_an_upstream_that_drops_mid_stream_is_metered_for_what_was_relayed(gw):
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/messages",
        headers={"x-api-key": gw.key},
        json={"model": MODEL, "max_tokens": 64, "stream": True, "messages": user("[sim:drop]")},
        timeout=20,
    ) as response:
        relayed = "".join(
            data["delta"]["text"]
            for event, data in sse_events(response.iter_lines())
            if event == "content_block_delta"
        )
    words = len(relayed.split())  # the simulator's tokens are words
    assert words > 1
    [event] = events_for(gw.org.pk, 1)
    assert (event.status, event.error_type) == (502, "api_error")
    assert event.output_tokens >= words


def test_a_complete_stream_is_metered_by_the_upstreams_own_count(gw, simulator):
    text = "a short answer please"
    _, expected_tokens = full_answer(simulator, text, 64)
    client = gw.client()
    with client, client.messages.stream(model=MODEL, max_tokens=64, messages=user(text)) as stream:
        final = stream.get_final_message()
    [event] = events_for(gw.org.pk, 1)
    assert event.output_tokens == final.usage.output_tokens == expected_tokens


def chunk(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def start(output_tokens: int = 1) -> bytes:
    message = {"model": MODEL, "usage": {"input_tokens": 10, "output_tokens": output_tokens}}
    return chunk("message_start", {"type": "message_start", "message": message})


def delta(index: int, **content) -> bytes:
    return chunk(
        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": content}
    )


def test_every_block_type_counts_towards_a_cut_short_stream():
    parser = StreamUsage()
    parser.feed(start())
    parser.feed(
        chunk(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "tool_use", "id": "t1", "name": "get_weather"},
            },
        )
    )
    parser.feed(delta(0, type="input_json_delta", partial_json='{"city": "Paris"}'))
    parser.feed(delta(1, type="text_delta", text="héllo"))
    parser.feed(
        delta(2, type="citations_delta", citation={"type": "char_location", "cited_text": "ab"})
    )
    usage = parser.settled_usage(max_tokens=1000)
    relayed = len(b'{"city": "Paris"}') + len("héllo".encode()) + len("get_weather")
    assert usage["output_tokens"] >= relayed
    assert usage["input_tokens"] == 10


def test_a_cut_short_estimate_never_exceeds_max_tokens():
    parser = StreamUsage()
    parser.feed(start())
    parser.feed(delta(0, type="text_delta", text="x" * 5000))
    assert parser.settled_usage(max_tokens=100)["output_tokens"] == 100


def test_a_cut_short_thinking_stream_is_metered_at_max_tokens():
    # Summarized thinking relays fewer tokens than are billed: only max_tokens bounds them.
    parser = StreamUsage()
    parser.feed(start())
    parser.feed(delta(0, type="thinking_delta", thinking="Let me see."))
    assert parser.settled_usage(max_tokens=2048)["output_tokens"] == 2048


def test_the_final_usage_replaces_the_estimate():
    parser = StreamUsage()
    parser.feed(start())
    parser.feed(delta(0, type="text_delta", text="hello there, a fine day"))
    parser.feed(
        chunk(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 6},
            },
        )
    )
    assert parser.settled_usage(max_tokens=1000)["output_tokens"] == 6
