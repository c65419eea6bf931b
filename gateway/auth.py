"""The gateway's view of API-key verification: a raw key in, a key context or a refusal out.

The protocol the gateway codes against is `verify(raw) -> Verification` (async), where a
Verification has `ok`, `failure` (unknown / malformed / revoked / expired), `message`, and a
`context` (key id, organization id, workspace id) — also for revoked and expired keys, so their
refusals can be metered to the organization; and `is_cached_valid(raw)`, a valid key this
process has cached (no database read), for an address over its limit of refused requests.
apikeys.verification implements it, with its in-process cache and Redis invalidation.
"""

from __future__ import annotations

from apikeys.verification import KeyContext, Verification, averify_key, is_cached_valid

MISSING_KEY_MESSAGE = (
    "x-api-key header is required (or Authorization: Bearer <key>): use an API key created in "
    "this console."
)


async def verify(raw: str) -> Verification:
    return await averify_key(raw)


__all__ = ["MISSING_KEY_MESSAGE", "KeyContext", "Verification", "is_cached_valid", "verify"]
