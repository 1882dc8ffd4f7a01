from __future__ import annotations

from pathlib import Path

import pytest
from pytest_django.fixtures import Settings

from fintech.auth.keys import DevIssuerKeys, dev_issuer_keys

DEV_ISSUER = "http://dev-issuer.test"
AUDIENCE = "fintech-api"
LEEWAY = 30


@pytest.fixture(scope="session")
def dev_key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One key for the session: RSA generation is slow, and the key-file tests use their own tmp_path.
    return tmp_path_factory.mktemp("dev-issuer") / "dev-issuer-key.pem"


@pytest.fixture(autouse=True)
def dev_issuer_settings(settings: Settings, dev_key_path: Path) -> Settings:
    settings.OIDC_ISSUER = ""
    settings.OIDC_JWKS_URL = ""
    settings.OIDC_AUDIENCE = AUDIENCE
    settings.FINTECH_DEV_ISSUER = DEV_ISSUER
    settings.FINTECH_DEV_ISSUER_KEY_PATH = str(dev_key_path)
    settings.FINTECH_TOKEN_LEEWAY_SECONDS = LEEWAY
    return settings


@pytest.fixture
def dev_keys(dev_issuer_settings: Settings) -> DevIssuerKeys:
    return dev_issuer_keys()
