"""Personal data at rest: AES-256-GCM tokens under a rotating key ring, HMAC blind indexes.

`keyring` (where keys come from and their format), `cipher` (the token), `blind_index`,
`fields` (EncryptedTextField, EncryptedDateField) and `rotation` (re-encryption under the
active key). This module stays free of django.db so config/settings.py can check the keys.
"""

from fintech.crypto.blind_index import blind_index
from fintech.crypto.cipher import CryptoError, DecryptionFailed, MalformedToken, UnknownKeyId, decrypt, encrypt
from fintech.crypto.keyring import KeyRing, KeyRingError, generate_key, key_ring, parse_key_ring

__all__ = [
    "CryptoError",
    "DecryptionFailed",
    "KeyRing",
    "KeyRingError",
    "MalformedToken",
    "UnknownKeyId",
    "blind_index",
    "decrypt",
    "encrypt",
    "generate_key",
    "key_ring",
    "parse_key_ring",
]
