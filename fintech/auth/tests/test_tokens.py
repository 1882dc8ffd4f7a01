from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.exceptions import ImproperlyConfigured
from pytest_django.fixtures import Settings

from fintech.auth.keys import DevIssuerKeys
from fintech.auth.tokens import InvalidToken, TokenValidator, default_validator, issue_dev_token

from .conftest import AUDIENCE, DEV_ISSUER, LEEWAY

CUSTOMER = uuid.UUID("0b8f8d0e-3f5a-4d43-9c0a-5f7e2b9d6a11")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "aud": AUDIENCE,
        "sub": "u-1",
        "scope": "customers:read",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _rejection(token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        default_validator().validate(token)
    return caught.value.reason


def test_dev_token_is_accepted_with_scopes_and_customer_link() -> None:
    token = issue_dev_token(subject="u-1", scopes="accounts:read customers:read", customer_id=CUSTOMER)

    principal = default_validator().validate(token)

    assert principal.subject == "u-1"
    assert principal.scopes == frozenset({"accounts:read", "customers:read"})
    assert principal.customer_id == CUSTOMER
    assert principal.client_id == "fintech-dev"
    assert principal.claims["iss"] == DEV_ISSUER
    assert principal.claims["aud"] == AUDIENCE


def test_dev_token_carries_the_documented_claims(dev_keys: DevIssuerKeys) -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    token = issue_dev_token(subject="u-1", scopes=["b:read", "a:read"], ttl_seconds=60, now=now)

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})

    assert header == {"alg": "RS256", "typ": "at+jwt", "kid": dev_keys.kid}
    assert set(claims) == {"iss", "aud", "sub", "scope", "iat", "nbf", "exp", "jti", "azp"}
    assert claims["scope"] == "a:read b:read"
    assert claims["iat"] == claims["nbf"] == int(now.timestamp())
    assert claims["exp"] == int(now.timestamp()) + 60
    uuid.UUID(claims["jti"])


@pytest.mark.parametrize("scopes", [["two words"], [""], [" padded"]])
def test_dev_token_refuses_scopes_that_are_not_one_word(scopes: list[str]) -> None:
    with pytest.raises(ValueError, match="one non-empty word"):
        issue_dev_token(subject="u-1", scopes=scopes)


def test_unsigned_token_is_rejected(dev_keys: DevIssuerKeys) -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": dev_keys.kid}).encode())
    token = f"{header}.{_b64(json.dumps(_claims()).encode())}."

    assert _rejection(token) == "token algorithm is not allowed"


def test_hs256_token_keyed_with_the_public_key_is_rejected(dev_keys: DevIssuerKeys) -> None:
    # The classic confusion attack: the verifier's public key used as an HMAC secret.
    secret = dev_keys.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": dev_keys.kid}).encode())
        + "."
        + _b64(json.dumps(_claims()).encode())
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()

    assert _rejection(f"{signing_input}.{_b64(signature)}") == "token algorithm is not allowed"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"iss": "https://evil.test"}, "token is from an untrusted issuer"),
        ({"aud": "another-api"}, "token is not meant for this audience"),
        ({"aud": None}, "token lacks the aud claim"),
        # Times relative to when the test runs, not when it was collected (the suite takes minutes).
        ({"exp": lambda: int(time.time()) - LEEWAY - 5}, "token has expired"),
        ({"nbf": lambda: int(time.time()) + LEEWAY + 60}, "token is not valid yet"),
        ({"exp": None}, "token lacks the exp claim"),
        ({"iat": None}, "token lacks the iat claim"),
        ({"sub": None}, "token lacks the sub claim"),
        ({"iss": None}, "token lacks the iss claim"),
        ({"customer_id": "customer-42"}, "token claims are malformed: badly formed hexadecimal UUID string"),
    ],
)
def test_token_with_bad_claims_is_rejected(dev_keys: DevIssuerKeys, overrides: dict[str, Any], reason: str) -> None:
    claims = {name: value() if callable(value) else value for name, value in overrides.items()}
    assert _rejection(dev_keys.sign(_claims(**claims))) == reason


def test_token_signed_by_an_unknown_key_is_rejected(tmp_path: Path) -> None:
    stranger = DevIssuerKeys(issuer=DEV_ISSUER, key_path=tmp_path / "stranger.pem")

    assert _rejection(stranger.sign(_claims())) == "token is signed by an unknown key"


def test_token_signed_by_another_key_under_our_kid_is_rejected(dev_keys: DevIssuerKeys) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), forger, algorithm="RS256", headers={"kid": dev_keys.kid})

    assert _rejection(token) == "token signature does not verify"


def test_tampered_payload_is_rejected(dev_keys: DevIssuerKeys) -> None:
    header, _, signature = dev_keys.sign(_claims()).split(".")
    widened = _b64(json.dumps(_claims(scope="customers:read fraud:review")).encode())

    assert _rejection(f"{header}.{widened}.{signature}") == "token signature does not verify"


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "e30.e30.", "Bearer x"])
def test_malformed_token_is_rejected(token: str) -> None:
    assert _rejection(token) in {"token is malformed", "token algorithm is not allowed"}


def test_clock_skew_within_the_leeway_is_tolerated(dev_keys: DevIssuerKeys) -> None:
    now = int(time.time())
    expired_just_now = dev_keys.sign(_claims(exp=now - LEEWAY + 5))
    valid_shortly = dev_keys.sign(_claims(iat=now + LEEWAY - 5, nbf=now + LEEWAY - 5))

    assert default_validator().validate(expired_just_now).subject == "u-1"
    assert default_validator().validate(valid_shortly).subject == "u-1"


def test_default_validator_follows_the_settings(settings: Settings) -> None:
    token = issue_dev_token(subject="u-1", scopes="customers:read")
    default_validator().validate(token)

    settings.OIDC_AUDIENCE = "another-api"

    assert default_validator().audience == "another-api"
    assert _rejection(token) == "token is not meant for this audience"


def test_dev_token_expires_after_its_ttl() -> None:
    token = issue_dev_token(
        subject="u-1", scopes="customers:read", ttl_seconds=60, now=datetime.now(UTC) - timedelta(hours=1)
    )

    assert _rejection(token) == "token has expired"


def test_dev_tokens_are_refused_once_a_real_issuer_is_configured(settings: Settings) -> None:
    settings.OIDC_ISSUER = "https://id.bank.test/realms/fintech"

    with pytest.raises(ImproperlyConfigured, match="dev issuer is off"):
        issue_dev_token(subject="u-1", scopes="customers:read")


@pytest.mark.parametrize("algorithms", [(), ("HS256",), ("RS256", "none")])
def test_validator_refuses_symmetric_or_no_algorithms(dev_keys: DevIssuerKeys, algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="asymmetric"):
        TokenValidator(dev_keys, DEV_ISSUER, AUDIENCE, 0, algorithms=algorithms)
