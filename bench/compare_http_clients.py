"""Measure the gateway's candidate upstream HTTP clients (aiohttp, httpx) on this machine.

    .venv/bin/python bench/compare_http_clients.py

Starts the simulator (one process) and, per client, a bare pass-through proxy (bench/proxy_probe.py,
two uvicorn workers), then drives both with wrk: 64 connections for throughput and one connection
for the latency the proxy adds. Results are recorded in docs/decisions/0003-gateway-http-client.md.
Not named bench_*.py: `make bench` runs the gateway benchmark, this is a one-off decision aid.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BODY = (
    '{"model":"claude-haiku-4-5","max_tokens":64,'
    '"messages":[{"role":"user","content":"hello there, how are you"}]%s}'
)
WRK_LUA = """
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = "sk-probe"
wrk.body = '%s'
"""


def start(args, env=None, port=None):
    proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})})  # noqa: S603
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{args} did not start")


def wrk(url, connections, stream, seconds=8):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA % (BODY % (',"stream":true' if stream else "")))
    out = subprocess.run(  # noqa: S603
        [  # noqa: S607
            "wrk",
            "-t",
            "1" if connections == 1 else "2",
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            f.name,
            url + "/v1/messages",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(next(line for line in out.splitlines() if "Requests/sec" in line).split()[1])
    p50 = next(line for line in out.splitlines() if line.strip().startswith("50%")).split()[1]
    p99 = next(line for line in out.splitlines() if line.strip().startswith("99%")).split()[1]
    return rps, p50, p99


def main():
    sim = start([PY, "-m", "gateway.simulator", "--port", "9191"], port=9191)
    try:
        for label, conns in (("64 clients", 64), ("1 client", 1)):
            for stream in (False, True):
                print(
                    f"simulator direct  {label:10} stream={stream!s:5}",
                    wrk("http://127.0.0.1:9191", conns, stream),
                )
        for client in ("aiohttp", "httpx"):
            proxy = start(
                [
                    PY,
                    "-m",
                    "uvicorn",
                    "bench.proxy_probe:app",
                    "--port",
                    "9192",
                    "--workers",
                    "2",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    "--loop",
                    "uvloop",
                    "--http",
                    "httptools",
                ],
                env={"PROBE_CLIENT": client, "PROBE_UPSTREAM": "http://127.0.0.1:9191"},
                port=9192,
            )
            time.sleep(2)
            try:
                for label, conns in (("64 clients", 64), ("1 client", 1)):
                    for stream in (False, True):
                        print(
                            f"{client:8} proxy    {label:10} stream={stream!s:5}",
                            wrk("http://127.0.0.1:9192", conns, stream),
                            flush=True,
                        )
            finally:
                proxy.terminate()
                proxy.wait(10)
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    main()
