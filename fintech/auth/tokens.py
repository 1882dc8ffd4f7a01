"""Bearer token validation, and the dev issuer's token minting."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt
from django.conf import settings

from fintech.auth.keys import KeySource, UnknownSigningKey, dev_issuer_keys, key_source
from fintech.auth.principal import CUSTOMER_CLAIM, SCOPE_CLAIM, Principal

DEV_CLIENT_ID = "fintech-dev"
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss"]
# What marks an access token, when the token says what it is (compared case-insensitively): the JOSE
# header `typ` is "JWT" (Keycloak, most providers) or RFC 9068's "at+jwt"; Keycloak also puts a `typ`
# claim in the payload, "Bearer" on access tokens and "ID", "Refresh", "Logout" on the others, which
# are signed by the same keys and may name our audience too.
_ACCESS_TOKEN_HEADER_TYPES = frozenset({"jwt", "at+jwt", "application/at+jwt"})
_ACCESS_TOKEN_CLAIM_TYPES = frozenset({"bearer"})


class InvalidToken(Exception):
    """The token proves nothing; `reason` says why in words fit for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Most specific first: InvalidSignatureError is a DecodeError, and all are InvalidTokenError.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not valid yet"),
    (jwt.InvalidAudienceError, "token is not meant for this audience"),
    (jwt.InvalidIssuerError, "token is from an untrusted issuer"),
    (jwt.InvalidAlgorithmError, "token algorithm is not allowed"),
    (jwt.InvalidSignatureError, "token signature does not verify"),
    (jwt.DecodeError, "token is malformed"),
)


class TokenValidator:
    def __init__(
        self,
        key_source: KeySource,
        issuer: str,
        audience: str,
        leeway: int | float,
        algorithms: Sequence[str] = ("RS256",),
    ) -> None:
        if not algorithms or any(alg.lower() == "none" or alg.upper().startswith("HS") for alg in algorithms):
            # A symmetric algorithm would verify with the public key as its secret: anyone could sign.
            raise ValueError("algorithms must be a non-empty list of asymmetric algorithms")
        self.key_source = key_source
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.algorithms = tuple(algorithms)

    def validate(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("token is malformed") from exc
        # Only to pick the key: the algorithm that verifies is always one of ours, never the header's.
        if header.get("alg") not in self.algorithms:
            raise InvalidToken("token algorithm is not allowed")
        if not _typed_as(header.get("typ"), _ACCESS_TOKEN_HEADER_TYPES):
            raise InvalidToken("token is not an access token")
        kid = header.get("kid")
        try:
            key = self.key_source.key_for(kid)
        except UnknownSigningKey as exc:
            raise InvalidToken("token is signed by an unknown key") from exc
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the {exc.claim} claim") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(_reason(exc)) from exc
        if not _typed_as(claims.get("typ"), _ACCESS_TOKEN_CLAIM_TYPES):
            raise InvalidToken("token is not an access token")
        try:
            return Principal.from_claims(claims)
        except ValueError as exc:
            raise InvalidToken(f"token claims are malformed: {exc}") from exc


def _typed_as(typ: object, accepted: frozenset[str]) -> bool:
    """True when the token does not say what it is, or says it is one of `accepted`."""
    return typ is None or (isinstance(typ, str) and typ.lower() in accepted)


def _reason(exc: jwt.PyJWTError) -> str:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "token is invalid"


def default_validator() -> TokenValidator:
    """The validator for the current settings (the provider's when OIDC_ISSUER is set, else the dev issuer)."""
    return _validator(key_source(), settings.OIDC_AUDIENCE, settings.FINTECH_TOKEN_LEEWAY_SECONDS)


# key_source() hands out one instance per key settings, so together with the other two settings
# this key follows override_settings instead of pinning the first configuration for good.
@lru_cache(maxsize=16)
def _validator(source: KeySource, audience: str, leeway: int) -> TokenValidator:
    return TokenValidator(source, issuer=source.issuer, audience=audience, leeway=leeway)


def issue_dev_token(
    *,
    subject: str,
    scopes: str | Iterable[str],
    customer_id: uuid.UUID | str | None = None,
    ttl_seconds: int = 3600,
    now: datetime | None = None,
) -> str:
    """A signed access token from the embedded dev issuer (refused when OIDC_ISSUER is set)."""
    if not subject:
        raise ValueError("subject must not be empty")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    scope_list = scopes.split() if isinstance(scopes, str) else list(scopes)
    if any(scope.split() != [scope] for scope in scope_list):
        raise ValueError("each scope must be one non-empty word")
    issued_at = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": settings.FINTECH_DEV_ISSUER,
        "aud": settings.OIDC_AUDIENCE,
        "sub": subject,
        SCOPE_CLAIM: " ".join(sorted(set(scope_list))),
        "iat": int(issued_at.timestamp()),
        "nbf": int(issued_at.timestamp()),
        "exp": int((issued_at + timedelta(seconds=ttl_seconds)).timestamp()),
        "jti": str(uuid.uuid4()),
        "azp": DEV_CLIENT_ID,
    }
    if customer_id is not None:
        claims[CUSTOMER_CLAIM] = str(customer_id if isinstance(customer_id, uuid.UUID) else uuid.UUID(customer_id))
    return dev_issuer_keys().sign(claims)
