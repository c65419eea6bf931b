"""Regressions from a review of the gateway: what reached the upstream, what the usage path
could not store, and how counters behave around a Redis loss. Each was reproduced first."""

from __future__ import annotations

import gzip
import json
import time

import httpx
import orjson
import pytest

from billing import spend
from core import hotpath
from gateway.services import configure_upstream
from gateway.sse import StreamUsage
from usage.ingest import dead_letter_key, drain, event_row, store_events
from usage.models import UsageEvent
from usage.stream import UsagePublisher, dump_event

from .conftest import MODEL, events_for, usage_event
from .servers import serve_in_thread

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingUpstream:
    """A minimal Anthropic-like upstream that records what reached it and can gzip its JSON."""

    def __init__(self, gzip_answers: bool = False) -> None:
        self.seen: list[dict] = []
        self.gzip_answers = gzip_answers

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v for k, v in scope["headers"]}
        self.seen.append(
            {"path": scope["path"], "query": scope["query_string"], "headers": headers}
        )
        payload = orjson.dumps({
            "id": "msg_rec", "type": "message", "role": "assistant", "model": MODEL,
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 7, "output_tokens": 3},
        } if scope["path"] == "/v1/messages" else {"data": [], "has_more": False,
                                                    "first_id": None, "last_id": None})  # fmt: skip
        out = [(b"content-type", b"application/json"), (b"request-id", b"req_rec")]
        if self.gzip_answers:
            payload = gzip.compress(payload)
            out.append((b"content-encoding", b"gzip"))
        out.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": out})
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def recorded(gw):
    upstream = RecordingUpstream()
    running = serve_in_thread(upstream)
    configure_upstream(organization=gw.org, base_url=running.url, api_key="sk-rec", actor=None)
    from gateway import routing

    routing.forget_routes()
    yield gw, upstream
    running.stop()


def get(gw, path: str, **headers):
    return httpx.get(f"{gw.url}{path}", headers={"x-api-key": gw.key, **headers}, timeout=20)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/..%2Fmessages%2Fbatches",
        "/v1/models/..%2F..%2Fv1%2Ffiles?limit=5",
        "/v1/models/claude-haiku%2F..%2F..%2Fv1%2Ffiles",
        "/v1/models/x%3Fbeta%3Dtrue",
    ],
)
def test_a_model_id_cannot_carry_a_path_or_a_query_upstream(recorded, path):
    gw, upstream = recorded
    response = get(gw, path)
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"
    assert upstream.seen == []  # nothing reached the upstream with the organization's key


def test_the_models_list_forwards_only_the_paging_parameters(recorded):
    gw, upstream = recorded
    assert get(gw, "/v1/models?limit=2&after_id=claude-x&beta=true&x=%0d%0a").status_code == 200
    [seen] = upstream.seen
    assert seen["path"] == "/v1/models"
    assert seen["query"] == b"limit=2&after_id=claude-x"


def test_upstream_answers_are_asked_uncompressed_and_beta_headers_are_joined(recorded):
    gw, upstream = recorded
    response = httpx.post(
        f"{gw.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
        headers=[("x-api-key", gw.key), ("anthropic-beta", "a-1"), ("anthropic-beta", "b-2")],
    )
    assert response.status_code == 200
    [seen] = upstream.seen
    assert seen["headers"]["accept-encoding"] == b"identity"
    assert seen["headers"]["anthropic-beta"] == b"a-1,b-2"


def test_a_compressed_answer_keeps_its_encoding_and_is_still_metered(gw):
    upstream = RecordingUpstream(gzip_answers=True)
    running = serve_in_thread(upstream)
    try:
        configure_upstream(organization=gw.org, base_url=running.url, api_key="sk-gz", actor=None)
        from gateway import routing

        routing.forget_routes()
        with gw.client() as client:
            message = client.messages.create(
                model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}]
            )
    finally:
        running.stop()
    assert message.usage.output_tokens == 3  # httpx decoded it: the encoding was forwarded
    [event] = events_for(gw.org.pk, 1)
    assert (event.input_tokens, event.output_tokens) == (7, 3) and event.cost_micros > 0


def test_non_ascii_header_values_are_refused(gw):
    response = httpx.post(
        f"{gw.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": gw.key, "anthropic-beta": "vé".encode()},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_an_empty_x_api_key_does_not_hide_a_bearer_token(gw):
    with httpx.Client(timeout=20) as client:
        for headers in (
            {"x-api-key": "", "authorization": f"Bearer {gw.key}"},
            {"authorization": f"bearer   {gw.key}"},
            {"authorization": f"Bearer\t{gw.key}"},
        ):
            response = client.get(f"{gw.url}/v1/models", headers=headers)
            assert response.status_code == 200, (headers, response.text)


def test_a_model_with_control_characters_is_refused_before_the_upstream(gw):
    response = httpx.post(
        f"{gw.url}/v1/messages",
        json={"model": MODEL + "\u0000", "max_tokens": 8,
              "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": gw.key},
    )  # fmt: skip
    assert response.status_code == 400
    [event] = events_for(gw.org.pk, 1)  # stored, not a poisoned batch
    assert event.status == 400 and "\x00" not in event.model


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


def test_stream_events_of_the_wrong_shape_never_break_the_relay():
    parser = StreamUsage()
    parser.feed(b'event: message_start\ndata: {"type":"message_start","message":"oops"}\n\n')
    parser.feed(b'event: message_delta\ndata: {"type":"message_delta","usage":[1]}\n\n')
    parser.feed(b'event: error\ndata: {"type":"error","error":"boom"}\n\n')
    parser.feed(b'event: message_delta\ndata: {"type":"message_delta",'
                b'"usage":{"output_tokens":99999999999999999999}}\n\n')  # fmt: skip
    assert parser.usage == {} and parser.error_type == "api_error" and parser.model is None


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


def test_a_body_that_keeps_arriving_is_not_cut_by_the_idle_timeout(gw, monkeypatch):
    import socket

    from gateway import app as gateway_app

    monkeypatch.setattr(gateway_app, "BODY_READ_TIMEOUT", 0.5)
    body = orjson.dumps(
        {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "x" * 60}]}
    )
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: " + gw.key.encode()
            + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n"
        )  # fmt: skip
        for start in range(0, len(body), 30):  # ~1.5 s in all, never 0.5 s silent
            sock.sendall(body[start : start + 30])
            time.sleep(0.3)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_the_simulator_refuses_absurdly_nested_content_in_the_apis_shape(simulator):
    depth = 500  # deep enough for Python recursion, within what JSON parsers accept
    nested = '{"type":"tool_result","tool_use_id":"t","content":[' * depth + '"x"' + "]}" * depth
    body = (
        f'{{"model":"{MODEL}","max_tokens":8,"messages":[{{"role":"user","content":[{nested}]}}]}}'
    )
    response = httpx.post(
        f"{simulator.url}/v1/messages", content=body,
        headers={"x-api-key": "k", "content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
