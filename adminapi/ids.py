"""Opaque, prefixed ids of the Admin API (`user_…`, `wrkspc_…`, `apikey_…`, `invite_…`), as
Anthropic's look: the prefix names the kind, the rest means nothing to a client.

An id is the row's primary key, sealed: one AES block holding a tag of its kind and the key,
encrypted with a fixed key derived from the kind, then base62. So ids are reversible without a
lookup table or a column on other apps' models, a tampered or made-up id fails to open (the tag
no longer matches) instead of naming some other row, and one kind's id never opens as another's.
They are not secrets: whoever holds one still reaches only their own organization's rows, which
every lookup is scoped to.
"""

from __future__ import annotations

import hashlib
from functools import cache

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_LENGTH = 22  # 62**22 > 2**128
_INDEX = {c: i for i, c in enumerate(ALPHABET)}

# kind -> prefix. The kind also keys the cipher: the same pk gives unrelated ids per kind.
PREFIXES = {
    "organization": "org_",
    "user": "user_",
    "workspace": "wrkspc_",
    "api_key": "apikey_",
    "invite": "invite_",
    "admin_key": "adminkey_",
    "spend_limit": "spl_",
    "increase_request": "slir_",
}


@cache
def _cipher(kind: str) -> Cipher:
    key = hashlib.sha256(f"console admin api id v1 {kind}".encode()).digest()[:16]
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 (one block: a permutation)


def _tag(kind: str) -> bytes:
    return hashlib.sha256(kind.encode()).digest()[:8]


def encode(kind: str, pk: int) -> str:
    block = _tag(kind) + int(pk).to_bytes(8, "big")
    encryptor = _cipher(kind).encryptor()
    sealed = int.from_bytes(encryptor.update(block) + encryptor.finalize(), "big")
    digits = []
    for _ in range(BODY_LENGTH):
        sealed, digit = divmod(sealed, 62)
        digits.append(ALPHABET[digit])
    return PREFIXES[kind] + "".join(reversed(digits))


def decode(kind: str, value) -> int | None:
    """The pk sealed in `value`, or None when it is not an id of this kind."""
    prefix = PREFIXES[kind]
    if not isinstance(value, str) or not value.startswith(prefix):
        return None
    body = value[len(prefix) :]
    if len(body) != BODY_LENGTH:
        return None
    number = 0
    for char in body:
        digit = _INDEX.get(char)
        if digit is None:
            return None
        number = number * 62 + digit
    if number >= 1 << 128:
        return None
    decryptor = _cipher(kind).decryptor()
    block = decryptor.update(number.to_bytes(16, "big")) + decryptor.finalize()
    if block[:8] != _tag(kind):
        return None
    pk = int.from_bytes(block[8:], "big")
    return pk if 0 < pk < 1 << 63 else None
