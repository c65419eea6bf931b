"""The ground floor: infrastructure that several apps use, below every app in the dependency
picture (README, "Layout"). Nothing here imports an app; every app may import from here.

- `core.hotpath`  the hot path's Redis client (a fakeredis stand-in when `REDIS_URL` is empty)
- `core.hotcache` HotCache, the in-process cache of the gateway's hot path (single-flight loads)
- `core.counters` the layout of the hot path's Redis counters and the scripts that adjust them
- `core.emails`   one way to send an email: `send(make_message(name, to, ctx))`
- `core.when`     moments shown in the organization's zone (`{% load when %}` in templates)
- `core.broadcast` invalidation of per-process caches over Redis pub/sub
"""
