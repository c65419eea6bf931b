"""Secrets the console must use again (the gateway's upstream API keys, the Anthropic Admin API
keys of the usage import) at rest: MultiFernet over `settings.UPSTREAM_KEY_ENCRYPTION_KEYS`.
On the ground floor because two apps keep such secrets (gateway, usage).

The setting is a comma-separated list of Fernet keys, newest first. Encryption uses the first;
decryption tries each, so rotating is: put a new key first, run `manage.py
rotate_upstream_keys` (re-encrypts every stored key, both kinds, with the first), then drop the
old one.
Unset, one key is derived from SECRET_KEY (fine for `make run`; set the setting in production so
changing SECRET_KEY does not make the stored upstream keys unreadable).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


def _derived_key() -> bytes:
    digest = hashlib.sha256(
        b"console.gateway.upstream-key:" + settings.SECRET_KEY.encode()
    ).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=4)
def _fernet(keys: str, secret: str) -> MultiFernet:
    parts = [k.strip() for k in keys.split(",") if k.strip()]
    fernets = [Fernet(k.encode()) for k in parts] or [Fernet(_derived_key())]
    return MultiFernet(fernets)


def fernet() -> MultiFernet:
    return _fernet(settings.UPSTREAM_KEY_ENCRYPTION_KEYS, settings.SECRET_KEY)


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    return fernet().rotate(token.encode()).decode()
