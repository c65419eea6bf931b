"""Faults and bad input at the gateway: the client always gets Anthropic's error shape and status,
never a stack trace, and every request is metered exactly once."""

from __future__ import annotations

import socket
import time

import anthropic
import httpx
import pytest

from gateway import app as gateway_app
from gateway.services import configure_upstream

from .conftest import MODEL, events_for

pytestmark = pytest.mark.django_db(transaction=True)

OverloadedError = getattr(anthropic, "OverloadedError", anthropic.APIStatusError)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def post(gw, body=None, *, content=None, headers=None, timeout=20.0):
    headers = {"x-api-key": gw.key, **(headers or {})}
    return httpx.post(f"{gw.url}/v1/messages", json=body, content=content, headers=headers,
                      timeout=timeout)  # fmt: skip


def assert_anthropic_error(response, status: int, error_type: str) -> dict:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == error_type
    assert payload["error"]["message"]
    return payload


def test_upstream_overloaded_is_passed_through_and_metered_once(gw):
    with gw.client() as client, pytest.raises(OverloadedError) as raised:
        client.messages.create(model=MODEL, max_tokens=16, messages=user("hi [sim:overloaded]"))
    assert raised.value.status_code == 529
    [event] = events_for(gw.org.pk, 1)
    assert (event.status, event.error_type) == (529, "overloaded_error")


def test_upstream_rate_limit_keeps_its_retry_after(gw):
    response = post(gw, {"model": MODEL, "max_tokens": 8, "messages": user("x [sim:rate_limit]")})
    assert_anthropic_error(response, 429, "rate_limit_error")
    assert response.headers["retry-after"] == "7"
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    [event] = events_for(gw.org.pk, 1)
    assert (event.status, event.error_type) == (429, "rate_limit_error")


def test_upstream_server_error_is_passed_through(gw):
    response = post(gw, {"model": MODEL, "max_tokens": 8, "messages": user("[sim:server_error]")})
    assert_anthropic_error(response, 500, "api_error")
    assert len(events_for(gw.org.pk, 1)) == 1


def test_mid_stream_error_event_reaches_the_client_and_is_metered_once(gw):
    client = gw.client()
    with (
        client,
        pytest.raises(anthropic.APIStatusError) as raised,
        client.messages.stream(
            model=MODEL, max_tokens=64, messages=user("tell me [sim:stream_error]")
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert "Overloaded" in str(raised.value)
    [event] = events_for(gw.org.pk, 1)
    assert event.stream and event.error_type == "overloaded_error"
    assert event.input_tokens > 0  # from message_start


def test_upstream_dropping_the_stream_ends_it_with_an_api_error_event(gw):
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/messages",
        headers={"x-api-key": gw.key},
        json={"model": MODEL, "max_tokens": 64, "stream": True, "messages": user("[sim:drop]")},
    ) as response:
        text = response.read().decode()
    assert response.status_code == 200
    assert text.rstrip().endswith('"message":"The upstream API could not be reached."}}')
    [event] = events_for(gw.org.pk, 1)
    assert (event.status, event.error_type) == (502, "api_error")


def test_upstream_dropping_a_json_answer_is_a_502(gw):
    response = post(gw, {"model": MODEL, "max_tokens": 8, "messages": user("[sim:drop]")})
    assert_anthropic_error(response, 502, "api_error")
    assert len(events_for(gw.org.pk, 1)) == 1


def test_upstream_timeout_is_a_504(gw, simulator):
    configure_upstream(organization=gw.org, base_url=simulator.url, api_key="sk-sim-x",
                       timeout_seconds=1, actor=None)  # fmt: skip
    response = post(gw, {"model": MODEL, "max_tokens": 8, "messages": user("[sim:slow:2500]")})
    assert_anthropic_error(response, 504, "timeout_error")
    [event] = events_for(gw.org.pk, 1)
    assert (event.status, event.error_type) == (504, "timeout_error")


def test_client_disconnect_mid_stream_is_metered_once(gw):
    with httpx.stream(
        "POST",
        f"{gw.url}/v1/messages",
        headers={"x-api-key": gw.key},
        json={"model": MODEL, "max_tokens": 64, "stream": True,
              "messages": user("a long one [sim:drip:50]")},
    ) as response:  # fmt: skip
        first = next(response.iter_raw())
        assert first.startswith(b"event: message_start")
    [event] = events_for(gw.org.pk, 1)
    assert (event.status, event.error_type) == (499, "client_disconnected")
    assert event.stream and event.input_tokens > 0


def test_client_disconnect_before_the_upstream_answers_is_metered_once(gw):
    with pytest.raises(httpx.ReadTimeout):
        post(gw, {"model": MODEL, "max_tokens": 8, "messages": user("[sim:slow:600]")},
             timeout=0.2)  # fmt: skip
    [event] = events_for(gw.org.pk, 1)
    # The upstream did the work (and bills it): recorded as answered, with its tokens.
    assert event.status == 200 and event.output_tokens > 0


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        (b"not json at all", "application/json", "Invalid JSON body"),
        (b'{"model": "x", "messages": [], "max_tokens": 10', "application/json", "Invalid JSON"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b'{"messages": [], "max_tokens": 5}', "application/json", "model: Field required"),
        (b'{"model": "' + MODEL.encode() + b'", "max_tokens": 5}', "application/json",
         "messages: Field required"),
        (b'{"model": "m", "messages": []}', "application/json", "max_tokens: Field required"),
        (b'{"model": "m", "messages": [], "max_tokens": -5}', "application/json",
         "greater than or equal to 1"),
        (b'{"model": "m", "messages": [], "max_tokens": 0}', "application/json",
         "greater than or equal to 1"),
        (b'{"model": "m", "messages": [], "max_tokens": 99999999999}', "application/json",
         "above the gateway's limit"),
        (b'{"model": "m", "messages": [], "max_tokens": 1e400}', "application/json",
         "Invalid JSON"),
        (b'{"model": "m", "messages": [], "max_tokens": "10"}', "application/json",
         "valid integer"),
        (b'{"model": "m", "messages": [], "max_tokens": true}', "application/json",
         "valid integer"),
        (b'{"model": "m", "messages": [], "max_tokens": 5, "stream": "yes"}',
         "application/json", "valid boolean"),
        (b"model=m", "application/x-www-form-urlencoded", "Content-Type must be"),
        (b"<xml/>", "text/xml", "Content-Type must be"),
    ],
)  # fmt: skip
def test_bad_requests_are_anthropic_400s_and_metered(gw, body, content_type, needle):
    response = post(gw, content=body, headers={"content-type": content_type})
    payload = assert_anthropic_error(response, 400, "invalid_request_error")
    assert needle in payload["error"]["message"]
    [event] = events_for(gw.org.pk, 1)
    assert (event.status, event.error_type) == (400, "invalid_request_error")


def test_a_declared_body_over_32_mb_is_refused_before_reading(gw):
    answer = raw_request(
        gw.url,
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: " + gw.key.encode()
        + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(33 * 1024 * 1024).encode() + b"\r\n\r\n{",
    )  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"type":"request_too_large"' in answer
    assert len(events_for(gw.org.pk, 1)) == 1


def test_a_chunked_body_over_32_mb_is_refused_while_reading(gw):
    chunk = b" " * (1024 * 1024)

    def body():
        for _ in range(40):
            yield chunk

    try:
        response = httpx.post(f"{gw.url}/v1/messages", content=body(),
                              headers={"x-api-key": gw.key}, timeout=20)  # fmt: skip
    except httpx.HTTPError:  # the server may close while we still send: also a refusal
        pass
    else:
        assert_anthropic_error(response, 413, "request_too_large")
    [event] = events_for(gw.org.pk, 1)
    assert (event.status, event.error_type) == (413, "request_too_large")


def test_unknown_model_answer_comes_from_the_upstream(gw):
    response = httpx.get(f"{gw.url}/v1/models/claude-nonexistent-9",
                         headers={"x-api-key": gw.key})  # fmt: skip
    assert_anthropic_error(response, 404, "not_found_error")
    assert response.headers["request-id"].startswith("req_sim_")


def test_unknown_paths_and_methods_are_404s_in_anthropic_shape(gw):
    assert_anthropic_error(
        httpx.get(f"{gw.url}/v1/messages", headers={"x-api-key": gw.key}), 404, "not_found_error"
    )
    assert_anthropic_error(
        httpx.get(f"{gw.url}/v1/complete", headers={"x-api-key": gw.key}), 404, "not_found_error"
    )


def raw_request(url: str, data: bytes, *, wait: float = 5.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunk:
                    break
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_header_injection_attempts_never_reach_the_upstream(gw):
    body = b'{"model": "m", "messages": [], "max_tokens": 5}'
    answer = raw_request(
        gw.url,
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: " + gw.key.encode()
        + b"\r\nanthropic-beta: a\x01b\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body,
    )  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 400")


def test_a_slow_client_gets_a_timeout_error_and_is_metered(gw, monkeypatch):
    monkeypatch.setattr(gateway_app, "BODY_READ_TIMEOUT", 0.5)
    started = time.monotonic()
    answer = raw_request(
        gw.url,
        b"POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: " + gw.key.encode()
        + b"\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\"",
    )  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"type":"timeout_error"' in answer
    assert time.monotonic() - started < 5
    [event] = events_for(gw.org.pk, 1)
    assert event.status == 408
