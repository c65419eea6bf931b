"""Verification of API keys for the gateway: raw key -> `KeyContext`, or a reason it is refused.

    result = verify_key(raw)          # or `await averify_key(raw)` from async code
    if not result.ok:
        return 401 with result.failure ("unknown", "malformed", "revoked", "expired") and .message

Speed: results are cached in the process, by the key's hash, so a known key costs a checksum, one
HMAC and a dict lookup (see bench/bench_apikeys.py). Correctness of the cache rests on three things:

1. Invalidation over Redis pub/sub. Every change to a key (revoke, rotate, expire, create) is
   announced after its transaction commits: `INCR apikeys:version` and `PUBLISH apikeys:invalidate
   <hash>` in one MULTI/EXEC. A listener thread per process (started lazily by the first
   verification) evicts the entry as the message arrives: a revocation reaches every process in
   milliseconds, well inside the 1 second the design asks.
2. The version counter. The listener compares `apikeys:version` with the messages it has seen about
   once a second; if they disagree, a message was missed and it drops the whole cache. The cache is
   only used while the listener is subscribed and looping ("healthy"); otherwise every
   verification reads the database.
3. A short TTL (`CACHE_TTL`) for changes made behind the services' back (SQL, cascading deletes).

`last_used_at` is never written per request: a verified key is noted in memory, the listener thread
copies the notes to a Redis hash (`HSET apikeys:last_used <key id> <unix time>`) at most once a
minute per key and process, and the `flush_key_last_used` task (every minute) moves them into the
database (`services.flush_last_used`); in `make run` console/background.py runs that schedule.
"""

import asyncio
import logging
import math
import os
import threading
import time
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import redis
from asgiref.sync import sync_to_async
from django.db import transaction

from core import hotpath

from .keyformat import check_key_format, hash_key
from .models import ApiKey

logger = logging.getLogger(__name__)

CHANNEL = "apikeys:invalidate"
VERSION_KEY = "apikeys:version"
LAST_USED_KEY = "apikeys:last_used"

CACHE_TTL = 10.0  # seconds a cached result may be used at most
REFRESH_AHEAD = 2.0  # async callers renew a used entry this long before its TTL ends
# Keys that exist (valid, revoked, expired): bounded by the keys in the database; the bound is a
# safety net only. Unknown keys are cached apart, in a bounded LRU: a flood of made-up keys
# evicts older made-up keys, never the entries of keys in use.
CACHE_MAX_ENTRIES = 100_000
UNKNOWN_CACHE_ENTRIES = 10_000
POLL_INTERVAL = 0.25  # the listener wakes at least this often
VERSION_CHECK_INTERVAL = 1.0
HEALTHY_WINDOW = 2.0  # the cache is trusted this long after the listener last looped
LAST_USED_INTERVAL = 60.0  # per key and process


class Failure(StrEnum):
    UNKNOWN = "unknown"
    MALFORMED = "malformed"
    REVOKED = "revoked"
    EXPIRED = "expired"


MESSAGES = {
    Failure.UNKNOWN: "This API key does not exist. Check that you copied the whole key.",
    Failure.REVOKED: "This API key has been revoked.",
    Failure.EXPIRED: "This API key has expired.",
}


@dataclass(frozen=True, slots=True)
class KeyContext:
    """What the gateway needs to know about a key it accepted. Limits (spend caps) belong to
    billing and are looked up by `key_id`, `workspace_id` and `organization_id`."""

    key_id: int
    organization_id: int
    workspace_id: int
    owner_id: int | None
    name: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Verification:
    failure: Failure | None = None
    message: str = ""
    # Also set for revoked and expired keys, so refusals can be attributed to a key.
    context: KeyContext | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class _KeyCache:
    """Results by key hash, with the listener that keeps them honest. One per process."""

    def __init__(self):
        self._reset_process_state()

    def _reset_process_state(self):
        self.entries: dict[str, tuple[Verification, float, float]] = {}
        self.unknown: OrderedDict[str, tuple[Verification, float, float]] = OrderedDict()
        self.lock = threading.Lock()
        self.generation = 0  # bumped by every eviction: a load that raced one is not stored
        self.version = 0  # apikeys:version as far as the messages seen tell
        self.healthy_until = 0.0
        self.listener: threading.Thread | None = None
        self.used: dict[int, float] = {}  # key id -> unix time, waiting for the listener
        self.used_noted: dict[int, float] = {}  # key id -> monotonic time last noted

    # -- used by verify_key ------------------------------------------------------------------

    def ensure_listener(self) -> None:
        if self.listener is None:
            with self.lock:
                if self.listener is None:
                    self.listener = threading.Thread(
                        target=_listen, args=(self,), name="apikeys-cache-listener", daemon=True
                    )
                    self.listener.start()

    def store(self, key_hash: str, entry: tuple, generation: int) -> None:
        with self.lock:
            if generation != self.generation:
                return
            if entry[0].failure is Failure.UNKNOWN:
                self.unknown[key_hash] = entry
                self.unknown.move_to_end(key_hash)
                while len(self.unknown) > UNKNOWN_CACHE_ENTRIES:
                    self.unknown.popitem(last=False)
                return
            if len(self.entries) >= CACHE_MAX_ENTRIES:
                self.entries.clear()
            self.entries[key_hash] = entry

    def unknown_count(self) -> int:
        return len(self.unknown)

    def clear(self) -> None:
        self.entries.clear()
        self.unknown.clear()

    def note_used(self, key_id: int, now: float) -> None:
        last = self.used_noted.get(key_id)
        if last is None or now - last >= LAST_USED_INTERVAL:
            self.used_noted[key_id] = now
            self.used[key_id] = time.time()

    # -- used by the listener and by announcements -------------------------------------------

    def evict(self, key_hash: str, *, from_message: bool) -> None:
        with self.lock:
            self.entries.pop(key_hash, None)
            self.unknown.pop(key_hash, None)  # a key created with this hash
            self.generation += 1
            if from_message:
                self.version += 1

    def reconcile(self, version: int) -> None:
        """Redis says `version`: drop everything if it is not what the messages add up to
        (missed messages, or a counter reset by a Redis restart or FLUSHDB)."""
        with self.lock:
            if version != self.version:
                self.clear()
                self.generation += 1
            self.version = version

    def restart(self, version: int) -> None:
        with self.lock:
            self.clear()
            self.generation += 1
            self.version = version

    def take_used(self) -> dict[int, float]:
        used, self.used = self.used, {}
        return used


_cache = _KeyCache()
# A forked child inherits neither the listener thread nor a trustworthy cache.
os.register_at_fork(after_in_child=_cache._reset_process_state)


def _listen(cache: _KeyCache) -> None:
    while True:
        try:
            _listen_once(cache)
        except Exception:
            logger.warning("API key cache listener lost Redis; retrying", exc_info=True)
        cache.healthy_until = 0.0
        time.sleep(0.5)


def _listen_once(cache: _KeyCache) -> None:
    client = hotpath.client()
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(CHANNEL)
        deadline = time.monotonic() + 5
        while True:
            message = pubsub.get_message(timeout=1.0)
            if message and message["type"] == "subscribe":
                break
            if time.monotonic() > deadline:
                raise TimeoutError("No subscription confirmation from Redis")
        # Anything could have changed while we were not listening.
        cache.restart(int(client.get(VERSION_KEY) or 0))
        last_check = time.monotonic()
        while True:
            _drain(cache, pubsub, timeout=POLL_INTERVAL)
            now = time.monotonic()
            if now - last_check >= VERSION_CHECK_INTERVAL:
                version = int(client.get(VERSION_KEY) or 0)
                if version != cache.version:
                    # The messages may be on their way rather than lost: read what has arrived.
                    _drain(cache, pubsub, timeout=0.05)
                cache.reconcile(version)
                last_check = now
            used = cache.take_used()
            if used:
                client.hset(LAST_USED_KEY, mapping={str(k): int(v) for k, v in used.items()})
            cache.healthy_until = time.monotonic() + HEALTHY_WINDOW
    finally:
        cache.healthy_until = 0.0
        pubsub.close()


def _drain(cache: _KeyCache, pubsub, *, timeout: float) -> None:
    message = pubsub.get_message(timeout=timeout)
    while message is not None:
        if message["type"] == "message":
            data = message["data"]
            cache.evict(data.decode() if isinstance(data, bytes) else data, from_message=True)
        message = pubsub.get_message(timeout=0)


def cache_is_live() -> bool:
    """True while this process's listener is subscribed, i.e. cached results are trusted."""
    return time.monotonic() < _cache.healthy_until


# -- verification ----------------------------------------------------------------------------


_CONTEXT_FIELDS = (
    "pk", "organization_id", "workspace_id", "owner_id", "name", "expires_at", "revoked_at",
)  # fmt: skip


def _load(key_hash: str) -> tuple[Verification, float]:
    rows = ApiKey.objects.filter(key_hash=key_hash).order_by().values_list(*_CONTEXT_FIELDS)[:1]
    row = next(iter(rows), None)
    if row is None:
        return Verification(Failure.UNKNOWN, MESSAGES[Failure.UNKNOWN]), math.inf
    pk, organization_id, workspace_id, owner_id, name, expires_at, revoked_at = row
    context = KeyContext(pk, organization_id, workspace_id, owner_id, name, expires_at)
    if revoked_at is not None:
        return Verification(Failure.REVOKED, MESSAGES[Failure.REVOKED], context), math.inf
    expires = expires_at.timestamp() if expires_at is not None else math.inf
    return Verification(context=context), expires


def _malformed(raw) -> Verification | None:
    reason = check_key_format(raw)
    return None if reason is None else Verification(Failure.MALFORMED, reason)


def _cached(key_hash: str) -> tuple[Verification, float] | None:
    entry = _cache.entries.get(key_hash)
    if entry is None:
        entry = _cache.unknown.get(key_hash)
        if entry is None:
            return None
        with suppress(KeyError):  # least recently used goes first; evicted meanwhile is fine
            _cache.unknown.move_to_end(key_hash)
    now = time.monotonic()
    if now >= _cache.healthy_until or now - entry[2] >= CACHE_TTL:
        return None
    return entry[0], entry[1]


def _finish(found: tuple[Verification, float]) -> Verification:
    result, expires = found
    if result.failure is None:
        if time.time() >= expires:
            return Verification(Failure.EXPIRED, MESSAGES[Failure.EXPIRED], result.context)
        _cache.note_used(result.context.key_id, time.monotonic())
    return result


def verify_key(raw: str) -> Verification:
    """Accept or refuse `raw` (the key exactly as presented: it is not trimmed or re-cased)."""
    malformed = _malformed(raw)
    if malformed is not None:
        return malformed
    key_hash = hash_key(raw)
    _cache.ensure_listener()
    found = _cached(key_hash)
    if found is None:
        generation = _cache.generation
        found = _load(key_hash)
        _cache.store(key_hash, (found[0], found[1], time.monotonic()), generation)
    return _finish(found)


# Async loads in flight, by key hash: (future, cache generation when it started).
_inflight: dict[str, tuple[asyncio.Future, int]] = {}


async def _aload(key_hash: str, generation: int) -> tuple[Verification, float]:
    found = await sync_to_async(_load)(key_hash)
    _cache.store(key_hash, (found[0], found[1], time.monotonic()), generation)
    return found


def _start_load(key_hash: str) -> asyncio.Future:
    """One database load per key at a time ("single flight"): the requests of a busy key whose
    entry expired wait for one query in asgiref's thread instead of queueing one each. A load
    that began before an eviction (a revocation) is not joined: its answer may be stale."""
    generation = _cache.generation
    running = _inflight.get(key_hash)
    if (
        running is not None
        and running[1] == generation
        and running[0].get_loop() is asyncio.get_running_loop()
    ):
        return running[0]
    future = asyncio.ensure_future(_aload(key_hash, generation))
    _inflight[key_hash] = (future, generation)

    def done(f: asyncio.Future, k: str = key_hash) -> None:
        if _inflight.get(k, (None,))[0] is f:
            del _inflight[k]
        if not f.cancelled() and f.exception() is not None:
            logger.warning("Loading an API key failed: %r", f.exception())

    future.add_done_callback(done)
    return future


async def averify_key(raw: str) -> Verification:
    """`verify_key` for async code: cache hits never leave the event loop's thread.

    A busy key is refreshed ahead: in the last `REFRESH_AHEAD` seconds of its entry's TTL, one
    background load renews it while requests go on using the entry, so its expiry never stalls
    them. Revocations evict the entry and are unaffected."""
    malformed = _malformed(raw)
    if malformed is not None:
        return malformed
    key_hash = hash_key(raw)
    _cache.ensure_listener()
    entry = _cache.entries.get(key_hash) or _cache.unknown.get(key_hash)
    now = time.monotonic()
    if entry is not None and now < _cache.healthy_until:
        age = now - entry[2]
        if age < CACHE_TTL:
            if age >= CACHE_TTL - REFRESH_AHEAD:
                _start_load(key_hash)
            return _finish((entry[0], entry[1]))
    return _finish(await asyncio.shield(_start_load(key_hash)))


def is_cached_valid(raw: str) -> bool:
    """Whether `raw` is a valid key this process has cached: no database read, for callers that
    must not load anything (the gateway, for an address over its limit of refused keys)."""
    if _malformed(raw) is not None:
        return False
    entry = _cache.entries.get(hash_key(raw))
    now = time.monotonic()
    return (
        entry is not None
        and entry[0].ok
        and now < _cache.healthy_until
        and now - entry[2] < CACHE_TTL
        and time.time() < entry[1]
    )


# -- announcements, for services -------------------------------------------------------------


def announce_key_change(key_hash: str) -> None:
    """Tell every process that the key with this hash changed. Call inside the writing
    transaction: this process forgets the key at once, the others when the transaction commits."""
    _cache.evict(key_hash, from_message=False)
    transaction.on_commit(lambda: _publish(key_hash), robust=True)


def _publish(key_hash: str) -> None:
    try:
        pipe = hotpath.client().pipeline(transaction=True)
        pipe.incr(VERSION_KEY)
        pipe.publish(CHANNEL, key_hash)
        pipe.execute()
    except redis.RedisError:
        # Listeners that cannot reach Redis stop trusting their caches; the TTL covers the rest.
        logger.exception("Could not announce an API key change to other processes")
