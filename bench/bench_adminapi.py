"""Does the Admin API slow /v1/messages? The Admin API is served by Django views (adminapi/,
decision 0016); the gateway keeps its lean path. This measures, in one run:

1. /v1/messages through the gateway at one client, alone (p50/p99), beside the simulator direct;
2. the same while 4 clients hammer GET /v1/organizations/users (Django, a database read each);
3. GET /v1/organizations/users and /v1/organizations/me at one client (what a script sees).

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/bench_adminapi.py

Same processes as bench_gateway.py (simulator, uvicorn console.asgi with 2 workers, wrk), in a
database of its own. The machine is shared: compare the figures of one run with each other.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("BENCH_GATEWAY_PORT", "9192")
os.environ.setdefault("BENCH_SIM_PORT", "9191")

import bench_gateway as base
from django.conf import settings
from django.db import connection

SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))
GET_SCRIPT = 'wrk.method = "GET"\nwrk.headers["x-api-key"] = "%s"\n'


def wrk_get(url: str, key: str, clients: int, seconds: int) -> subprocess.Popen:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(GET_SCRIPT % key)
    threads = "1" if clients == 1 else "2"
    return subprocess.Popen(  # noqa: S603
        ["wrk", "-t", threads, "-c", str(clients), "-d", f"{seconds}s", "--latency",  # noqa: S607
         "-s", script.name, url],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def parse(out: str) -> dict:
    lines = out.splitlines()
    return {
        "rps": float(next(x for x in lines if "Requests/sec" in x).split()[1]),
        "p50": base._ms(next(x for x in lines if x.strip().startswith("50%")).split()[1]),
        "p99": base._ms(next(x for x in lines if x.strip().startswith("99%")).split()[1]),
        "non2xx": sum(int(n) for x in lines if "Non-2xx" in x for n in re.findall(r"\d+", x)),
    }


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 180) -> None:
    """bench_gateway's wait, longer: two console workers start slowly on a loaded machine."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            base.httpx.get(url, timeout=0.5)
            return
        except base.httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def setup(simulator_url: str) -> tuple[str, str]:
    from apikeys.services import create_admin_key
    from members.models import Membership, Role, User

    key, org_id = base.setup_org(simulator_url)
    membership = Membership.objects.get(organization_id=org_id)
    for n in range(200):  # a page of 20 out of 200 members
        user = User.objects.create_user(f"bench{n}@example.com", None)
        Membership.objects.create(organization_id=org_id, user=user, role=Role.MEMBER)
    admin_key = create_admin_key(membership=membership, name="bench", actor=None).plaintext
    return key, admin_key


def run(key: str, admin_key: str) -> dict:
    env = {**os.environ}
    sim = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "gateway.simulator", "--port", str(base.SIM_PORT)], cwd=base.ROOT
    )
    console = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "uvicorn", "console.asgi:application",
         "--port", str(base.GATEWAY_PORT), "--workers", "2", "--no-access-log",
         "--log-level", "warning", "--loop", "uvloop", "--http", "httptools"],
        cwd=base.ROOT, env=env,
    )  # fmt: skip
    results = {}
    try:
        wait_ready(f"http://127.0.0.1:{base.SIM_PORT}/healthz", sim)
        through = f"http://127.0.0.1:{base.GATEWAY_PORT}"
        wait_ready(through + "/healthz", console)
        users = through + "/v1/organizations/users"
        base.wrk(through, key, 8, False, seconds=2)  # warm the caches and pools
        parse(wrk_get(users, admin_key, 2, 2).communicate()[0])
        results["direct"] = base.wrk(f"http://127.0.0.1:{base.SIM_PORT}", key, 1, False, SECONDS)
        results["messages alone"] = base.wrk(through, key, 1, False, SECONDS)
        load = wrk_get(users, admin_key, 4, SECONDS + 2)
        time.sleep(1)
        results["messages beside admin load"] = base.wrk(through, key, 1, False, SECONDS)
        results["admin users, 4 clients (the load)"] = parse(load.communicate()[0])
        for name, url in (
            ("admin users, 1 client", users),
            ("admin me, 1 client", through + "/v1/organizations/me"),
        ):
            results[name] = parse(wrk_get(url, admin_key, 1, SECONDS).communicate()[0])
    finally:
        for proc in (console, sim):
            proc.terminate()
            proc.wait(20)
    return results


def main() -> None:
    settings_dict = connection.settings_dict
    original_name = settings_dict["NAME"]
    bench_name = f"bench_adminapi_{os.getpid()}"
    settings_dict.setdefault("TEST", {})["NAME"] = bench_name
    namespace = f"benchadmin{os.getpid()}:"
    settings.GATEWAY_REDIS_NAMESPACE = namespace
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    os.environ["DATABASE_URL"] = re.sub(
        r"/[^/?]+(\?|$)", f"/{bench_name}\\1", os.environ["DATABASE_URL"], count=1
    )
    os.environ["GATEWAY_REDIS_NAMESPACE"] = namespace
    os.environ["GATEWAY_UPSTREAM_HOSTS"] = os.environ["GATEWAY_LOCAL_UPSTREAM_HOSTS"] = "127.0.0.1"
    settings.GATEWAY_UPSTREAM_HOSTS = settings.GATEWAY_LOCAL_UPSTREAM_HOSTS = ["127.0.0.1"]
    redis_url = re.sub(r"/\d+$", "", settings.REDIS_URL) + "/" + base.BENCH_REDIS_DB
    os.environ["REDIS_URL"] = settings.REDIS_URL = redis_url
    try:
        key, admin_key = setup(f"http://127.0.0.1:{base.SIM_PORT}")
        connection.close()
        results = run(key, admin_key)
        print(f"adminapi bench: 2 console workers, wrk, {SECONDS} s a run (ms)")
        for name, r in results.items():
            extra = f"  non-2xx {r['non2xx']}" if r.get("non2xx") else ""
            print(f"  {name:36} p50 {r['p50']:6.2f}  p99 {r['p99']:6.2f} {r['rps']:6.0f}/s{extra}")
    finally:
        from core import hotpath

        client = hotpath.client()
        for redis_key in client.scan_iter(match=namespace + "*"):
            client.delete(redis_key)
        connection.creation.destroy_test_db(original_name, verbosity=0)


if __name__ == "__main__":
    main()
