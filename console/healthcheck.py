"""The container health check: `python -m console.healthcheck [/readyz]` asks the web process
in this container for a path and exits 0 on a 200, 1 otherwise (docker-compose.yml).

It speaks to 127.0.0.1 as the load balancer would: with a Host the settings allow (the first of
ALLOWED_HOSTS) and `X-Forwarded-Proto: https`, so neither ALLOWED_HOSTS nor the HTTPS redirect of
production settings turns the answer into a 400 or a 301. Standard library only: it starts fast
and imports nothing of Django.
"""

from __future__ import annotations

import http.client
import os
import sys


def allowed_host() -> str:
    for host in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = host.strip().lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def check(path: str, port: int, timeout: float = 5.0) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(
            "GET", path, headers={"Host": allowed_host(), "X-Forwarded-Proto": "https"}
        )
        response = connection.getresponse()
        return response.status, response.read(2000).decode("utf-8", "replace")
    finally:
        connection.close()


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/healthz"
    port = int(os.environ.get("PORT", "8000"))
    try:
        status, body = check(path, port)
    except OSError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: {status} {body.strip()}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
