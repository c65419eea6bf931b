"""API-key verification speed in one process (design target: >= 50,000 cached verifications/s).

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python bench/bench_apikeys.py

Works in a database of its own (created next to DATABASE_URL's, migrated, dropped at the end), so
it leaves nothing behind. Prints one figure per line:

    apikeys.verify_cached_per_s      known keys served by the in-process cache
    apikeys.verify_uncached_p50_ms   first verification of a key: checksum, HMAC, one indexed SELECT
    apikeys.verify_uncached_p99_ms
    apikeys.refuse_malformed_per_s   junk refused by the format check alone
"""

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

CACHED_TARGET = 50_000
KEYS = 400
CACHED_ROUNDS = 300_000


def setup_keys() -> list[str]:
    from apikeys.services import create_api_key
    from members import services as member_services
    from members.models import User
    from orgs import services as org_services

    user = User.objects.create_user("bench@example.com", None)
    organization = member_services.create_organization(
        user=user, name="Bench", slug="bench-apikeys"
    )
    membership = organization.memberships.get()
    workspace = org_services.create_workspace(organization=organization, actor=None, name="Bench")
    return [
        create_api_key(
            membership=membership, workspace=workspace, name=f"k{n}", actor=None
        ).plaintext
        for n in range(KEYS)
    ]


def wait_until_cache_is_live() -> None:
    from apikeys.keyformat import generate_key
    from apikeys.verification import cache_is_live, verify_key

    verify_key(generate_key())
    deadline = time.monotonic() + 10
    while not cache_is_live():
        if time.monotonic() > deadline:
            raise SystemExit("the key cache's Redis listener did not start")
        time.sleep(0.01)


def measure(keys: list[str]) -> None:
    from apikeys.verification import verify_key

    wait_until_cache_is_live()
    uncached = []
    for raw in keys:  # each key's first verification reads the database
        start = time.perf_counter()
        result = verify_key(raw)
        uncached.append(time.perf_counter() - start)
        assert result.ok, result
    hot = keys[:50]
    for raw in hot:
        assert verify_key(raw).ok
    start = time.perf_counter()
    for n in range(CACHED_ROUNDS):
        verify_key(hot[n % 50])
    cached_per_s = CACHED_ROUNDS / (time.perf_counter() - start)
    assert verify_key(hot[0]).ok

    junk = [raw[:-1] + ("0" if raw[-1] != "0" else "1") for raw in hot]
    start = time.perf_counter()
    for n in range(CACHED_ROUNDS // 3):
        verify_key(junk[n % 50])
    malformed_per_s = (CACHED_ROUNDS // 3) / (time.perf_counter() - start)

    uncached_ms = sorted(s * 1000 for s in uncached)
    p99 = uncached_ms[int(len(uncached_ms) * 0.99) - 1]
    print(f"apikeys.verify_cached_per_s {cached_per_s:.0f} (target >= {CACHED_TARGET})")
    print(f"apikeys.verify_uncached_p50_ms {statistics.median(uncached_ms):.3f}")
    print(f"apikeys.verify_uncached_p99_ms {p99:.3f}")
    print(f"apikeys.refuse_malformed_per_s {malformed_per_s:.0f}")


def main() -> None:
    settings_dict = connection.settings_dict
    settings_dict.setdefault("TEST", {})["NAME"] = f"bench_apikeys_{os.getpid()}"
    original_name = settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        keys = setup_keys()
        measure(keys)
    finally:
        from apikeys.models import ApiKey
        from apikeys.verification import LAST_USED_KEY
        from core import hotpath

        ids = [str(pk) for pk in ApiKey.objects.values_list("pk", flat=True)]
        if ids:
            hotpath.client().hdel(LAST_USED_KEY, *ids)
        connection.creation.destroy_test_db(original_name, verbosity=0)


if __name__ == "__main__":
    main()
