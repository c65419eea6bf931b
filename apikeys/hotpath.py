"""The Redis of the gateway's hot path: key-cache invalidation, last-used stamps (and, for the
apps above, spend counters and the usage stream).

One code path whatever the mode. With `REDIS_URL` set this is a Redis shared by every process: a
real one in production and the tests, or in `make run` the stand-in its workers share
(console/standin_redis.py, fakeredis over TCP). Without `REDIS_URL` (a bare `manage.py` command) a
process-wide fakeredis plays Redis, with the same commands, pub/sub and transactions, so the code
above never asks which one it has. Import it from here:

    from apikeys import hotpath
    hotpath.client().hset(...)

Without `REDIS_URL` each process has its own "Redis", so state is not shared between processes:
a key revoked by such a command reaches running servers through the key cache's short TTL only.
"""

import threading

import fakeredis
import redis
from django.conf import settings

_lock = threading.Lock()
_clients: dict[str, redis.Redis] = {}
_standin_server = fakeredis.FakeServer()


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
                _clients[url] = fakeredis.FakeRedis(server=_standin_server)
        return _clients[url]
