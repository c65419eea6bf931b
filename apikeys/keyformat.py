"""The API key format, as pure functions: mint, check offline, hash for storage, display.

    csk_ + 43 random base62 characters + 6 base62 characters of CRC32 checksum   (53 characters)

`csk_` ("console secret key") is our own prefix: never Anthropic's `sk-ant-`, so a leaked key is
recognisably ours. 43 characters drawn uniformly from 62 carry 43 × log2(62) ≈ 256.03 bits. The
checksum is the CRC32 of `csk_` + the random part, in base62, zero-padded to 6 characters (the
way GitHub's tokens do it), so a secret scanner can tell a real candidate from a lookalike without
asking us. Scanners match `KEY_PATTERN` (see README and docs/decisions/0002-api-key-format.md).

Admin keys (the Admin API at /v1/organizations/..., never /v1/messages) have the same shape
with their own prefix, `cak_` ("console admin key"): `generate_key(ADMIN_PREFIX)`,
`check_key_format(raw, ADMIN_PREFIX)`, scanner pattern `ADMIN_KEY_PATTERN`. Each kind's
checksum covers its own prefix, so one kind's key never passes for the other's.

Keys are stored as HMAC-SHA-256(pepper, key) only; see `hash_key`.
"""

import hmac
import re
import secrets
import zlib
from functools import lru_cache

from django.conf import settings

PREFIX = "csk_"
ADMIN_PREFIX = "cak_"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 43  # 43 × log2(62) ≈ 256.03 bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32: any CRC32 fits
KEY_LENGTH = len(PREFIX) + RANDOM_LENGTH + CHECKSUM_LENGTH  # 53
# For secret scanners: a candidate, to be confirmed with the checksum.
KEY_PATTERN = r"\bcsk_[0-9A-Za-z]{49}\b"
ADMIN_KEY_PATTERN = r"\bcak_[0-9A-Za-z]{49}\b"
# What the console shows of a key: the prefix and 4 random characters ... the last 4 characters.
DISPLAY_PREFIX_LENGTH = len(PREFIX) + 4

_BASE62 = frozenset(ALPHABET)
_WHITESPACE = re.compile(r"\s")


def base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(ALPHABET[remainder])
    return "".join(reversed(digits)).rjust(width, "0")


def checksum(body: str) -> str:
    """The 6-character suffix for `body` (prefix + random part)."""
    return base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def generate_key(prefix: str = PREFIX) -> str:
    body = prefix + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return body + checksum(body)


def check_key_format(raw, prefix: str = PREFIX) -> str | None:
    """Why `raw` cannot be one of our keys of the kind `prefix` names (API keys by default,
    admin keys with ADMIN_PREFIX), or None when format and checksum are right.

    Needs no database. The reasons are written for a person who pasted a key; they never repeat
    the key itself.
    """
    if not isinstance(raw, str):
        return "The key must be text."
    if not raw:
        return "No key was given."
    if _WHITESPACE.search(raw):
        return (
            "The key contains spaces, tabs or line breaks. Copy it again without surrounding "
            "whitespace."
        )
    if not raw.startswith(prefix):
        if raw[: len(prefix)].lower() == prefix:
            return f"Keys start with {prefix} in lower case; the key's letter case was changed."
        if raw.startswith("sk-ant-"):
            return "This is an Anthropic key. Use a key created in this console."
        if raw.startswith(ADMIN_PREFIX):
            return (
                "This is an admin key: it manages the organization through /v1/organizations/ "
                f"and cannot call this endpoint. Use an API key ({prefix}…)."
            )
        if raw.startswith(PREFIX):
            return (
                "This is an API key: it calls /v1/messages and cannot manage the organization. "
                f"Use an admin key ({prefix}…), which an Admin creates in the console."
            )
        kind = "Admin keys" if prefix == ADMIN_PREFIX else "Console keys"
        return f"{kind} start with {prefix}."
    if len(raw) != KEY_LENGTH:
        return f"The key has {len(raw)} characters; console keys have {KEY_LENGTH}."
    if not _BASE62.issuperset(raw[len(prefix) :]):
        return f"After {prefix} a key has only letters and digits."
    body, suffix = raw[:-CHECKSUM_LENGTH], raw[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(checksum(body), suffix):
        return (
            "The key's checksum does not match: it was mistyped, cut short or its letter case "
            "was changed."
        )
    return None


@lru_cache(maxsize=4)
def _derived_pepper(configured: str, secret_key: str) -> bytes:
    if configured:
        return configured.encode()
    # No API_KEY_PEPPER: derive one from SECRET_KEY, so `make run` works with nothing set. The
    # derivation is one-way, and distinct from every other use of SECRET_KEY.
    return hmac.digest(secret_key.encode(), b"console.apikeys.pepper", "sha256")


def pepper() -> bytes:
    return _derived_pepper(settings.API_KEY_PEPPER, settings.SECRET_KEY)


def hash_key(raw: str) -> str:
    """What is stored and looked up: HMAC-SHA-256 with the server-side pepper, in hex.

    Without the pepper a stolen database cannot even confirm a guessed key.
    """
    return hmac.digest(pepper(), raw.encode(), "sha256").hex()


def display_parts(raw: str) -> tuple[str, str]:
    """(prefix, last 4) — all the console ever shows of a key after creation."""
    return raw[:DISPLAY_PREFIX_LENGTH], raw[-4:]
