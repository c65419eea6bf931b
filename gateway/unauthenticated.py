"""Traffic without a valid key (missing, malformed or unknown), limited per client address.

Each refusal of such a request counts in Redis (`gateway:auth-failures:<address>:<window>`,
shared by every gateway process); past `GATEWAY_AUTH_FAILURE_LIMIT` in a window of
`GATEWAY_AUTH_FAILURE_WINDOW` seconds the address is answered 429 `rate_limit_error` with
`retry-after` until the window ends, and remembered in this process so its further requests are
refused before any key is looked up (an unknown key costs a database read; a flood of them is what
this stops). A valid key this process has cached still works from such an address: a proxy or an
office NAT shared with a misbehaving client does not lock its users out.

Requests with valid keys pay nothing for this: nothing is counted for them, and while no address
is over its limit the check is one test of an empty dict.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict

import redis
from django.conf import settings

from core import hotpath

logger = logging.getLogger(__name__)

MAX_BLOCKED_ADDRESSES = 10_000  # remembered in this process; the oldest go first


class AuthFailureLimiter:
    def __init__(self) -> None:
        self.blocked: OrderedDict[str, float] = OrderedDict()  # address -> monotonic time free

    def retry_after(self, address: str | None) -> int:
        """Seconds until `address` may try again without a valid key (0: it may now)."""
        until = self.blocked.get(address or "")
        if until is None:
            return 0
        left = until - time.monotonic()
        if left <= 0:
            self.blocked.pop(address or "", None)
            return 0
        return math.ceil(left)

    async def count(self, address: str | None) -> int:
        """Count one refused request of `address`; seconds to wait if it is over the limit."""
        window = max(1, settings.GATEWAY_AUTH_FAILURE_WINDOW)
        now = time.time()
        bucket = int(now // window)
        key = f"{settings.GATEWAY_REDIS_NAMESPACE}gateway:auth-failures:{address or '-'}:{bucket}"
        try:
            pipe = hotpath.aclient().pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, window + 1)
            count, _ = await pipe.execute()
        except (redis.RedisError, OSError) as exc:  # availability first, as the spend hook
            logger.warning("Could not count a refused gateway request: %r", exc)
            return 0
        if count <= settings.GATEWAY_AUTH_FAILURE_LIMIT:
            return 0
        wait = max(1, math.ceil((bucket + 1) * window - now))
        self.blocked[address or ""] = time.monotonic() + wait
        self.blocked.move_to_end(address or "")
        while len(self.blocked) > MAX_BLOCKED_ADDRESSES:
            self.blocked.popitem(last=False)
        return wait


limiter = AuthFailureLimiter()
