"""The Redis of the gateway's hot path, shared by every app: key-cache invalidation and last-used
stamps (apikeys), spend counters (billing), the usage stream (usage), in-process beat claims.

One code path whatever the mode. With `REDIS_URL` set this is a Redis shared by every process: a
real one in production and the tests, or in `make run` the stand-in its workers share
(console/standin_redis.py, fakeredis over TCP). Without `REDIS_URL` (a bare `manage.py` command) a
process-wide fakeredis plays Redis, with the same commands, pub/sub and transactions, so the code
above never asks which one it has. Import it from here:

    from core import hotpath
    hotpath.client().hset(...)

Without `REDIS_URL` each process has its own "Redis", so state is not shared between processes:
a key revoked by such a command reaches running servers through the key cache's short TTL only.
"""

import asyncio
import threading

import redis
import redis.asyncio as aioredis
from django.conf import settings

_lock = threading.Lock()
_standin_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}
_standin_server = None


def _standin_client(*, asynchronous: bool = False):
    """A client of the process-wide fakeredis server, made on first use: fakeredis (~40 MB with
    its imports) is loaded only by a process that has no REDIS_URL."""
    global _standin_server
    import fakeredis

    with _standin_lock:
        if _standin_server is None:
            _standin_server = fakeredis.FakeServer()
    kind = fakeredis.FakeAsyncRedis if asynchronous else fakeredis.FakeRedis
    return kind(server=_standin_server)


def is_standin() -> bool:
    """True when no REDIS_URL is configured and the in-process stand-in plays Redis."""
    return not settings.REDIS_URL


def client() -> redis.Redis:
    """The process-wide client (thread-safe; redis-py's pool reconnects after a fork)."""
    url = settings.REDIS_URL
    found = _clients.get(url)
    if found is not None:
        return found
    with _lock:
        if url not in _clients:
            if url:
                _clients[url] = redis.Redis.from_url(
                    url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
                )
            else:
                _clients[url] = _standin_client()
        return _clients[url]


_async_clients: dict[tuple[str, int], aioredis.Redis] = {}


def aclient() -> aioredis.Redis:
    """An asyncio client for the same Redis as `client()` (its stand-in included), one per event
    loop (a uvicorn worker has one)."""
    url = settings.REDIS_URL
    key = (url, id(asyncio.get_running_loop()))
    found = _async_clients.get(key)
    if found is None:
        if url:
            found = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
        else:
            found = _standin_client(asynchronous=True)
        _async_clients[key] = found
    return found
