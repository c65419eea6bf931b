"""A flood of unknown keys cannot flush the verification cache: unknown keys are remembered in a
bounded LRU of their own, so the keys in use stay cached."""

import time

import pytest

from apikeys import verification
from apikeys.keyformat import generate_key
from apikeys.services import create_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_cache(monkeypatch):
    monkeypatch.setattr(verification, "UNKNOWN_CACHE_ENTRIES", 50, raising=False)
    monkeypatch.setattr(verification, "CACHE_MAX_ENTRIES", 50)
    # The cache is used only while its invalidation listener runs: start it and wait.
    verification._cache.ensure_listener()
    deadline = time.monotonic() + 10
    while not verification.cache_is_live():
        assert time.monotonic() < deadline, "the key cache listener did not start"
        time.sleep(0.05)
    verification._cache.entries.clear()


def test_unknown_keys_do_not_evict_known_ones(world, small_cache, django_assert_num_queries):
    issued = create_api_key(
        membership=world.admin, workspace=world.workspace, name="busy", actor=None
    )
    assert verification.verify_key(issued.plaintext).ok
    for _ in range(200):
        assert verification.verify_key(generate_key()).failure == "unknown"
    with django_assert_num_queries(0):  # still cached
        assert verification.verify_key(issued.plaintext).ok
    assert verification._cache.unknown_count() <= 50


def test_an_unknown_key_seen_again_is_answered_from_the_cache(small_cache, db):
    raw = generate_key()
    verification.verify_key(raw)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert verification.verify_key(raw).failure == "unknown"
    assert len(queries) == 0
