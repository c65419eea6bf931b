"""Invitation tokens never reach the server's access log: the uvicorn access log line shows
`/invitations/[token]/` instead of the link's token."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from .gateway.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "eyJpIjo0MiwidCI6InNlY3JldC10b2tlbi12YWx1ZSJ9:1uSECRET:SeCrEtSiGnAtUrE-value"


@pytest.mark.django_db(transaction=True)
def test_an_invitation_token_is_not_written_to_the_access_log(tmp_path):
    port = free_port()
    log = tmp_path / "access.log"
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}",
    }
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "console.asgi:application", "--port", str(port),
             "--log-level", "info", "--lifespan", "off"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.HTTPError:
                    assert server.poll() is None and time.monotonic() < deadline
                    time.sleep(0.1)
            response = httpx.get(f"http://127.0.0.1:{port}/invitations/{TOKEN}/?x=1", timeout=30)
            assert response.status_code == 400  # a damaged link: the page still answers
            time.sleep(0.5)
        finally:
            server.terminate()
            server.wait(20)
    text = log.read_text()
    assert "/invitations/[token]/" in text, text
    assert "SECRET" not in text and "SeCrEt" not in text
