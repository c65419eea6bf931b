"""The gateway's upstream keys are encrypted by the console's one secret box, on the ground floor
(core/crypto.py), which the usage import's Admin API keys share."""

from core.crypto import decrypt, encrypt, fernet, rotate

__all__ = ["decrypt", "encrypt", "fernet", "rotate"]
