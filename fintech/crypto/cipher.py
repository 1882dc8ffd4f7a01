"""AES-256-GCM tokens for personal data at rest.

A token is `v1.<kid>.<base64url(nonce || ciphertext || tag)>`, ASCII, without padding:

- `v1` names this format (the algorithm, the nonce size, the associated data below);
- `kid` names the key of FINTECH_ENCRYPTION_KEYS that encrypted it, so any key of the ring
  decrypts and `rotate_keys` can tell which values are not under the active key yet;
- the nonce is 96 random bits, fresh for every value (so equal plaintexts differ at rest;
  lookups go through a blind index instead, see blind_index.py).

The associated data is `v1.<kid>.<purpose>`, where purpose names the column
(`customers.customer.email`): a value copied into another column, or a token whose kid was
edited, fails authentication instead of decrypting.
"""

from __future__ import annotations

import base64
import binascii
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fintech.crypto.keyring import KeyRing, key_ring

VERSION = "v1"
NONCE_BYTES = 12
_TAG_BYTES = 16


class CryptoError(Exception):
    """A stored value could not be decrypted. Messages carry no plaintext and no key."""


class MalformedToken(CryptoError):
    """The value is not a token of a known format (a plaintext left behind, a truncated value)."""


class UnknownKeyId(CryptoError):
    """The token names a kid that FINTECH_ENCRYPTION_KEYS does not hold."""


class DecryptionFailed(CryptoError):
    """Authentication failed: the token was altered, or belongs to another column or key."""


def _associated_data(kid: str, purpose: str) -> bytes:
    return f"{VERSION}.{kid}.{purpose}".encode()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encrypt(plaintext: str, *, purpose: str, ring: KeyRing | None = None) -> str:
    """The token of `plaintext` under the active key, bound to `purpose` (the column)."""
    ring = ring or key_ring()
    kid = ring.active_kid
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = AESGCM(ring.keys[kid]).encrypt(nonce, plaintext.encode("utf-8"), _associated_data(kid, purpose))
    return f"{VERSION}.{kid}.{_b64encode(nonce + sealed)}"


def token_kid(token: str) -> str:
    """The kid a token was encrypted under (MalformedToken if it is no token)."""
    return _split(token)[0]


def decrypt(token: str, *, purpose: str, ring: KeyRing | None = None) -> str:
    """The plaintext of a token made by `encrypt` for the same purpose under any key of the ring."""
    ring = ring or key_ring()
    kid, payload = _split(token)
    key = ring.keys.get(kid)
    if key is None:
        raise UnknownKeyId(
            f"A {purpose} value is encrypted under kid {kid!r}, which FINTECH_ENCRYPTION_KEYS does not "
            f"hold (it holds {', '.join(ring.kids)}): was a key removed before `manage.py rotate_keys` finished?"
        )
    if len(payload) < NONCE_BYTES + _TAG_BYTES:
        raise MalformedToken(f"A {purpose} token is too short")
    nonce, sealed = payload[:NONCE_BYTES], payload[NONCE_BYTES:]
    try:
        plaintext = AESGCM(key).decrypt(nonce, sealed, _associated_data(kid, purpose))
    except InvalidTag:
        raise DecryptionFailed(
            f"A {purpose} value under kid {kid!r} does not authenticate: altered, or copied from another column"
        ) from None
    return plaintext.decode("utf-8")


def _split(token: str) -> tuple[str, bytes]:
    version, _, rest = token.partition(".")
    kid, _, encoded = rest.partition(".")
    if version != VERSION or not kid or not encoded:
        raise MalformedToken(f"Not a {VERSION} token")
    try:
        return kid, _b64decode(encoded)
    except (binascii.Error, ValueError):
        raise MalformedToken(f"A {VERSION} token with a payload that is not base64url") from None
