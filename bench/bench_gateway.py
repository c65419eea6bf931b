"""Gateway overhead and throughput: the same load against the simulator directly and through the
gateway, in one run (design targets: added p50 <= 1.0 ms and p99 <= 3 ms at one client;
>= 2,000 req/s non-streaming and >= 1,500 streaming at 64 clients).

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/bench_gateway.py

Processes, all on this machine: the simulator (`python -m gateway.simulator`, one worker), the
console's ASGI app (`uvicorn console.asgi:application`, BENCH_WORKERS workers, default 2, as
`make run`), and wrk as the load generator (C, light on CPU). The gateway does everything it does
in production: key verification (cached), routing (cached), pricing, usage events to the Redis
stream; the organization has no spending cap (`BENCH_CAP=1` gives it one, adding the Redis
reservation round trips). Works in a database of its own (created, migrated and dropped), and
after the load checks that every gateway request left exactly one event in the stream.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

MODEL = "claude-haiku-4-5-20251001"
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
SIM_PORT = int(os.environ.get("BENCH_SIM_PORT", "9181"))
GATEWAY_PORT = int(os.environ.get("BENCH_GATEWAY_PORT", "9182"))
BENCH_REDIS_DB = os.environ.get("BENCH_REDIS_DB", "13")
TARGET_ADDED_P50_MS, TARGET_ADDED_P99_MS = 1.0, 3.0
TARGET_RPS = {False: 2000, True: 1500}
BODY = (
    '{"model":"%s","max_tokens":64,"messages":[{"role":"user","content":"Hello there, how are '
    'you today?"}]%s}'
)
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["x-api-key"] = "%s"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.body = '%s'
"""


def setup_org(simulator_url: str) -> tuple[str, int]:
    from apikeys.services import create_api_key
    from billing.models import SpendLimit
    from gateway.services import configure_upstream
    from members import services as member_services
    from members.models import User

    user = User.objects.create_user("bench-gateway@example.com", None)
    organization = member_services.create_organization(
        user=user, name="Bench gateway", slug="bench-gateway"
    )
    membership = organization.memberships.get()
    workspace = organization.workspaces.get(is_default=True)
    configure_upstream(
        organization=organization, base_url=simulator_url, api_key="sk-sim-bench", actor=None
    )
    if os.environ.get("BENCH_CAP"):
        SpendLimit.objects.create(organization=organization, monthly_cap_micros=10**15)
    key = create_api_key(membership=membership, workspace=workspace, name="bench", actor=None)
    return key.plaintext, organization.pk


def wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120  # two workers start slowly on a loaded machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, key: str, clients: int, stream: bool, seconds: int = SECONDS) -> dict:
    body = BODY % (MODEL, ',"stream":true' if stream else "")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % (key, body))
    threads = "1" if clients == 1 else "2"
    out = subprocess.run(  # noqa: S603
        [  # noqa: S607
            "wrk", "-t", threads, "-c", str(clients), "-d", f"{seconds}s", "--latency",
            "-s", script.name, url + "/v1/messages",
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)
    lines = out.splitlines()
    found = {
        "rps": float(next(x for x in lines if "Requests/sec" in x).split()[1]),
        "p50": _ms(next(x for x in lines if x.strip().startswith("50%")).split()[1]),
        "p99": _ms(next(x for x in lines if x.strip().startswith("99%")).split()[1]),
        "requests": int(next(x for x in lines if "requests in" in x).split()[0]),
        "errors": sum(
            int(n) for x in lines if "Non-2xx" in x or "Socket errors" in x
            for n in re.findall(r"\d+", x.split(":", 1)[1])
        ),
    }  # fmt: skip
    return found


def run(key: str) -> dict:
    env = {**os.environ}
    env.pop("SIM_LATENCY_MS", None)
    results = {}
    sim = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gateway.simulator", "--port", str(SIM_PORT)], cwd=ROOT, env=env
    )
    gateway = subprocess.Popen(  # noqa: S603
        [
            sys.executable, "-m", "uvicorn", "console.asgi:application",
            "--port", str(GATEWAY_PORT), "--workers", str(WORKERS), "--no-access-log",
            "--log-level", "warning", "--loop", "uvloop", "--http", "httptools",
        ],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        wait_ready(f"http://127.0.0.1:{SIM_PORT}/healthz", sim)
        wait_ready(f"http://127.0.0.1:{GATEWAY_PORT}/healthz", gateway)
        direct = f"http://127.0.0.1:{SIM_PORT}"
        through = f"http://127.0.0.1:{GATEWAY_PORT}"
        for stream in (False, True):  # warm both gateway workers' caches and pools
            results[("gateway-warmup", 8, stream)] = wrk(through, key, 8, stream, seconds=2)
        for clients in (1, 64):
            for stream in (False, True):
                results[("direct", clients, stream)] = wrk(direct, key, clients, stream)
                results[("gateway", clients, stream)] = wrk(through, key, clients, stream)
    finally:
        for proc in (gateway, sim):
            proc.terminate()
            proc.wait(20)
    return results


def report(results: dict) -> None:
    print(f"gateway bench: {WORKERS} gateway workers, simulator 1 worker, wrk, {SECONDS} s a run")
    for stream in (False, True):
        mode = "streaming" if stream else "non-streaming"
        d1, g1 = results[("direct", 1, stream)], results[("gateway", 1, stream)]
        d64, g64 = results[("direct", 64, stream)], results[("gateway", 64, stream)]
        added50, added99 = g1["p50"] - d1["p50"], g1["p99"] - d1["p99"]
        ok50 = "ok" if added50 <= TARGET_ADDED_P50_MS else "MISSED"
        ok99 = "ok" if added99 <= TARGET_ADDED_P99_MS else "MISSED"
        okrps = "ok" if g64["rps"] >= TARGET_RPS[stream] else "MISSED"
        print(
            f"gateway.{mode}.1_client  direct p50 {d1['p50']:.3f} ms p99 {d1['p99']:.3f} ms | "
            f"gateway p50 {g1['p50']:.3f} ms p99 {g1['p99']:.3f} ms | "
            f"added p50 {added50:.3f} ms (target <= {TARGET_ADDED_P50_MS}: {ok50}), "
            f"p99 {added99:.3f} ms (target <= {TARGET_ADDED_P99_MS}: {ok99})"
        )
        print(
            f"gateway.{mode}.64_clients direct {d64['rps']:.0f} req/s | gateway "
            f"{g64['rps']:.0f} req/s (target >= {TARGET_RPS[stream]}: {okrps}), "
            f"p50 {g64['p50']:.1f} ms p99 {g64['p99']:.1f} ms, errors {g64['errors']}"
        )


def check_events(results: dict, org_id: int) -> None:
    """Every gateway request, warm-up included, left exactly one usage event in the stream."""
    from core import hotpath
    from usage.stream import stream_key

    client = hotpath.client()
    stream = stream_key()
    count = 0
    last = "-"
    while True:
        batch = client.xrange(stream, min=last, count=10_000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            break
        marker = f'"organization_id":{org_id},'.encode()
        for _, fields in batch:  # an entry holds one event (e) or a batch, a line each (b)
            count += (fields.get(b"b") or fields.get(b"e") or b"").count(marker)
        last = batch[-1][0].decode()
    sent = sum(r["requests"] for k, r in results.items() if k[0].startswith("gateway"))
    # wrk counts completed responses; requests cut off when a run ends are metered too.
    verdict = "ok" if sent <= count <= sent + 64 * 6 else "MISMATCH"
    print(f"gateway.usage_events {count} for {sent} completed gateway requests: {verdict}")


def measure_journal(rounds: int = 7, events: int = 20_000) -> None:
    """The journal's own cost on the request path (decision 0007): `publish()` of a typical
    event with and without it, in this process, in interleaved rounds (the shared machine's
    noise hits both alike; the gateway figures above move by more than this from run to run)."""
    import statistics
    import tempfile
    import threading

    from usage.stream import UsagePublisher

    event = {
        "request_id": "req_gw_0123456789abcdef0123456789", "upstream_request_id": "req_011CT",
        "time": time.time(), "organization_id": 0, "workspace_id": 1, "api_key_id": 2,
        "endpoint": "messages", "model": MODEL, "stream": False, "status": 200, "error_type": "",
        "input_tokens": 1234, "output_tokens": 321, "cache_creation_input_tokens": 0,
        "cache_creation_1h_input_tokens": 0, "cache_read_input_tokens": 2048,
        "web_search_requests": 0, "web_fetch_requests": 0, "code_execution_seconds": 0,
        "service_tier": "standard", "cost_micros": 5321, "server_tool_cost_micros": 0,
        "fallback_priced": False, "latency_ms": 812.5,
    }  # fmt: skip
    per_event: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as directory:
        settings.USAGE_SPOOL_DIR = directory
        for _ in range(rounds):
            for journaling in (False, True):
                publisher = UsagePublisher()
                publisher._journaling = journaling
                publisher._thread = threading.Thread()  # no flushing thread: nothing is sent
                started = time.perf_counter()
                for n in range(events):
                    publisher.publish(event)
                    if n % 500 == 499:  # a flush's swap, as the thread does every 50 ms
                        _, segment = publisher._take()
                        if segment is not None:
                            segment.discard()
                per_event[journaling].append((time.perf_counter() - started) / events * 1e6)
                publisher.release_journal()
    without, with_ = statistics.median(per_event[False]), statistics.median(per_event[True])
    print(
        f"gateway.journal publish() per event, median of {rounds} interleaved rounds of "
        f"{events:,}: without the journal {without:.1f} us, with it {with_:.1f} us "
        f"(+{with_ - without:.1f} us a request; segment swaps included)"
    )


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    if not settings.REDIS_URL:
        raise SystemExit("Set REDIS_URL (the gateway processes must share one Redis).")
    settings_dict = connection.settings_dict
    original_name = settings_dict["NAME"]
    bench_name = f"bench_gateway_{os.getpid()}"
    settings_dict.setdefault("TEST", {})["NAME"] = bench_name
    namespace = f"bench{os.getpid()}:"
    settings.GATEWAY_REDIS_NAMESPACE = namespace
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    os.environ["DATABASE_URL"] = (
        re.sub(r"/[^/?]+(\?|$)", f"/{bench_name}\\1", os.environ["DATABASE_URL"], count=1)
        if "://" in os.environ.get("DATABASE_URL", "")
        else os.environ.get("DATABASE_URL", "")
    )
    os.environ["GATEWAY_REDIS_NAMESPACE"] = namespace
    os.environ["GATEWAY_UPSTREAM_HOSTS"] = "127.0.0.1"  # the simulator, for the gateway processes
    os.environ["GATEWAY_LOCAL_UPSTREAM_HOSTS"] = "127.0.0.1"  # over plain http
    settings.GATEWAY_UPSTREAM_HOSTS = settings.GATEWAY_LOCAL_UPSTREAM_HOSTS = ["127.0.0.1"]
    # Its own Redis database: the test suite flushes db 15 before every test, and a run on the
    # same machine would wipe the stream this bench counts.
    redis_url = re.sub(r"/\d+$", "", settings.REDIS_URL) + "/" + BENCH_REDIS_DB
    os.environ["REDIS_URL"] = settings.REDIS_URL = redis_url
    try:
        key, org_id = setup_org(f"http://127.0.0.1:{SIM_PORT}")
        connection.close()
        results = run(key)
        report(results)
        check_events(results, org_id)
        measure_journal()
    finally:
        from core import hotpath

        client = hotpath.client()
        for redis_key in client.scan_iter(match=namespace + "*"):
            client.delete(redis_key)
        connection.creation.destroy_test_db(original_name, verbosity=0)


if __name__ == "__main__":
    main()
