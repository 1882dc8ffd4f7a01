"""Blind indexes: keyed hashes that find and deduplicate encrypted values without decrypting.

`blind_index(value, purpose=...)` is HMAC-SHA256 of the normalized value (the caller
normalizes: bare digits of a document, a lower-cased e-mail) under a key derived with HKDF
from FINTECH_BLIND_INDEX_KEY and the purpose, so the index of one column cannot be matched
against another's. The secret is not an encryption key and does not rotate with them: an
index written before `rotate_keys` still finds its row afterwards.

An index of a low-entropy value (an 11-digit CPF has a billion candidates) can be reversed by
whoever holds the secret, so the index is personal data too: erasure removes it with the value.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fintech.crypto.keyring import blind_index_secret

INDEX_LENGTH = 64  # hex characters of a SHA-256
_INFO_PREFIX = b"fintech blind index v1:"


def blind_index(value: str, *, purpose: str, secret: bytes | None = None) -> str:
    """Hex HMAC-SHA256 of `value` under the purpose's key."""
    key = _purpose_key(secret if secret is not None else blind_index_secret(), purpose)
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


@lru_cache(maxsize=64)
def _purpose_key(secret: bytes, purpose: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO_PREFIX + purpose.encode("utf-8")).derive(
        secret
    )
