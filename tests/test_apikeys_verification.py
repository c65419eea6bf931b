"""The gateway's key verification: each reason a key is refused, the in-process cache and its
invalidation across OS processes through Redis, and last-used stamps without a write per request."""

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection
from django.utils import timezone

from apikeys import services, verification
from apikeys.keyformat import generate_key
from apikeys.models import ApiKey
from apikeys.verification import Failure, averify_key, cache_is_live, verify_key
from core import hotpath

ROOT = Path(__file__).resolve().parent.parent


def issue(membership, **kwargs):
    workspace = kwargs.pop("workspace", None) or membership.workspaces.first()
    return services.create_api_key(
        membership=membership, workspace=workspace, name="Development", actor=None, **kwargs
    )


def wait_for(condition, timeout=5.0):
    """Poll `condition` until true; fail after `timeout` seconds (not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def live_cache(db):
    """The verification cache of this process, subscribed to invalidations."""
    verify_key(generate_key())  # starts the listener
    wait_for(cache_is_live)


pytestmark = pytest.mark.django_db


def test_a_created_key_verifies_with_its_context(world):
    issued = issue(world.member)
    result = verify_key(issued.plaintext)
    assert result.ok and result.failure is None
    context = result.context
    assert context.key_id == issued.key.pk
    assert context.organization_id == world.org.pk
    assert context.workspace_id == world.workspace.pk
    assert context.owner_id == world.member.user_id
    assert context.expires_at is None


def test_an_unknown_key_is_refused_as_unknown(world):
    result = verify_key(generate_key())
    assert result.failure == Failure.UNKNOWN and not result.ok and result.context is None
    assert "does not exist" in result.message


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k + " ",
        lambda k: " " + k,
        lambda k: k + "\n",
        lambda k: k.upper(),
        lambda k: k.swapcase(),
        lambda k: k.lower(),
        lambda k: k[:-2],
        lambda k: "Bearer " + k,
        lambda k: "",
        lambda k: None,
        lambda k: k.encode(),
    ],
)
def test_whitespace_wrong_case_and_junk_are_malformed_never_an_error(world, mangle):
    issued = issue(world.member)
    result = verify_key(mangle(issued.plaintext))
    assert result.failure == Failure.MALFORMED and result.message
    assert result.context is None


def test_a_bad_checksum_is_malformed(world):
    issued = issue(world.member)
    raw = issued.plaintext
    damaged = raw[:-1] + ("0" if raw[-1] != "0" else "1")
    result = verify_key(damaged)
    assert result.failure == Failure.MALFORMED and "checksum" in result.message


def test_a_revoked_key_is_refused_at_once_even_when_cached(world, live_cache):
    issued = issue(world.member)
    assert verify_key(issued.plaintext).ok
    assert verify_key(issued.plaintext).ok  # now served from the cache
    services.revoke_api_key(key=issued.key, actor=None)
    result = verify_key(issued.plaintext)
    assert result.failure == Failure.REVOKED
    assert result.context.key_id == issued.key.pk  # refusals can be attributed to the key


def test_an_expired_key_is_refused(world):
    issued = issue(world.member)
    ApiKey.objects.filter(pk=issued.key.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    verification._cache.entries.clear()  # an edit behind the services' back; see TTL test
    assert verify_key(issued.plaintext).failure == Failure.EXPIRED


def test_a_cached_key_expires_on_time_without_any_announcement(world, live_cache, monkeypatch):
    issued = issue(world.member)
    ApiKey.objects.filter(pk=issued.key.pk).update(
        expires_at=timezone.now() + dt.timedelta(hours=1)
    )
    assert verify_key(issued.plaintext).ok
    assert verify_key(issued.plaintext).ok
    real_time = time.time
    monkeypatch.setattr(verification.time, "time", lambda: real_time() + 3601)
    assert verify_key(issued.plaintext).failure == Failure.EXPIRED


def test_async_verification_gives_the_same_answers(world):
    issued = issue(world.member)
    services.revoke_api_key(key=issue(world.admin, workspace=world.workspace).key, actor=None)

    async def check():
        return [
            await averify_key(issued.plaintext),
            await averify_key(issued.plaintext + " "),
            await averify_key(generate_key()),
        ]

    # Through async_to_sync, the ORM call of a cache miss comes back to this thread and so sees
    # this test's transaction, as a request's would.
    ok, malformed, unknown = async_to_sync(check)()
    assert ok.ok and ok.context.key_id == issued.key.pk
    assert malformed.failure == Failure.MALFORMED
    assert unknown.failure == Failure.UNKNOWN


def counting_loads(monkeypatch) -> list[str]:
    """Wrap the real database load so a test can count how often it runs."""
    loads: list[str] = []
    real = verification._load

    def load(key_hash):
        loads.append(key_hash)
        return real(key_hash)

    monkeypatch.setattr(verification, "_load", load)
    return loads


def test_concurrent_misses_of_one_key_share_one_database_load(world, live_cache, monkeypatch):
    import asyncio

    issued = issue(world.member)
    loads = counting_loads(monkeypatch)

    async def burst():
        return await asyncio.gather(*(averify_key(issued.plaintext) for _ in range(50)))

    results = async_to_sync(burst)()
    assert all(r.ok and r.context.key_id == issued.key.pk for r in results)
    assert loads == [issued.key.key_hash]


def test_a_busy_key_is_refreshed_ahead_of_its_ttl_without_waiting(world, live_cache, monkeypatch):
    import asyncio

    issued = issue(world.member)
    loads = counting_loads(monkeypatch)
    assert async_to_sync(averify_key)(issued.plaintext).ok
    assert len(loads) == 1
    ApiKey.objects.filter(pk=issued.key.pk).update(name="Renamed behind the cache's back")
    monkeypatch.setattr(verification, "REFRESH_AHEAD", verification.CACHE_TTL)  # always "near"

    async def burst():
        first = await asyncio.gather(*(averify_key(issued.plaintext) for _ in range(20)))
        for _ in range(100):  # let the one background refresh finish
            if len(loads) == 2 and not verification._inflight:
                break
            await asyncio.sleep(0.01)
        return first, await averify_key(issued.plaintext)

    served, after = async_to_sync(burst)()
    assert all(r.context.name == "Development" for r in served)  # from the entry, no waiting
    assert len(loads) >= 2 and set(loads) == {issued.key.key_hash}
    assert after.context.name == "Renamed behind the cache's back"


def test_a_load_begun_before_a_revocation_is_not_joined_after_it(world, live_cache):
    import asyncio

    issued = issue(world.member)

    async def race():
        before = verification._start_load(issued.key.key_hash)
        verification._cache.evict(issued.key.key_hash, from_message=False)  # a revocation
        after = verification._start_load(issued.key.key_hash)
        await asyncio.gather(before, after)
        return before is after

    assert async_to_sync(race)() is False


def test_a_change_made_by_another_process_is_announced_through_redis(world, live_cache):
    """What another process's revocation looks like from here: a message on the channel."""
    issued = issue(world.member)
    assert verify_key(issued.plaintext).ok
    assert issued.key.key_hash in verification._cache.entries
    ApiKey.objects.filter(pk=issued.key.pk).update(revoked_at=timezone.now())
    verification._publish(issued.key.key_hash)
    wait_for(lambda: issued.key.key_hash not in verification._cache.entries, timeout=1.0)
    assert verify_key(issued.plaintext).failure == Failure.REVOKED


def test_a_missed_message_is_caught_by_the_version_counter(world, live_cache):
    issued = issue(world.member)
    assert verify_key(issued.plaintext).ok
    ApiKey.objects.filter(pk=issued.key.pk).update(revoked_at=timezone.now())
    # The version moves but the message is lost: the listener must notice within ~1 second.
    hotpath.client().incr(verification.VERSION_KEY, 5)
    wait_for(lambda: issued.key.key_hash not in verification._cache.entries, timeout=2.0)
    assert verify_key(issued.plaintext).failure == Failure.REVOKED


def test_a_cached_result_is_not_used_past_its_ttl(world, live_cache, monkeypatch):
    issued = issue(world.member)
    assert verify_key(issued.plaintext).ok
    ApiKey.objects.filter(pk=issued.key.pk).update(revoked_at=timezone.now())
    assert verify_key(issued.plaintext).ok  # still cached, nobody announced the change
    monkeypatch.setattr(verification, "CACHE_TTL", 0.0)
    assert verify_key(issued.plaintext).failure == Failure.REVOKED


def test_last_used_is_stamped_through_redis_at_most_once_a_minute(world, live_cache):
    issued = issue(world.member)
    key_id = str(issued.key.pk)
    client = hotpath.client()
    client.delete(verification.LAST_USED_KEY)
    with connection.execute_wrapper(_refuse_writes):
        for _ in range(50):
            assert verify_key(issued.plaintext).ok
    wait_for(lambda: client.hexists(verification.LAST_USED_KEY, key_id))
    for _ in range(50):
        assert verify_key(issued.plaintext).ok
    assert str(issued.key.pk) not in map(str, verification._cache.used)  # throttled
    issued.key.refresh_from_db()
    assert issued.key.last_used_at is None  # no database write per request
    assert services.flush_last_used() == 1
    issued.key.refresh_from_db()
    assert timezone.now() - issued.key.last_used_at < dt.timedelta(minutes=1)
    assert not client.exists(verification.LAST_USED_KEY)
    assert services.flush_last_used() == 0


def test_flushing_never_moves_last_used_backwards(world):
    issued = issue(world.member)
    recent = timezone.now().replace(microsecond=0)
    ApiKey.objects.filter(pk=issued.key.pk).update(last_used_at=recent)
    stale = int((recent - dt.timedelta(hours=1)).timestamp())
    hotpath.client().hset(verification.LAST_USED_KEY, str(issued.key.pk), stale)
    services.flush_last_used()
    issued.key.refresh_from_db()
    assert issued.key.last_used_at == recent


def _refuse_writes(execute, sql, params, many, context):
    assert sql.lstrip().split()[0].upper() in {"SELECT", "SAVEPOINT", "RELEASE"}, sql
    return execute(sql, params, many, context)


def test_the_standin_plays_redis_without_redis_url(settings):
    settings.REDIS_URL = ""
    standin = hotpath.client()
    assert hotpath.is_standin() and standin is hotpath.client()
    standin.set("apikeys:probe", "1")
    assert hotpath.client().get("apikeys:probe") == b"1"


# -- two OS processes ------------------------------------------------------------------------

VERIFIER = """
import sys, time
import django
django.setup()
from apikeys.verification import cache_is_live, verify_key

raw = sys.stdin.readline().strip()
deadline = time.monotonic() + 20
# Ready once results come from the cache: the key verified while the listener was live.
while not (verify_key(raw).ok and cache_is_live() and verify_key(raw).ok):
    if time.monotonic() > deadline:
        print("never ready", cache_is_live(), verify_key(raw), flush=True)
        sys.exit(1)
    time.sleep(0.01)
print("ready", flush=True)
while True:
    result = verify_key(raw)
    if not result.ok:
        print(f"refused {result.failure} {time.time()!r}", flush=True)
        break
    if time.monotonic() > deadline + 30:
        print("never refused", flush=True)
        sys.exit(1)
    time.sleep(0.001)
"""


@pytest.mark.django_db(transaction=True)
def test_a_key_revoked_here_is_refused_by_another_process_within_a_second(world):
    assert settings.REDIS_URL, "this test needs a real Redis shared by two processes"
    issued = issue(world.member)
    database = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "console.settings",
        "DATABASE_URL": (
            f"postgres://{database['USER']}:{database['PASSWORD'] or ''}@{database['HOST']}:"
            f"{database['PORT'] or 5432}/{database['NAME']}"
        ),
        "REDIS_URL": settings.REDIS_URL,
    }
    other = subprocess.Popen(
        [sys.executable, "-c", VERIFIER],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        other.stdin.write(issued.plaintext + "\n")
        other.stdin.flush()
        status = other.stdout.readline().strip()
        assert status == "ready"
        revoked_at = time.time()
        services.revoke_api_key(key=issued.key, actor=None)  # commits, then announces
        outcome = other.stdout.readline().split()
        assert outcome[:2] == ["refused", "revoked"]
        assert float(outcome[2]) - revoked_at < 1.0
    finally:
        other.kill()
        other.wait()
