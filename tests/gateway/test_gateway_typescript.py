"""The official TypeScript SDK (@anthropic-ai/sdk, run with node) through the gateway: one create
and one stream. `make test` installs the SDK with `npm ci` when node_modules is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import MODEL, events_for

pytestmark = pytest.mark.django_db(transaction=True)

TS_DIR = Path(__file__).parent / "ts"


@pytest.fixture(scope="module")
def ts_sdk() -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is required for the TypeScript SDK test")
    if not (TS_DIR / "node_modules" / "@anthropic-ai" / "sdk").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TS_DIR, check=True)
    return TS_DIR


def test_typescript_sdk_create_and_stream_through_the_gateway(gw, ts_sdk):
    env = {**os.environ, "GATEWAY_URL": gw.url, "CONSOLE_KEY": gw.key, "MODEL": MODEL}
    done = subprocess.run(
        ["node", "run.mjs"], cwd=ts_sdk, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    created, final = result["created"], result["final"]
    assert created["type"] == "message" and created["content"][0]["text"]
    assert result["streamedText"] == final["content"][0]["text"]
    assert result["authError"] == {"status": 401, "name": "AuthenticationError"}
    first, second = events_for(gw.org.pk, 2)
    assert not first.stream and first.output_tokens == created["usage"]["output_tokens"]
    assert second.stream and second.output_tokens == final["usage"]["output_tokens"]
    assert second.input_tokens == final["usage"]["input_tokens"]
