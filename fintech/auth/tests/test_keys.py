from __future__ import annotations

import base64
import json
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_django.fixtures import Settings

from fintech.auth import keys
from fintech.auth.keys import (
    DevIssuerKeys,
    JwksKeySource,
    KeySourceUnavailable,
    UnknownSigningKey,
    jwk_thumbprint,
    key_source,
)
from fintech.auth.tokens import TokenValidator, issue_dev_token

from .conftest import AUDIENCE, DEV_ISSUER


def _b64_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def test_thumbprint_matches_the_rfc_7638_example() -> None:
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
        "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
        "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-"
        "kEgU8awapJzKnqDKgw"
    )
    public_key = rsa.RSAPublicNumbers(e=_b64_int("AQAB"), n=_b64_int(n)).public_key()

    assert jwk_thumbprint(public_key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_key_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "key.pem"

    first = DevIssuerKeys(issuer=DEV_ISSUER, key_path=path)
    pem = path.read_bytes()
    second = DevIssuerKeys(issuer=DEV_ISSUER, key_path=path)

    assert first.kid == second.kid
    assert path.read_bytes() == pem
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.public_key.key_size == 2048
    assert [p.name for p in path.parent.iterdir()] == ["key.pem"]


def test_loser_of_a_creation_race_uses_the_winners_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "key.pem"
    winner = DevIssuerKeys(issuer=DEV_ISSUER, key_path=path)
    real_read = keys._read_private_key
    reads: list[Path] = []

    def read_that_missed_the_winner_once(p: Path) -> rsa.RSAPrivateKey:
        reads.append(p)
        if len(reads) == 1:
            raise FileNotFoundError(p)  # the loser looked before the winner's link landed
        return real_read(p)

    monkeypatch.setattr(keys, "_read_private_key", read_that_missed_the_winner_once)
    loser = DevIssuerKeys(issuer=DEV_ISSUER, key_path=path)

    assert loser.kid == winner.kid
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


def test_concurrent_first_use_ends_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"

    with ThreadPoolExecutor(max_workers=4) as pool:
        kids = set(pool.map(lambda _: DevIssuerKeys(issuer=DEV_ISSUER, key_path=path).kid, range(4)))

    assert kids == {DevIssuerKeys(issuer=DEV_ISSUER, key_path=path).kid}
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


def test_dev_keys_know_only_their_own_kid(dev_keys: DevIssuerKeys) -> None:
    assert dev_keys.key_for(dev_keys.kid) is dev_keys.public_key
    with pytest.raises(UnknownSigningKey):
        dev_keys.key_for("someone-else")
    with pytest.raises(UnknownSigningKey):
        dev_keys.key_for(None)


def test_published_jwk_set_verifies_the_dev_tokens(dev_keys: DevIssuerKeys) -> None:
    token = dev_keys.sign({"sub": "u-1"})
    (jwk,) = dev_keys.jwks()["keys"]

    assert jwk["kid"] == dev_keys.kid
    assert jwk["kty"] == "RSA"
    assert "d" not in jwk
    assert jwt.get_unverified_header(token)["kid"] == dev_keys.kid
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"]) == {"sub": "u-1"}


def test_key_source_is_the_dev_issuer_without_an_oidc_issuer(dev_keys: DevIssuerKeys) -> None:
    assert key_source() is dev_keys
    assert dev_keys.issuer == DEV_ISSUER


def test_key_source_is_the_providers_jwks_with_an_oidc_issuer(settings: Settings) -> None:
    settings.OIDC_ISSUER = "https://id.bank.test/realms/fintech"

    source = key_source()

    assert isinstance(source, JwksKeySource)
    assert source.issuer == "https://id.bank.test/realms/fintech"
    assert source.jwks_url == "https://id.bank.test/realms/fintech/protocol/openid-connect/certs"

    settings.OIDC_JWKS_URL = "https://id.bank.test/keys"
    assert key_source().jwks_url == "https://id.bank.test/keys"  # type: ignore[attr-defined]


@pytest.fixture
def jwks_server(dev_keys: DevIssuerKeys) -> Iterator[str]:
    body = json.dumps(dev_keys.jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/certs"
    finally:
        server.shutdown()
        server.server_close()


def test_jwks_source_validates_tokens_of_its_issuer(dev_keys: DevIssuerKeys, jwks_server: str) -> None:
    source = JwksKeySource(DEV_ISSUER, jwks_server)
    validator = TokenValidator(source, issuer=DEV_ISSUER, audience=AUDIENCE, leeway=0)

    principal = validator.validate(issue_dev_token(subject="u-1", scopes="customers:read"))

    assert principal.subject == "u-1"
    with pytest.raises(UnknownSigningKey):
        source.key_for("not-published")


def test_jwks_source_that_cannot_be_reached_is_unavailable_not_unknown() -> None:
    source = JwksKeySource("https://id.bank.test", "http://127.0.0.1:9/certs")

    with pytest.raises(KeySourceUnavailable):
        source.key_for("any")
