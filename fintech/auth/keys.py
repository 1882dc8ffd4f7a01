"""Where token verification keys come from.

The embedded default is its own issuer (`DevIssuerKeys`, a key pair on local disk); with
OIDC_ISSUER set the keys are the provider's published JWK set (`JwksKeySource`). Everything
downstream sees only a `KeySource`, so switching to the real provider changes nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Hashable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeAlias

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jwt.algorithms import AllowedPublicKeys, RSAAlgorithm

from fintech.files import create_once

VerificationKey: TypeAlias = AllowedPublicKeys

logger = logging.getLogger(__name__)

DEV_SIGNING_ALGORITHM = "RS256"
_DEV_KEY_BITS = 2048
# A request waits on a JWKS fetch only when the cache misses; better a quick 503 than a hung worker.
_JWKS_FETCH_TIMEOUT_SECONDS = 5.0
_JWKS_CACHE_SECONDS = 300.0
# At most one refetch per interval for tokens whose kid is not in the cached set.
_JWKS_MIN_REFRESH_SECONDS = 10.0
# With no keys at all (provider down at first use), one attempt per interval; the rest answer 503 at once.
_JWKS_RETRY_SECONDS = 1.0


class UnknownSigningKey(LookupError):
    """No key of the issuer matches the token's `kid`."""


class KeySourceUnavailable(RuntimeError):
    """The issuer's keys could not be fetched, so no token can be judged right now."""


class KeySource(Hashable, Protocol):
    # Hashable: validators are cached per key source.
    @property
    def issuer(self) -> str: ...

    def key_for(self, kid: str | None) -> VerificationKey:
        """The public key that signed tokens with this `kid`; UnknownSigningKey otherwise."""
        ...


def jwk_thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order."""
    jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class DevIssuerKeys:
    """The embedded default's signing key: generated once, shared by every process through its file."""

    def __init__(self, *, issuer: str, key_path: str | os.PathLike[str]) -> None:
        self._issuer = issuer
        self._private_key = _load_or_create_private_key(Path(key_path))
        self._public_key = self._private_key.public_key()
        self.kid = jwk_thumbprint(self._public_key)

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    def key_for(self, kid: str | None) -> VerificationKey:
        if kid != self.kid:
            raise UnknownSigningKey(kid)
        return self._public_key

    def sign(self, claims: Mapping[str, Any]) -> str:
        return jwt.encode(
            dict(claims),
            self._private_key,
            algorithm=DEV_SIGNING_ALGORITHM,
            # RFC 9068 marks access tokens as such, so an ID token cannot be replayed as one.
            headers={"kid": self.kid, "typ": "at+jwt"},
        )

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        jwk = dict(RSAAlgorithm.to_jwk(self._public_key, as_dict=True))
        jwk.update({"kid": self.kid, "use": "sig", "alg": DEV_SIGNING_ALGORITHM})
        return {"keys": [jwk]}


def _load_or_create_private_key(path: Path) -> rsa.RSAPrivateKey:
    try:
        return _read_private_key(path)
    except FileNotFoundError:
        pass
    key = rsa.generate_private_key(public_exponent=65537, key_size=_DEV_KEY_BITS)
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    create_once(path, pem)
    return _read_private_key(path)  # ours, or the key of a process that created it first


def _read_private_key(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < _DEV_KEY_BITS:
        raise ImproperlyConfigured(f"{path} must hold an RSA private key of at least {_DEV_KEY_BITS} bits")
    return key


class JwksKeySource:
    """The OIDC provider's signing keys, from its JWKS endpoint (e.g. Keycloak's `.../protocol/openid-connect/certs`).

    The key set is fetched on first use and kept for `cache_seconds`; a token whose `kid` is not in
    it makes the source fetch the set again, once, so a rotated-in key works without a restart. Those
    forced refetches are rate-limited to one per `min_refresh_seconds` (a stream of forged kids costs
    the provider one request per interval per process, not one per request); a refetch on expiry is
    not counted, so a key rotated in right after a routine fetch is found at once. A key the provider
    dropped stops verifying at the next fetch. When a refetch fails but keys are in hand, they keep
    serving (a provider blip must not turn every request into a 503) and the next request retries
    after `min_refresh_seconds`.
    """

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        *,
        cache_seconds: float = _JWKS_CACHE_SECONDS,
        min_refresh_seconds: float = _JWKS_MIN_REFRESH_SECONDS,
    ) -> None:
        self._issuer = issuer
        self.jwks_url = jwks_url or f"{issuer.rstrip('/')}/protocol/openid-connect/certs"
        self.cache_seconds = cache_seconds
        self.min_refresh_seconds = min_refresh_seconds
        # Used only to fetch and parse the set (no caching of its own: that is ours, above).
        self._client = jwt.PyJWKClient(self.jwks_url, cache_jwk_set=False, timeout=_JWKS_FETCH_TIMEOUT_SECONDS)
        self._lock = threading.Lock()
        self._keys: dict[str, VerificationKey] | None = None
        self._next_fetch = 0.0
        self._next_forced_fetch = 0.0

    @property
    def issuer(self) -> str:
        return self._issuer

    def key_for(self, kid: str | None) -> VerificationKey:
        if not kid:
            raise UnknownSigningKey(kid)
        # One thread fetches while the others wait for its result instead of fetching too.
        with self._lock:
            now = time.monotonic()
            if now >= self._next_fetch:
                self._fetch(now)
            if self._keys is None:
                # Never fetched: until the next attempt is due, answer at once instead of each fetching in turn.
                raise KeySourceUnavailable(f"cannot fetch signing keys from {self.jwks_url}")
            keys = self._keys
            if kid not in keys and now >= self._next_forced_fetch:
                self._next_forced_fetch = now + self.min_refresh_seconds
                self._fetch(now)
                keys = self._keys
        try:
            return keys[kid]
        except KeyError:
            raise UnknownSigningKey(kid) from None

    def _fetch(self, now: float) -> None:
        try:
            fetched = self._client.get_signing_keys()
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, ValueError) as exc:
            # Unreachable (PyJWKClientConnectionError), not JSON, or a set without usable signing keys.
            if self._keys is None:
                self._next_fetch = now + _JWKS_RETRY_SECONDS
                raise KeySourceUnavailable(f"cannot fetch signing keys from {self.jwks_url}: {exc}") from exc
            logger.warning("keeping the cached signing keys: cannot fetch %s: %s", self.jwks_url, exc)
            self._next_fetch = now + self.min_refresh_seconds
            return
        self._keys = {jwk.key_id: jwk.key for jwk in fetched if jwk.key_id}
        self._next_fetch = now + self.cache_seconds


def key_source() -> KeySource:
    """The configured key source: the provider's JWKS when OIDC_ISSUER is set, else the dev issuer."""
    if settings.OIDC_ISSUER:
        return _jwks_key_source(settings.OIDC_ISSUER, settings.OIDC_JWKS_URL or None)
    return dev_issuer_keys()


def dev_issuer_keys() -> DevIssuerKeys:
    """The dev issuer of the current settings; refuses when a real provider is configured."""
    if settings.OIDC_ISSUER:
        raise ImproperlyConfigured("The dev issuer is off: OIDC_ISSUER names the identity provider")
    return _dev_issuer_keys(settings.FINTECH_DEV_ISSUER, str(settings.FINTECH_DEV_ISSUER_KEY_PATH))


# Keyed on the setting values rather than cached once, so override_settings in tests takes effect.
@lru_cache(maxsize=16)
def _dev_issuer_keys(issuer: str, key_path: str) -> DevIssuerKeys:
    return DevIssuerKeys(issuer=issuer, key_path=key_path)


@lru_cache(maxsize=4)
def _jwks_key_source(issuer: str, jwks_url: str | None) -> JwksKeySource:
    return JwksKeySource(issuer=issuer, jwks_url=jwks_url)
