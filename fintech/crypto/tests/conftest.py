from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from fintech.crypto import keyring


def key_entry(kid: str, fill: int) -> str:
    """A `kid:key` entry with a recognisable key (tests only)."""
    return f"{kid}:{base64.b64encode(bytes([fill]) * 32).decode()}"


@pytest.fixture(autouse=True)
def _fresh_key_caches() -> Iterator[None]:
    keyring.reset_caches()
    yield
    keyring.reset_caches()
