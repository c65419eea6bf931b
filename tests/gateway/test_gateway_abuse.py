"""Traffic without a valid key is rate limited per client address (429 in Anthropic's shape,
with retry-after), without costing requests with valid keys anything; and what the gateway checks
is what it forwards: a body whose top level repeats `model`, `max_tokens` or `stream` is refused
(another parser may take the first value where ours takes the last)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from apikeys import verification
from apikeys.keyformat import generate_key
from tests.usage_helpers import wait_for

from .conftest import MODEL, events_for

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


def post(gw, key: str | None, *, content=None, **headers):
    if key is not None:
        headers["x-api-key"] = key
    if content is None:
        content = orjson.dumps(BODY)
    headers.setdefault("content-type", "application/json")
    return httpx.post(f"{gw.url}/v1/messages", content=content, headers=headers, timeout=20)


@pytest.fixture
def low_limit(settings):
    settings.GATEWAY_AUTH_FAILURE_LIMIT = 5
    settings.GATEWAY_AUTH_FAILURE_WINDOW = 60
    return settings


def test_an_unknown_key_flood_is_answered_429_with_retry_after(gw, low_limit):
    assert post(gw, gw.key).status_code == 200  # a key in use
    answers = [post(gw, generate_key()) for _ in range(8)]
    assert [a.status_code for a in answers] == [401] * 5 + [429] * 3
    refused = answers[-1]
    assert refused.json()["type"] == "error"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    # A key in use (cached by this process, as its recent requests leave it) is not held back
    # at that address. (Cached now: the cache is cleared whenever Redis's key version jumps,
    # which other test runs sharing this Redis make it do.) The cache is trusted only while this
    # process's listener is subscribed: on a loaded machine it may still be subscribing, and its
    # start empties the cache, so wait for it before caching the key.
    wait_for(verification.cache_is_live, "the key cache's listener subscribed", timeout=30)
    verification.verify_key(gw.key)
    assert post(gw, gw.key).status_code == 200
    assert len(events_for(gw.org.pk, 2)) == 2


@pytest.mark.parametrize("key", [None, "not-a-key", "csk_short"])
def test_missing_and_malformed_keys_count_too(gw, low_limit, key):
    statuses = [post(gw, key).status_code for _ in range(7)]
    assert statuses[:5] == [401] * 5 and statuses[5:] == [429, 429]


def test_the_limit_is_per_client_address_behind_a_trusted_proxy(gw, low_limit):
    low_limit.TRUSTED_PROXY_COUNT = 1
    for _ in range(6):
        post(gw, generate_key(), **{"x-forwarded-for": "203.0.113.9"})
    assert post(gw, generate_key(), **{"x-forwarded-for": "203.0.113.9"}).status_code == 429
    assert post(gw, generate_key(), **{"x-forwarded-for": "198.51.100.4"}).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"%s","model":"claude-opus-4-1-20250805","max_tokens":8,"messages":%m}',
        b'{"model":"%s","max_tokens":8,"max_tokens":64000,"messages":%m}',
        b'{"model":"%s","max_tokens":8,"stream":false,"messages":%m,"stream":true}',
        b'{"model":"%s","\\u006dodel":"claude-opus-4-1-20250805","max_tokens":8,"messages":%m}',
        b'{"model" : "%s", "max_tokens":8, "messages":%m, "max_\\u0074okens": 9}',
    ],
)
def test_a_body_repeating_a_checked_key_is_refused(gw, body):
    messages = b'[{"role":"user","content":"hi"}]'
    response = post(
        gw, gw.key, content=body.replace(b"%s", MODEL.encode()).replace(b"%m", messages)
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "more than once" in error["message"]


def test_repeated_names_inside_nested_objects_are_fine(gw):
    body = {
        **BODY,
        "tools": [
            {"name": "pick", "description": "model and stream",
             "input_schema": {"type": "object", "properties": {"model": {"type": "string"},
                                                               "stream": {"type": "boolean"}}}},
            {"name": "pick2", "input_schema": {"type": "object",
                                               "properties": {"model": {"type": "string"}}}},
        ],
    }  # fmt: skip
    assert post(gw, gw.key, content=orjson.dumps(body)).status_code == 200
