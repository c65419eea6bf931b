"""What the gateway's metrics and request log cost per request, in CPU time, beside the gateway's
own per-request work measured in the same run (bench_gateway.py's throughput is too noisy on a
shared machine to show a few microseconds).

    .venv/bin/python bench/bench_observability.py

Measured: `gateway.metrics.observe` (a counter and a histogram) in-process and in multiprocess
mode (PROMETHEUS_MULTIPROC_DIR: values in mmap'd files, what docker-compose.yml runs), and
`gateway.app.log_request` with the plain and the JSON formatter writing to /dev/null. Reference:
the gateway's ClientHeaders + Meter + orjson-encoded usage event, the least a request does.
"""

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("BENCH_N", "100000"))

CHILD = r"""
import logging, os, sys, time
sys.path.insert(0, sys.argv[1])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
import django; django.setup()
import orjson
from gateway import metrics
from gateway.app import ClientHeaders, Meter, access_log, log_request
from console.logformat import JsonFormatter
N = int(sys.argv[2])
MODEL = "claude-haiku-4-5-20251001"
SCOPE = {"method": "POST", "path": "/v1/messages"}
HEADERS = [(b"x-api-key", b"csk_" + b"a" * 49), (b"anthropic-version", b"2023-06-01"),
           (b"content-type", b"application/json"), (b"content-length", b"120")]

def per_call(fn):
    fn()
    start = time.process_time()
    for _ in range(N):
        fn()
    return (time.process_time() - start) / N * 1e6

def reference():
    ClientHeaders(HEADERS)
    meter = Meter("req_gw_x", "messages")
    meter.organization_id, meter.model, meter.status = 1, MODEL, 200
    orjson.dumps({name: getattr(meter, name) for name in ("request_id", "organization_id",
                  "model", "status", "endpoint", "wall")})

meter = Meter("req_gw_0123456789abcdef", "messages")
meter.organization_id, meter.workspace_id, meter.api_key_id = 1, 2, 3
meter.model, meter.status = MODEL, 200
print("reference", per_call(reference))
print("metrics", per_call(lambda: metrics.observe("messages", 200, MODEL, 0.0123)))
handler = logging.StreamHandler(open(os.devnull, "w"))
access_log.handlers[:] = [handler]
access_log.propagate = False
access_log.setLevel(logging.INFO)
handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
print("log_plain", per_call(lambda: log_request(SCOPE, meter, 0.0123)))
handler.setFormatter(JsonFormatter())
print("log_json", per_call(lambda: log_request(SCOPE, meter, 0.0123)))
"""


def run(multiproc: bool) -> dict[str, float]:
    env = {**os.environ, "REQUEST_LOG": "true"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory() as directory:
        if multiproc:
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        out = subprocess.run(  # noqa: S603  (this interpreter, this script)
            [sys.executable, "-c", CHILD, str(ROOT), str(N)],
            cwd=ROOT, env=env, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    return {k: float(v) for k, v in (line.split() for line in out.splitlines() if line)}


def main() -> None:
    single, multi = run(False), run(True)
    ref = single["reference"]
    print(f"observability bench: CPU µs per request, {N:,} calls each (process_time)")
    print(f"  reference (headers + meter + event encode): {ref:.2f} µs")
    for label, value in (
        ("metrics, one process", single["metrics"]),
        ("metrics, multiprocess (compose)", multi["metrics"]),
        ("request log line, plain", single["log_plain"]),
        ("request log line, json", single["log_json"]),
    ):
        print(f"  {label}: {value:.2f} µs ({value / ref:.1f}x the reference)")
    total = multi["metrics"] + single["log_json"]
    print(
        f"  metrics + json line: {total:.2f} µs a request = {total * 2000 / 1e6 * 100:.1f} % of "
        f"one core at 2,000 req/s"
    )


if __name__ == "__main__":
    logging.disable(logging.NOTSET)
    main()
