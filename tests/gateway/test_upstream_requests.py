"""What reaches the upstream and what comes back: model ids cannot steer its path or query, only
the paging parameters are forwarded, answers are asked uncompressed (a compressed one is relayed
and still metered), header values and model names are checked before anything leaves, and stream
events of the wrong shape never break the relay."""

from __future__ import annotations

import gzip

import httpx
import orjson
import pytest

from gateway.services import configure_upstream
from gateway.sse import StreamUsage

from .conftest import MODEL, events_for
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


def test_stream_events_of_the_wrong_shape_never_break_the_relay():
    parser = StreamUsage()
    parser.feed(b'event: message_start\ndata: {"type":"message_start","message":"oops"}\n\n')
    parser.feed(b'event: message_delta\ndata: {"type":"message_delta","usage":[1]}\n\n')
    parser.feed(b'event: error\ndata: {"type":"error","error":"boom"}\n\n')
    parser.feed(b'event: message_delta\ndata: {"type":"message_delta",'
                b'"usage":{"output_tokens":99999999999999999999}}\n\n')  # fmt: skip
    assert parser.usage == {} and parser.error_type == "api_error" and parser.model is None
