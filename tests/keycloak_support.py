"""Talking to the real Keycloak of tests/test_keycloak.py: its endpoints, logins driven over plain HTTP,
and its admin REST API.

Which Keycloak: FINTECH_TEST_KEYCLOAK_ISSUER, the issuer URL of the `fintech` realm
(`make test` passes the one `deploy/local/keycloak.sh` runs). It is deliberately not OIDC_ISSUER:
the suite as a whole runs with the embedded dev issuer, and only the Keycloak tests point a
validator (or a settings override) at the real provider.

The realm (deploy/keycloak/realm.json) holds fixed, non-secret test credentials: they exist only in
that local development realm.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.cookiejar
import json
import os
import re
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

ISSUER_ENV = "FINTECH_TEST_KEYCLOAK_ISSUER"
TIMEOUT_SECONDS = 15

AUDIENCE = "fintech-api"
CUSTOMER_SCOPES = frozenset({"customers:read", "accounts:read", "transfers:read", "transfers:write", "payments:write"})
STAFF_SCOPES = frozenset(
    {
        "customers:write",
        "customers:erase",
        "kyc:review",
        "accounts:write",
        "deposits:write",
        "fraud:review",
        "ledger:read",
        "analytics:read",
    }
)
ALL_SCOPES = CUSTOMER_SCOPES | STAFF_SCOPES

# Clients and users of deploy/keycloak/realm.json (fixed, non-secret local test credentials).
TESTS_CLIENT = ("fintech-tests", "fintech-tests-local-secret")
PAYMENT_NETWORK_CLIENT = ("payment-network", "payment-network-local-secret")
BACKOFFICE_CLIENT = ("fintech-backoffice", "fintech-backoffice-local-secret")
WEB_CLIENT = "fintech-web"
CUSTOMER_USER = ("customer-ana", "customer-ana-test-password")
CUSTOMER_ID = "6f1c2a4e-3b5d-4c7e-9f80-1a2b3c4d5e6f"  # customer-ana's customer_id in the realm file
STAFF_USER = ("staff-bruno", "staff-bruno-test-password")  # realm roles staff, kyc-reviewer
ADMIN_USER = ("admin-carla", "admin-carla-test-password")  # realm role admin
# The master realm's bootstrap administrator of deploy/local/keycloak.sh.
MASTER_ADMIN = (
    os.environ.get("FINTECH_TEST_KEYCLOAK_ADMIN_USER", "admin"),
    os.environ.get("FINTECH_TEST_KEYCLOAK_ADMIN_PASSWORD", "admin"),
)


def configured_issuer() -> str:
    return os.environ.get(ISSUER_ENV, "").rstrip("/")


def keycloak_answers() -> bool:
    """The configured realm publishes its discovery document (and names itself as the issuer)."""
    issuer = configured_issuer()
    if not issuer:
        return False
    try:
        status, _, body = Browser().get(f"{issuer}/.well-known/openid-configuration", timeout=5)
        return status == 200 and json.loads(body).get("issuer") == issuer
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class Realm:
    issuer: str

    @property
    def name(self) -> str:
        return self.issuer.rsplit("/realms/", 1)[1]

    @property
    def base_url(self) -> str:
        return self.issuer.rsplit("/realms/", 1)[0]

    def endpoint(self, name: str) -> str:
        return f"{self.issuer}/protocol/openid-connect/{name}"

    def other(self, name: str) -> Realm:
        return Realm(f"{self.base_url}/realms/{name}")

    def client_credentials(self, client: tuple[str, str], **extra: str) -> dict[str, Any]:
        client_id, secret = client
        return token_request(
            self.endpoint("token"),
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret, **extra},
        )

    def authorization_code(
        self,
        client_id: str,
        user: tuple[str, str],
        *,
        redirect_uri: str,
        client_secret: str | None = None,
        scope: str = "openid",
    ) -> dict[str, Any]:
        """Signs the user in through the login form, as a browser would, and redeems the code (with PKCE)."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        query = {
            "client_id": client_id,
            "response_type": "code",
            "scope": scope,
            "redirect_uri": redirect_uri,
            "state": state,
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        callback = Browser().sign_in(f"{self.endpoint('auth')}?{urlencode(query)}", *user)
        params = query_params(callback)
        assert params.get("state") == state, callback
        form = {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "client_id": client_id,
            "code_verifier": verifier,
        }
        if client_secret is not None:
            form["client_secret"] = client_secret
        tokens = token_request(self.endpoint("token"), form)
        tokens["nonce"] = query["nonce"]  # what the ID token must echo
        return tokens

    def userinfo(self, access_token: str) -> dict[str, Any]:
        status, _, body = Browser().get(self.endpoint("userinfo"), headers={"Authorization": f"Bearer {access_token}"})
        assert status == 200, body
        result: dict[str, Any] = json.loads(body)
        return result


def query_params(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlparse(url).query).items()}


def token_request(url: str, form: Mapping[str, str]) -> dict[str, Any]:
    status, _, body = Browser().post(url, form)
    assert status == 200, f"token endpoint answered {status}: {body}"
    result: dict[str, Any] = json.loads(body)
    return result


def unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    result: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return result


class _LoopbackIsSecure(http.cookiejar.DefaultCookiePolicy):
    """Keycloak marks its login cookies Secure; browsers send those to http://127.0.0.1 and localhost
    (potentially trustworthy origins), Python's cookie jar only over https unless told so."""

    def return_ok_secure(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        host = urlparse(request.get_full_url()).hostname
        return host in {"127.0.0.1", "localhost", "::1"} or super().return_ok_secure(cookie, request)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    """Plain HTTP with a cookie jar that never follows redirects (callers read the Location)."""

    def __init__(self) -> None:
        self.cookies = http.cookiejar.CookieJar(policy=_LoopbackIsSecure())
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirects())

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ) -> tuple[int, Message[str, str], str]:
        if urlparse(url).scheme not in {"http", "https"}:
            raise ValueError(f"not an http(s) URL: {url}")
        req = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method)  # noqa: S310
        try:
            with self._opener.open(req, timeout=timeout) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers, exc.read().decode()

    def get(self, url: str, **kwargs: Any) -> tuple[int, Message[str, str], str]:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, form: Mapping[str, str], **kwargs: Any) -> tuple[int, Message[str, str], str]:
        headers = {"Content-Type": "application/x-www-form-urlencoded", **kwargs.pop("headers", {})}
        return self.request("POST", url, data=urlencode(form).encode(), headers=headers, **kwargs)

    def sign_in(self, authorization_url: str, username: str, password: str) -> str:
        """Opens the provider's login page, submits the form, and returns where it redirects (the client's
        redirect URI with `code` and `state`), without following it."""
        status, _, page = self.get(authorization_url)
        assert status == 200, f"login page answered {status}: {page[:500]}"
        match = re.search(r'<form[^>]*\baction="([^"]+)"', page)
        assert match, f"no login form in: {page[:500]}"
        status, headers, page = self.post(html.unescape(match.group(1)), {"username": username, "password": password})
        location = headers.get("Location")
        assert status == 302, f"login answered {status}: {_page_error(page)}"
        assert location
        return location


def _page_error(page: str) -> str:
    errors = re.findall(r'(?s)id="input-error[^"]*"[^>]*>(.*?)<', page)
    return " ".join(error.strip() for error in errors) or page[:300]


class AdminAPI:
    """Keycloak's admin REST API as the master realm's bootstrap administrator."""

    def __init__(self, realm: Realm) -> None:
        self.base = f"{realm.base_url}/admin/realms"
        self._token_url = f"{realm.base_url}/realms/master/protocol/openid-connect/token"
        self._token = ""
        self._token_expires = 0.0

    def _authorization(self) -> str:
        # The master realm's access tokens live 60 s: fetch another well before that.
        if time.monotonic() >= self._token_expires:
            user, password = MASTER_ADMIN
            token = token_request(
                self._token_url,
                {"grant_type": "password", "client_id": "admin-cli", "username": user, "password": password},
            )
            self._token = token["access_token"]
            self._token_expires = time.monotonic() + min(30, int(token.get("expires_in", 60)) / 2)
        return f"Bearer {self._token}"

    def call(self, method: str, path: str, body: object = None, *, expect: tuple[int, ...] = (200, 201, 204)) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": self._authorization(), "Content-Type": "application/json"}
        status, _, text = Browser().request(method, f"{self.base}{path}", data=data, headers=headers)
        assert status in expect, f"{method} {path} answered {status}: {text[:500]}"
        return json.loads(text) if text else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: object, **kwargs: Any) -> Any:
        return self.call("POST", path, body, **kwargs)

    def put(self, path: str, body: object, **kwargs: Any) -> Any:
        return self.call("PUT", path, body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.call("DELETE", path, **kwargs)

    def user(self, realm: str, username: str) -> dict[str, Any]:
        (user,) = self.get(f"/{realm}/users?{urlencode({'username': username, 'exact': 'true'})}")
        result: dict[str, Any] = user
        return result

    def key_providers(self, realm: str) -> list[dict[str, Any]]:
        realm_id = self.get(f"/{realm}")["id"]
        query = urlencode({"parent": realm_id, "type": "org.keycloak.keys.KeyProvider"})
        result: list[dict[str, Any]] = self.get(f"/{realm}/components?{query}")
        return result

    def add_key_provider(self, realm: str, name: str, provider_id: str, config: Mapping[str, str]) -> str:
        """Adds a key provider component; returns its id."""
        realm_id = self.get(f"/{realm}")["id"]
        body = {
            "name": name,
            "providerId": provider_id,
            "providerType": "org.keycloak.keys.KeyProvider",
            "parentId": realm_id,
            "config": {key: [value] for key, value in config.items()},
        }
        self.post(f"/{realm}/components", body)
        (component,) = [c for c in self.key_providers(realm) if c["name"] == name]
        component_id: str = component["id"]
        return component_id

    def kid_of(self, realm: str, component_id: str) -> str:
        """The kid of the RS256 key a key provider holds."""
        keys = self.get(f"/{realm}/keys")["keys"]
        (kid,) = [k["kid"] for k in keys if k.get("providerId") == component_id and k.get("algorithm") == "RS256"]
        result: str = kid
        return result


def backoffice_urlpatterns() -> list[Any]:
    """The project's URLs with the back-office login in front, as config/urls.py builds them when
    OIDC_ISSUER is set (the test process imported config.urls without it)."""
    from config.urls import urlpatterns as project_urlpatterns
    from fintech.auth.admin_oidc import urlpatterns as backoffice_login_urlpatterns

    return [*backoffice_login_urlpatterns, *project_urlpatterns]


def __getattr__(name: str) -> Any:
    # ROOT_URLCONF = "tests.keycloak_support" in the admin-login tests: built on first use, so that
    # importing this module (conftest does, to check Keycloak answers) imports no URL configuration.
    if name == "urlpatterns":
        return backoffice_urlpatterns()
    raise AttributeError(name)


def backoffice_settings(issuer: str) -> dict[str, Any]:
    """The settings config/settings.py derives from OIDC_ISSUER for the back-office login."""
    endpoints = f"{issuer}/protocol/openid-connect"
    client_id, secret = BACKOFFICE_CLIENT
    return {
        "OIDC_ISSUER": issuer,
        "OIDC_JWKS_URL": "",
        "OIDC_AUDIENCE": AUDIENCE,
        "AUTHENTICATION_BACKENDS": [
            "fintech.auth.admin_oidc.BackOfficeOIDCBackend",
            "django.contrib.auth.backends.ModelBackend",
        ],
        "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{endpoints}/auth",
        "OIDC_OP_TOKEN_ENDPOINT": f"{endpoints}/token",
        "OIDC_OP_USER_ENDPOINT": f"{endpoints}/userinfo",
        "OIDC_OP_JWKS_ENDPOINT": f"{endpoints}/certs",
        "OIDC_OP_LOGOUT_ENDPOINT": f"{endpoints}/logout",
        "OIDC_OP_LOGOUT_URL_METHOD": "fintech.auth.admin_oidc.provider_logout_url",
        "OIDC_RP_CLIENT_ID": client_id,
        "OIDC_RP_CLIENT_SECRET": secret,
        "OIDC_RP_SIGN_ALGO": "RS256",
        "OIDC_RP_SCOPES": "openid email profile",
        "OIDC_USE_PKCE": True,
        "OIDC_STORE_ID_TOKEN": True,
        "OIDC_TIMEOUT": 10,
        "LOGIN_REDIRECT_URL": "/admin/",
        "LOGIN_REDIRECT_URL_FAILURE": "/oidc/failed/",
        "LOGOUT_REDIRECT_URL": "/admin/",
    }
