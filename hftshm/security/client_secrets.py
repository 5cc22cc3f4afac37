"""Hashed client secrets for ``POST /api/token`` (``[web.clients]``), stdlib scrypt only.

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>``; make one with
``hftshm token hash-secret``. The secret itself never goes in the config.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCHEME = "scrypt"
# 2**14 x 8 x 1: ~16 MiB and a few tens of ms per check, OWASP's scrypt minimum
N, R, P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32


def hash_secret(secret: str, *, n: int = N, r: int = R, p: int = P) -> str:
    if not secret:
        raise ValueError("a client secret must not be empty")
    salt = os.urandom(_SALT_BYTES)
    key = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=_KEY_BYTES)
    return "$".join([SCHEME, str(n), str(r), str(p), _b64(salt), _b64(key)])


def check_hash_format(stored: str) -> None:
    """ValueError if ``stored`` is not a hash this module made (config validation)."""
    _parse(stored)


def verify_secret(secret: str, stored: str) -> bool:
    """True if ``secret`` matches ``stored``; constant-time compare; False on any malformed input."""
    try:
        n, r, p, salt, key = _parse(stored)
        candidate = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=len(key))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, key)


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = str(stored).split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise ValueError("a client secret hash looks like scrypt$16384$8$1$<salt>$<hash>; "
                         "make one with 'hftshm token hash-secret'")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, TypeError):
        raise ValueError("a client secret hash has malformed numbers or base64; "
                         "make one with 'hftshm token hash-secret'") from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or len(salt) < 8 or len(key) < 16:
        raise ValueError("a client secret hash has parameters too weak or malformed")
    return n, r, p, salt, key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
