"""The gateway's in-process cache: concurrent misses share one load, expired entries are served
while a single background reload runs, and nothing is served older than max_age."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from core.hotcache import HotCache

from .test_simulator import run_in_fresh_loop

# Loads run in asgiref's shared thread, which tidies its database connection first.
pytestmark = pytest.mark.django_db


class SlowLoader:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, key):
        with self.lock:
            self.calls += 1
            n = self.calls
        time.sleep(0.05)
        return f"{key}-{n}"


def test_concurrent_misses_share_one_load():
    loader = SlowLoader()
    cache = HotCache(loader, ttl=10)

    async def scenario():
        return await asyncio.gather(*(cache.get("org") for _ in range(50)))

    assert run_in_fresh_loop(scenario()) == ["org-1"] * 50
    assert loader.calls == 1


def test_an_expired_entry_is_served_while_one_reload_runs():
    loader = SlowLoader()
    cache = HotCache(loader, ttl=0.05, max_age=10)

    async def scenario():
        first = await cache.get("org")
        await asyncio.sleep(0.06)  # expired, still within max_age
        during = await asyncio.gather(*(cache.get("org") for _ in range(20)))
        await asyncio.sleep(0.1)  # the background reload finished
        return first, during, await cache.get("org")

    first, during, after = run_in_fresh_loop(scenario())
    assert first == "org-1" and during == ["org-1"] * 20 and after == "org-2"
    assert loader.calls == 2


def test_an_entry_past_max_age_is_reloaded_before_answering():
    loader = SlowLoader()
    cache = HotCache(loader, ttl=0.01, max_age=0.02)

    async def scenario():
        await cache.get("org")
        await asyncio.sleep(0.05)
        return await cache.get("org")

    assert run_in_fresh_loop(scenario()) == "org-2"
