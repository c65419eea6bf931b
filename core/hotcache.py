"""An in-process cache for the gateway's hot path: values loaded from the database by a sync
function in asgiref's thread, served from memory, refreshed without stalling requests.

    limits = HotCache(load_cap, ttl=5.0)
    cap = await limits.get(organization_id)

- A hit younger than `ttl` is a dict lookup.
- A hit older than `ttl` is still served (up to `max_age`) while one background task reloads it:
  requests never wait for a refresh, and concurrent requests do not each start one.
- A miss (or a value older than `max_age`) waits for the load; concurrent misses of one key share
  a single load ("single flight"), so an expiry under load is one query, not one per request.

On the ground floor (`core`) because pricing (usage), limits (billing) and routes (gateway) all
use it, and apps may only import downwards.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections

logger = logging.getLogger(__name__)


class HotCache:
    def __init__(
        self, load: Callable[..., Any], *, ttl: float, max_age: float | None = None,
        max_entries: int = 50_000,
    ) -> None:  # fmt: skip
        self._load = load
        self.ttl = ttl
        self.max_age = max_age if max_age is not None else ttl * 6
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[Any, float]] = {}
        self._inflight: dict[Hashable, asyncio.Future] = {}

    def _load_in_thread(self, key: Hashable) -> Any:
        close_old_connections()  # asgiref's shared thread gets no request signals
        return self._load(*key) if isinstance(key, tuple) else self._load(key)

    async def _fetch(self, key: Hashable) -> Any:
        value = await sync_to_async(self._load_in_thread)(key)
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (value, time.monotonic())
        return value

    def _start(self, key: Hashable) -> asyncio.Future:
        future = self._inflight.get(key)
        if future is None or future.get_loop() is not asyncio.get_running_loop():
            future = asyncio.ensure_future(self._fetch(key))
            self._inflight[key] = future
            future.add_done_callback(lambda f, k=key: self._done(k, f))
        return future

    def _done(self, key: Hashable, future: asyncio.Future) -> None:
        if self._inflight.get(key) is future:
            del self._inflight[key]
        if not future.cancelled() and future.exception() is not None:
            logger.warning("Reload of %r failed: %r", key, future.exception())

    async def get(self, key: Hashable) -> Any:
        found = self._entries.get(key)
        if found is not None:
            age = time.monotonic() - found[1]
            if age < self.ttl:
                return found[0]
            if age < self.max_age:
                self._start(key)  # refresh in the background, serve what we have
                return found[0]
        return await asyncio.shield(self._start(key))

    def forget(self, match: Callable[[Hashable], bool] | None = None) -> None:
        if match is None:
            self._entries.clear()
            return
        for key in [k for k in self._entries if match(k)]:
            self._entries.pop(key, None)
