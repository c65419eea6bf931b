"""The request body's read timeout is an idle timeout: a body that keeps arriving is not cut."""

from __future__ import annotations

import time

import orjson
import pytest

from .conftest import MODEL

pytestmark = pytest.mark.django_db(transaction=True)


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
