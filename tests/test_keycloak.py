"""Keycloak, the production identity provider, against the bank: API access tokens validated locally
against the realm's JWKS, and the Django admin's login through the same realm.

Tests marked `keycloak` run against the real server that FINTECH_TEST_KEYCLOAK_ISSUER names
(tests/keycloak_support.py; `make test` starts it with deploy/local/keycloak.sh) and fail when it does
not answer. The rest of the suite keeps the embedded dev issuer: these tests point the settings (or a
validator of their own) at Keycloak themselves. The first tests, unmarked, pin the validator's OIDC
rules (token type, JWKS refresh) without a provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.test import Client
from jwt.algorithms import RSAAlgorithm
from pytest_django.fixtures import Settings
from rest_framework.test import APIClient

from fintech.auth.keys import JwksKeySource, KeySourceUnavailable, UnknownSigningKey, VerificationKey, key_source
from fintech.auth.tokens import InvalidToken, TokenValidator
from tests import factories
from tests.keycloak_support import (
    ADMIN_USER,
    ALL_SCOPES,
    AUDIENCE,
    BACKOFFICE_CLIENT,
    CUSTOMER_ID,
    CUSTOMER_SCOPES,
    CUSTOMER_USER,
    PAYMENT_NETWORK_CLIENT,
    STAFF_USER,
    TESTS_CLIENT,
    WEB_CLIENT,
    AdminAPI,
    Browser,
    Realm,
    backoffice_settings,
    configured_issuer,
    query_params,
    unverified_claims,
)

keycloak = pytest.mark.keycloak
REALM = "fintech"
OTHER_REALM = "fintech-tests-other"
WEB_REDIRECT = "http://127.0.0.1:8765/callback"  # any port: loopback redirect URIs per RFC 8252
BACKOFFICE_REDIRECT = "http://127.0.0.1:8000/oidc/callback/"
LEEWAY = 30


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _header(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def _new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --- The validator's OIDC rules, without a provider -----------------------------------------------


class _StaticKeys:
    issuer = "https://id.bank.test/realms/fintech"

    def __init__(self, kid: str, key: VerificationKey) -> None:
        self._kid, self._key = kid, key

    def key_for(self, kid: str | None) -> VerificationKey:
        if kid != self._kid:
            raise UnknownSigningKey(kid)
        return self._key


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return _new_rsa_key()


def _static_validator(signing_key: rsa.RSAPrivateKey) -> TokenValidator:
    keys = _StaticKeys("k1", signing_key.public_key())
    return TokenValidator(keys, issuer=keys.issuer, audience=AUDIENCE, leeway=LEEWAY)


def _signed(signing_key: rsa.RSAPrivateKey, *, header_typ: str | None = "JWT", **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": _StaticKeys.issuer, "aud": AUDIENCE, "sub": "u-1", "iat": now, "exp": now + 300, **claims}
    headers: dict[str, Any] = {"kid": "k1", "typ": header_typ}
    if header_typ is None:
        headers = {"kid": "k1"}
    token = jwt.encode({k: v for k, v in payload.items() if v is not None}, signing_key, "RS256", headers=headers)
    if header_typ is None:
        # PyJWT always writes typ "JWT" unless told otherwise: rebuild the header without it.
        _, body, _ = token.split(".")
        head = _b64(json.dumps({"alg": "RS256", "kid": "k1"}).encode())
        signature = signing_key.sign(f"{head}.{body}".encode(), *_pkcs1_sha256())
        token = f"{head}.{body}.{_b64(signature)}"
    return token


def _pkcs1_sha256() -> tuple[padding.PKCS1v15, hashes.SHA256]:
    return padding.PKCS1v15(), hashes.SHA256()


@pytest.mark.parametrize(
    ("header_typ", "claim_typ"),
    [("JWT", "Bearer"), ("at+jwt", None), ("application/at+jwt", None), (None, None), ("jwt", "bearer")],
)
def test_access_tokens_pass_the_type_check(
    signing_key: rsa.RSAPrivateKey, header_typ: str | None, claim_typ: str | None
) -> None:
    token = _signed(signing_key, header_typ=header_typ, typ=claim_typ)

    assert _static_validator(signing_key).validate(token).subject == "u-1"


@pytest.mark.parametrize(
    ("header_typ", "claim_typ"),
    [("JWT", "ID"), ("JWT", "Refresh"), ("JWT", "Logout"), ("logout+jwt", None), ("secevent+jwt", None), ("JWT", 1)],
)
def test_tokens_of_other_types_are_refused(signing_key: rsa.RSAPrivateKey, header_typ: str, claim_typ: object) -> None:
    token = _signed(signing_key, header_typ=header_typ, typ=claim_typ)

    with pytest.raises(InvalidToken, match="not an access token"):
        _static_validator(signing_key).validate(token)


class _JwksServer:
    """A JWKS endpoint whose key set the test changes, counting the fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPublicKey] = {}
        self.fetches = 0
        self.failing = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                if owner.failing:
                    self.send_response(503)
                    self.end_headers()
                    return
                jwks = {"keys": [owner._jwk(kid, key) for kid, key in owner.keys.items()]}
                body = json.dumps(jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/certs"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @staticmethod
    def _jwk(kid: str, key: rsa.RSAPublicKey) -> dict[str, Any]:
        jwk = dict(RSAAlgorithm.to_jwk(key, as_dict=True))
        jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
        return jwk

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def jwks() -> Iterator[_JwksServer]:
    server = _JwksServer()
    server.keys["old"] = _new_rsa_key().public_key()
    try:
        yield server
    finally:
        server.close()


def test_jwks_is_fetched_once_and_cached(jwks: _JwksServer) -> None:
    source = JwksKeySource("https://id.bank.test", jwks.url)

    for _ in range(5):
        source.key_for("old")

    assert jwks.fetches == 1


def test_unknown_kid_refetches_once_and_refetches_are_rate_limited(jwks: _JwksServer) -> None:
    source = JwksKeySource("https://id.bank.test", jwks.url, min_refresh_seconds=60)
    source.key_for("old")

    for forged in ("forged-1", "forged-2", "forged-3"):
        with pytest.raises(UnknownSigningKey):
            source.key_for(forged)

    assert jwks.fetches == 2  # the first fetch, and one refetch for the first unknown kid


def test_a_rotated_in_key_is_found_right_after_a_routine_fetch(jwks: _JwksServer) -> None:
    source = JwksKeySource("https://id.bank.test", jwks.url, min_refresh_seconds=60)
    source.key_for("old")
    jwks.keys["new"] = _new_rsa_key().public_key()

    assert source.key_for("new") is not None
    assert jwks.fetches == 2


def test_a_dropped_key_stops_verifying_at_the_next_fetch(jwks: _JwksServer) -> None:
    source = JwksKeySource("https://id.bank.test", jwks.url, cache_seconds=0.2)
    source.key_for("old")
    jwks.keys = {"new": _new_rsa_key().public_key()}
    time.sleep(0.3)

    with pytest.raises(UnknownSigningKey):
        source.key_for("old")


def test_cached_keys_keep_serving_while_the_provider_is_down(jwks: _JwksServer) -> None:
    source = JwksKeySource("https://id.bank.test", jwks.url, cache_seconds=0.1, min_refresh_seconds=0.1)
    source.key_for("old")
    jwks.failing = True
    time.sleep(0.2)

    assert source.key_for("old") is not None

    cold = JwksKeySource("https://id.bank.test", jwks.url)
    fetches = jwks.fetches
    for _ in range(3):
        with pytest.raises(KeySourceUnavailable):
            cold.key_for("old")
    assert jwks.fetches == fetches + 1  # with nothing cached, one attempt per retry interval; the rest fail fast


# --- The real Keycloak ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def realm() -> Realm:
    return Realm(configured_issuer())


@pytest.fixture(scope="session")
def admin_api(realm: Realm) -> AdminAPI:
    return AdminAPI(realm)


@pytest.fixture
def kc_settings(settings: Settings, realm: Realm) -> Settings:
    """The API validates against the Keycloak realm (the rest of the suite keeps the dev issuer)."""
    settings.OIDC_ISSUER = realm.issuer
    settings.OIDC_JWKS_URL = ""
    settings.OIDC_AUDIENCE = AUDIENCE
    settings.FINTECH_TOKEN_LEEWAY_SECONDS = LEEWAY
    return settings


def _get(path: str, token: str) -> Any:
    return APIClient().get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


def _scopes(token: str) -> set[str]:
    return set(unverified_claims(token)["scope"].split())


@keycloak
@pytest.mark.django_db
def test_client_credentials_token_of_the_test_client_is_accepted_with_every_scope(
    kc_settings: Settings, realm: Realm
) -> None:
    token = realm.client_credentials(TESTS_CLIENT)["access_token"]
    claims = unverified_claims(token)

    assert _scopes(token) == ALL_SCOPES
    assert claims["aud"] == AUDIENCE
    assert claims["typ"] == "Bearer"
    assert "customer_id" not in claims
    response = _get("/api/v1/customers", token)
    assert response.status_code == 200, response.content


@keycloak
@pytest.mark.django_db
def test_payment_network_token_holds_only_its_scopes(kc_settings: Settings, realm: Realm) -> None:
    token = realm.client_credentials(PAYMENT_NETWORK_CLIENT)["access_token"]

    assert _scopes(token) == {"payments:write", "deposits:write"}
    response = _get("/api/v1/customers", token)
    assert response.status_code == 403
    assert response.data["code"] == "insufficient_scope"


@pytest.fixture
def linked_customer(admin_api: AdminAPI) -> Iterator[Any]:
    """A customer of the bank, linked to the realm's customer user (its customer_id attribute), as
    onboarding does; the realm file's link is restored afterwards."""
    customer = factories.pending_customer()
    user = admin_api.user(REALM, CUSTOMER_USER[0])

    def link(customer_id: str) -> None:
        user["attributes"] = {**user.get("attributes", {}), "customer_id": [customer_id]}
        admin_api.put(f"/{REALM}/users/{user['id']}", user)

    link(str(customer.id))
    try:
        yield customer
    finally:
        link(CUSTOMER_ID)


@keycloak
@pytest.mark.django_db
def test_customer_token_from_the_authorization_code_flow_sees_only_its_customer(
    kc_settings: Settings, realm: Realm, linked_customer: Any
) -> None:
    someone_else = factories.pending_customer(name="Caio Prado")

    token = realm.authorization_code(WEB_CLIENT, CUSTOMER_USER, redirect_uri=WEB_REDIRECT)["access_token"]
    claims = unverified_claims(token)

    assert claims["customer_id"] == str(linked_customer.id)
    assert claims["aud"] == AUDIENCE
    assert _scopes(token) >= CUSTOMER_SCOPES
    assert not (ALL_SCOPES - CUSTOMER_SCOPES) & _scopes(token)
    own = _get(f"/api/v1/customers/{linked_customer.id}", token)
    assert own.status_code == 200, own.content
    assert own.data["id"] == str(linked_customer.id)
    assert _get(f"/api/v1/customers/{someone_else.id}", token).status_code == 404
    listed = _get("/api/v1/customers", token)
    assert listed.status_code == 200
    assert [c["id"] for c in listed.data["results"]] == [str(linked_customer.id)]


@pytest.fixture(scope="module")
def customer_tokens(realm: Realm) -> dict[str, Any]:
    """Access and ID token of the realm's customer user (fintech-web, authorization code + PKCE)."""
    if not configured_issuer():
        pytest.fail("FINTECH_TEST_KEYCLOAK_ISSUER is not set", pytrace=False)
    return realm.authorization_code(WEB_CLIENT, CUSTOMER_USER, redirect_uri=WEB_REDIRECT)


@pytest.fixture(scope="module")
def forgery_key(realm: Realm, admin_api: AdminAPI) -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    """A key we hold, published in the realm's JWKS (a passive key provider, so Keycloak never signs with
    it): tokens signed by it verify, which isolates each claim check. Removed afterwards."""
    key = _new_rsa_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    name = "fintech-tests-forgery-key"
    for stale in [c for c in admin_api.key_providers(REALM) if c["name"] == name]:
        admin_api.delete(f"/{REALM}/components/{stale['id']}")
    component_id = admin_api.add_key_provider(
        REALM,
        name,
        "rsa",
        {"privateKey": pem, "priority": "1", "enabled": "true", "active": "false", "algorithm": "RS256"},
    )
    try:
        yield admin_api.kid_of(REALM, component_id), key
    finally:
        admin_api.delete(f"/{REALM}/components/{component_id}")


def _wait_until_known(kid: str, timeout: float = 20.0) -> None:
    """The API's key source learns a new kid on its next allowed refetch (rate-limited): wait for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            key_source().key_for(kid)
            return
        except UnknownSigningKey:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


@pytest.fixture
def sign_as_realm(
    kc_settings: Settings, realm: Realm, forgery_key: tuple[str, rsa.RSAPrivateKey]
) -> Callable[..., str]:
    """Signs claims with a key the realm publishes; defaults are those of a valid access token. Times given
    for exp, iat and nbf are seconds from now."""
    kid, key = forgery_key
    _wait_until_known(kid)

    def sign(**overrides: Any) -> str:
        now = int(time.time())
        for name in ("exp", "iat", "nbf"):
            if isinstance(overrides.get(name), int):
                overrides[name] += now
        claims = {
            "iss": realm.issuer,
            "aud": AUDIENCE,
            "sub": str(uuid.uuid4()),
            "typ": "Bearer",
            "azp": TESTS_CLIENT[0],
            "scope": "customers:read",
            "iat": now,
            "exp": now + 300,
            **overrides,
        }
        return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, "RS256", headers={"kid": kid})

    return sign


def _refused(token: str) -> str:
    response = _get("/api/v1/customers", token)
    assert response.status_code == 401, response.content
    assert response.data["code"] == "invalid_token"
    assert response["WWW-Authenticate"].startswith("Bearer")
    detail: str = response.data["detail"]
    return detail


@keycloak
@pytest.mark.django_db
def test_a_token_signed_by_a_published_key_with_valid_claims_is_accepted(sign_as_realm: Callable[..., str]) -> None:
    # The control for the forgeries below: each differs from this token in one claim only.
    response = _get("/api/v1/customers", sign_as_realm())

    assert response.status_code == 200, response.content


@keycloak
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param({"iss": "http://127.0.0.1:58080/realms/master"}, "untrusted issuer", id="wrong-iss"),
        pytest.param({"aud": "account"}, "not meant for this audience", id="wrong-aud"),
        pytest.param({"aud": None}, "lacks the aud claim", id="no-aud"),
        pytest.param({"exp": -120, "iat": -420}, "expired", id="expired"),
        pytest.param({"nbf": +600}, "not valid yet", id="future-nbf"),
        pytest.param({"typ": "ID"}, "not an access token", id="id-typed"),
        pytest.param({"sub": None}, "lacks the sub claim", id="no-sub"),
    ],
)
def test_forged_claims_are_refused(sign_as_realm: Callable[..., str], overrides: dict[str, Any], reason: str) -> None:
    assert reason in _refused(sign_as_realm(**overrides))


@keycloak
@pytest.mark.django_db
def test_unsigned_token_is_refused(kc_settings: Settings, realm: Realm) -> None:
    real = realm.client_credentials(TESTS_CLIENT)["access_token"]
    head = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": _header(real)["kid"]}).encode())

    assert "algorithm is not allowed" in _refused(f"{head}.{real.split('.')[1]}.")


@keycloak
@pytest.mark.django_db
def test_hs256_token_keyed_with_the_realms_public_key_is_refused(kc_settings: Settings, realm: Realm) -> None:
    real = realm.client_credentials(TESTS_CLIENT)["access_token"]
    kid = _header(real)["kid"]
    status, _, body = Browser().get(realm.endpoint("certs"))
    assert status == 200
    (jwk,) = [k for k in json.loads(body)["keys"] if k["kid"] == kid]
    public_pem = (
        jwt.PyJWK(jwk)
        .key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body_part = real.split(".")[1]
    mac = hmac.new(public_pem.encode(), f"{head}.{body_part}".encode(), hashlib.sha256).digest()

    assert "algorithm is not allowed" in _refused(f"{head}.{body_part}.{_b64(mac)}")


@keycloak
@pytest.mark.django_db
def test_token_with_an_unknown_kid_is_refused(kc_settings: Settings, realm: Realm) -> None:
    claims = unverified_claims(realm.client_credentials(TESTS_CLIENT)["access_token"])
    forged = jwt.encode(claims, _new_rsa_key(), "RS256", headers={"kid": f"forged-{uuid.uuid4()}"})

    assert "unknown key" in _refused(forged)


@keycloak
@pytest.mark.django_db
def test_token_with_a_bad_signature_is_refused(kc_settings: Settings, realm: Realm) -> None:
    head, body, signature = realm.client_credentials(TESTS_CLIENT)["access_token"].split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01

    assert "signature does not verify" in _refused(f"{head}.{body}.{_b64(bytes(raw))}")


@keycloak
@pytest.mark.django_db
def test_token_for_another_host_name_of_the_realm_is_refused(kc_settings: Settings, realm: Realm) -> None:
    # A real token signed by the realm's key, but issued under another name (Keycloak derives `iss` from
    # the URL it was asked on): the issuer must match exactly.
    localhost = Realm(realm.issuer.replace("://127.0.0.1:", "://localhost:"))
    token = localhost.client_credentials(TESTS_CLIENT)["access_token"]

    assert unverified_claims(token)["iss"] == localhost.issuer
    assert "untrusted issuer" in _refused(token)


@keycloak
@pytest.mark.django_db
def test_id_token_from_keycloak_is_refused(kc_settings: Settings, customer_tokens: dict[str, Any]) -> None:
    assert unverified_claims(customer_tokens["id_token"])["typ"] == "ID"
    assert _refused(customer_tokens["id_token"])


@keycloak
def test_id_token_is_refused_even_where_its_audience_is_accepted(realm: Realm, customer_tokens: dict[str, Any]) -> None:
    # An ID token names its client as the audience; were that client's audience accepted, the token type
    # still tells it apart from an access token.
    validator = TokenValidator(JwksKeySource(realm.issuer), issuer=realm.issuer, audience=WEB_CLIENT, leeway=LEEWAY)

    with pytest.raises(InvalidToken, match="not an access token"):
        validator.validate(customer_tokens["id_token"])


@pytest.fixture(scope="module")
def other_realm(realm: Realm, admin_api: AdminAPI) -> Iterator[Realm]:
    """A second realm on the same server, with look-alike clients: same audience, same client id."""
    admin_api.call("DELETE", f"/{OTHER_REALM}", expect=(204, 404))
    admin_api.post(
        "",
        {
            "realm": OTHER_REALM,
            "enabled": True,
            "clients": [
                {"clientId": AUDIENCE, "bearerOnly": True},
                {
                    "clientId": TESTS_CLIENT[0],
                    "secret": TESTS_CLIENT[1],
                    "publicClient": False,
                    "standardFlowEnabled": False,
                    "serviceAccountsEnabled": True,
                    "protocolMappers": [
                        {
                            "name": "audience",
                            "protocol": "openid-connect",
                            "protocolMapper": "oidc-audience-mapper",
                            "config": {"included.client.audience": AUDIENCE, "access.token.claim": "true"},
                        }
                    ],
                },
            ],
        },
    )
    try:
        yield realm.other(OTHER_REALM)
    finally:
        admin_api.delete(f"/{OTHER_REALM}")


@keycloak
@pytest.mark.django_db
def test_token_from_another_realm_is_refused(kc_settings: Settings, other_realm: Realm) -> None:
    token = other_realm.client_credentials(TESTS_CLIENT)["access_token"]
    claims = unverified_claims(token)

    assert AUDIENCE in claims["aud"]
    assert claims["iss"] == other_realm.issuer
    assert "unknown key" in _refused(token)


@keycloak
def test_a_rotated_key_is_picked_up_without_a_restart(realm: Realm, admin_api: AdminAPI) -> None:
    validator_source = JwksKeySource(realm.issuer)
    validator = TokenValidator(validator_source, issuer=realm.issuer, audience=AUDIENCE, leeway=LEEWAY)
    before = realm.client_credentials(TESTS_CLIENT)["access_token"]
    assert validator.validate(before).client_id == TESTS_CLIENT[0]
    old_providers = [
        c
        for c in admin_api.key_providers(REALM)
        if c["providerId"] == "rsa-generated" and c["config"].get("algorithm", ["RS256"]) == ["RS256"]
    ]
    assert old_providers, "the realm has no rsa-generated RS256 key"

    def set_enabled(provider: dict[str, Any], enabled: bool) -> None:
        provider["config"]["enabled"] = ["true" if enabled else "false"]
        admin_api.put(f"/{REALM}/components/{provider['id']}", provider)

    new_id = admin_api.add_key_provider(
        REALM,
        "fintech-tests-rotated-key",
        "rsa-generated",
        {"priority": "1000", "keySize": "2048", "algorithm": "RS256", "enabled": "true", "active": "true"},
    )
    try:
        for provider in old_providers:
            set_enabled(provider, False)
        after = realm.client_credentials(TESTS_CLIENT)["access_token"]

        assert _header(after)["kid"] == admin_api.kid_of(REALM, new_id) != _header(before)["kid"]
        assert validator.validate(after).client_id == TESTS_CLIENT[0]
        # The retired key is gone from the realm's JWKS: a source that fetches afresh refuses its tokens.
        fresh = TokenValidator(
            JwksKeySource(realm.issuer, cache_seconds=0), issuer=realm.issuer, audience=AUDIENCE, leeway=LEEWAY
        )
        with pytest.raises(InvalidToken, match="unknown key"):
            fresh.validate(before)
    finally:
        for provider in old_providers:
            set_enabled(provider, True)
        admin_api.delete(f"/{REALM}/components/{new_id}")

    # Re-enabled, the old key signs again. The running validator dropped it at its last refetch and refetches
    # for an unknown kid at most once per min_refresh_seconds: it takes the key back within that.
    restored = realm.client_credentials(TESTS_CLIENT)["access_token"]
    assert _header(restored)["kid"] == _header(before)["kid"]
    deadline = time.monotonic() + validator_source.min_refresh_seconds + 5
    while True:
        try:
            assert validator.validate(restored).client_id == TESTS_CLIENT[0]
            break
        except InvalidToken:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


# --- The Django admin's login through Keycloak ---------------------------------------------------


@pytest.fixture
def backoffice(settings: Settings, realm: Realm) -> Settings:
    """The settings config/settings.py derives from OIDC_ISSUER, and the URLs config/urls.py adds."""
    for name, value in backoffice_settings(realm.issuer).items():
        setattr(settings, name, value)
    settings.ROOT_URLCONF = "tests.keycloak_support"
    settings.ALLOWED_HOSTS = ["127.0.0.1", "testserver"]
    return settings


def _backend() -> Any:
    from fintech.auth.admin_oidc import BackOfficeOIDCBackend

    return BackOfficeOIDCBackend()


def _backoffice_login(realm: Realm, user: tuple[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tokens of the back-office client for the user, and the ID token's verified claims."""
    client_id, secret = BACKOFFICE_CLIENT
    tokens = realm.authorization_code(
        client_id, user, redirect_uri=BACKOFFICE_REDIRECT, client_secret=secret, scope="openid email profile"
    )
    payload = _backend().verify_token(tokens["id_token"], nonce=tokens["nonce"])
    return tokens, payload


def _groups(user: User) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


@keycloak
@pytest.mark.django_db
def test_backend_maps_realm_roles_of_real_logins(backoffice: Settings, realm: Realm, admin_api: AdminAPI) -> None:
    backend = _backend()

    tokens, payload = _backoffice_login(realm, STAFF_USER)
    staff = backend.get_or_create_user(tokens["access_token"], tokens["id_token"], payload)

    assert staff.username == f"oidc-{payload['sub']}"
    assert (staff.is_staff, staff.is_superuser, staff.has_usable_password()) == (True, False, False)
    assert _groups(staff) == {"back-office", "kyc"}
    assert (staff.first_name, staff.last_name, staff.email) == ("Bruno", "Lima", "bruno@staff.example.test")

    tokens, payload = _backoffice_login(realm, ADMIN_USER)
    admin = backend.get_or_create_user(tokens["access_token"], tokens["id_token"], payload)

    assert (admin.is_staff, admin.is_superuser) == (True, True)
    assert _groups(admin) == {"back-office", "kyc"}  # admin is a composite of staff and kyc-reviewer

    # A role taken away at the provider is taken away at the next login.
    user = admin_api.user(REALM, STAFF_USER[0])
    staff_role = admin_api.get(f"/{REALM}/roles/staff")
    admin_api.call("DELETE", f"/{REALM}/users/{user['id']}/role-mappings/realm", [staff_role])
    try:
        tokens, payload = _backoffice_login(realm, STAFF_USER)
        again = backend.get_or_create_user(tokens["access_token"], tokens["id_token"], payload)
    finally:
        admin_api.post(f"/{REALM}/users/{user['id']}/role-mappings/realm", [staff_role])

    assert again.pk == staff.pk
    assert (again.is_staff, again.is_superuser) == (False, False)
    assert _groups(again) == {"kyc"}


@keycloak
@pytest.mark.django_db
def test_backend_refuses_users_without_a_back_office_role(backoffice: Settings, realm: Realm) -> None:
    tokens, payload = _backoffice_login(realm, CUSTOMER_USER)

    with pytest.raises(SuspiciousOperation):
        _backend().get_or_create_user(tokens["access_token"], tokens["id_token"], payload)
    assert not User.objects.exists()


@keycloak
@pytest.mark.django_db
def test_backend_checks_who_issued_the_id_token_for_whom(backoffice: Settings, realm: Realm) -> None:
    tokens, _ = _backoffice_login(realm, STAFF_USER)
    backend = _backend()

    with pytest.raises(SuspiciousOperation, match="another client"):
        backend.verify_token(tokens["access_token"], nonce=None)  # an access token: not for this client
    backoffice.OIDC_ISSUER = realm.other("elsewhere").issuer
    with pytest.raises(SuspiciousOperation, match="unexpected issuer"):
        _backend().verify_token(tokens["id_token"], nonce=tokens["nonce"])


def _admin_login_through_keycloak(user: tuple[str, str]) -> tuple[Client, Any]:
    """Drives the admin's login as a browser would: Django redirects to Keycloak, the user signs in there,
    Keycloak redirects back to the callback. Returns the Django client and the callback's response."""
    django = Client(HTTP_HOST="127.0.0.1:8000")
    response = django.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    response = django.get(response["Location"])
    assert response.status_code == 302
    assert response["Location"].startswith("/oidc/authenticate/")
    response = django.get(response["Location"])
    assert response.status_code == 302, response
    authorization_url = response["Location"]
    assert authorization_url.startswith(configured_issuer()), authorization_url
    assert query_params(authorization_url)["redirect_uri"] == BACKOFFICE_REDIRECT
    assert query_params(authorization_url)["code_challenge_method"] == "S256"

    callback = Browser().sign_in(authorization_url, *user)
    assert callback.startswith(BACKOFFICE_REDIRECT), callback
    return django, django.get(callback.removeprefix("http://127.0.0.1:8000"))


@keycloak
@pytest.mark.django_db
def test_admin_login_through_keycloak(backoffice: Settings) -> None:
    django, response = _admin_login_through_keycloak(STAFF_USER)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    page = django.get("/admin/")
    assert page.status_code == 200
    user = User.objects.get(username=page.wsgi_request.user.username)
    assert user.is_staff
    assert not user.is_superuser
    assert _groups(user) == {"back-office", "kyc"}


@keycloak
@pytest.mark.django_db
def test_admin_login_of_a_customer_is_refused(backoffice: Settings) -> None:
    django, response = _admin_login_through_keycloak(CUSTOMER_USER)

    assert response.status_code == 302
    assert response["Location"] == "/oidc/failed/"
    assert django.get("/oidc/failed/").status_code == 403
    assert django.get("/admin/").status_code == 302
    assert not User.objects.exists()


@keycloak
@pytest.mark.django_db
def test_local_password_login_stays_for_the_first_superuser(backoffice: Settings) -> None:
    User.objects.create_superuser("root", "root@bank.test", "a-local-test-password")
    django = Client(HTTP_HOST="127.0.0.1:8000")

    form = django.get("/admin/login/?local=1&next=/admin/")
    assert form.status_code == 200
    response = django.post(
        "/admin/login/?local=1&next=/admin/",
        {"username": "root", "password": "a-local-test-password", "next": "/admin/"},
    )

    assert response.status_code == 302, response.content[:500]
    assert response["Location"] == "/admin/"
    assert django.get("/admin/").status_code == 200
