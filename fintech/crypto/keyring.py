"""Where the encryption keys (`FINTECH_ENCRYPTION_KEYS`, `kid:key,...`, the first one active)
and the blind-index secret (`FINTECH_BLIND_INDEX_KEY`) come from: the environment, or outside
production files under VAR_DIR created once. Their formats and the rotation:
docs/architecture.md, "Personal data"."""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from fintech.files import create_once

KEY_BYTES = 32
MIN_BLIND_INDEX_KEY_BYTES = 32
DEV_KID = "dev"
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyRingError(ImproperlyConfigured):
    """The configured keys are malformed. The message never contains key material."""


@dataclass(frozen=True)
class KeyRing:
    """The encryption keys by kid; `active_kid` encrypts, every kid decrypts."""

    active_kid: str
    keys: Mapping[str, bytes]

    def __post_init__(self) -> None:
        if self.active_kid not in self.keys:
            raise KeyRingError(f"The active kid {self.active_kid!r} has no key")

    def __repr__(self) -> str:  # keys stay out of logs and tracebacks
        return f"KeyRing(active_kid={self.active_kid!r}, kids={list(self.keys)!r})"

    @property
    def kids(self) -> list[str]:
        return list(self.keys)


def decode_key(encoded: str, *, min_bytes: int, exact: bool) -> bytes:
    """Bytes of a base64 (standard or URL-safe, padding optional) secret."""
    text = encoded.strip()
    padded = text + "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError("not valid base64") from None
    if exact and len(raw) != min_bytes:
        raise KeyRingError(f"must decode to exactly {min_bytes} bytes, not {len(raw)}")
    if len(raw) < min_bytes:
        raise KeyRingError(f"must decode to at least {min_bytes} bytes, not {len(raw)}")
    return raw


def parse_key_ring(entries: Iterable[str] | str, *, setting: str = "FINTECH_ENCRYPTION_KEYS") -> KeyRing:
    """The key ring of `kid:base64key` entries (a list, or one comma-separated string); `setting`
    names where they came from in the messages."""
    items = [e.strip() for e in (entries.split(",") if isinstance(entries, str) else entries) if e.strip()]
    if not items:
        raise KeyRingError(f"{setting} holds no key")
    keys: dict[str, bytes] = {}
    for position, item in enumerate(items, start=1):
        kid, separator, encoded = item.partition(":")
        kid = kid.strip()
        if not separator or not _KID.match(kid):
            raise KeyRingError(
                f"{setting} entry {position} must be kid:base64key with a kid of 1 to 32 letters, digits, '-' or '_'"
            )
        if kid in keys:
            raise KeyRingError(f"{setting} names kid {kid!r} twice")
        try:
            keys[kid] = decode_key(encoded, min_bytes=KEY_BYTES, exact=True)
        except KeyRingError as error:
            raise KeyRingError(f"{setting} key {kid!r}: {error}") from None
    return KeyRing(active_kid=next(iter(keys)), keys=MappingProxyType(keys))


def parse_blind_index_key(encoded: str) -> bytes:
    if not encoded.strip():
        raise KeyRingError("FINTECH_BLIND_INDEX_KEY is empty")
    try:
        return decode_key(encoded, min_bytes=MIN_BLIND_INDEX_KEY_BYTES, exact=False)
    except KeyRingError as error:
        raise KeyRingError(f"FINTECH_BLIND_INDEX_KEY {error}") from None


def configuration_problems(encryption_keys: Iterable[str] | str, blind_index_key: str) -> list[str]:
    """What production's start-up check reports about these two settings (nothing when sound)."""
    problems: list[str] = []
    ring: KeyRing | None = None
    if not [e for e in (encryption_keys.split(",") if isinstance(encryption_keys, str) else encryption_keys) if e]:
        problems.append("FINTECH_ENCRYPTION_KEYS must hold at least one key (kid:base64 of 32 bytes)")
    else:
        try:
            ring = parse_key_ring(encryption_keys)
        except KeyRingError as error:
            problems.append(str(error))
    if not blind_index_key:
        problems.append("FINTECH_BLIND_INDEX_KEY must hold a secret of its own (base64, at least 32 bytes)")
    else:
        try:
            secret = parse_blind_index_key(blind_index_key)
        except KeyRingError as error:
            problems.append(str(error))
        else:
            if ring is not None and secret in ring.keys.values():
                problems.append("FINTECH_BLIND_INDEX_KEY must not be one of the encryption keys")
    return problems


def shared_key_ring_problems(
    entries: Iterable[str] | str, *, setting: str, private_keys: Iterable[str] | str
) -> list[str]:
    """What production's start-up check reports about a key ring shared with an outside party
    (the payment network): it must be set, well-formed, and hold none of the bank's own keys."""
    if not [e for e in (entries.split(",") if isinstance(entries, str) else entries) if e.strip()]:
        return [f"{setting} must hold the keys shared with the other party (kid:base64 of 32 bytes)"]
    try:
        ring = parse_key_ring(entries, setting=setting)
    except KeyRingError as error:
        return [str(error)]
    try:
        private = parse_key_ring(private_keys)
    except KeyRingError:
        return []  # reported by configuration_problems
    if set(ring.keys.values()) & set(private.keys.values()):
        return [f"{setting} must not hold one of the FINTECH_ENCRYPTION_KEYS"]
    return []


def generate_key() -> str:
    """A fresh 32-byte key in base64, for a `kid:key` entry or the blind-index secret."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


# --- The configured keys --------------------------------------------------------------------


def key_ring() -> KeyRing:
    """The key ring of the current settings (cached per value, so override_settings works)."""
    return configured_key_ring(
        settings.FINTECH_ENCRYPTION_KEYS,
        setting="FINTECH_ENCRYPTION_KEYS",
        dev_path=str(settings.FINTECH_DEV_ENCRYPTION_KEY_PATH),
    )


def configured_key_ring(configured: Iterable[str] | str, *, setting: str, dev_path: str) -> KeyRing:
    """The key ring a `kid:key,...` setting holds or, when it is empty outside production, the
    `dev` key of the file at `dev_path`, created once. Production refuses an empty setting."""
    entries = tuple(configured.split(",") if isinstance(configured, str) else configured)
    if any(e.strip() for e in entries):
        return _parsed_key_ring(entries, setting)
    if settings.PRODUCTION:
        raise KeyRingError(f"{setting} must be set in production")
    return _dev_key_ring(dev_path)


def blind_index_secret() -> bytes:
    """The blind-index secret of the current settings."""
    configured = str(settings.FINTECH_BLIND_INDEX_KEY or "")
    if configured.strip():
        return _parsed_blind_index_key(configured)
    if settings.PRODUCTION:
        raise KeyRingError("FINTECH_BLIND_INDEX_KEY must be set in production")
    return _dev_blind_index_key(str(settings.FINTECH_DEV_BLIND_INDEX_KEY_PATH))


def reset_caches() -> None:
    """Forget parsed keys (tests that swap keys; the caches are keyed on values anyway)."""
    for cached in (_parsed_key_ring, _dev_key_ring, _parsed_blind_index_key, _dev_blind_index_key):
        cached.cache_clear()


@lru_cache(maxsize=8)
def _parsed_key_ring(entries: tuple[str, ...], setting: str) -> KeyRing:
    return parse_key_ring(entries, setting=setting)


@lru_cache(maxsize=8)
def _parsed_blind_index_key(encoded: str) -> bytes:
    return parse_blind_index_key(encoded)


@lru_cache(maxsize=8)
def _dev_key_ring(path: str) -> KeyRing:
    line = _load_or_create_secret(Path(path), lambda: f"{DEV_KID}:{generate_key()}\n".encode("ascii"))
    return parse_key_ring(line.decode("ascii").strip())


@lru_cache(maxsize=8)
def _dev_blind_index_key(path: str) -> bytes:
    line = _load_or_create_secret(Path(path), lambda: f"{generate_key()}\n".encode("ascii"))
    return parse_blind_index_key(line.decode("ascii").strip())


def _load_or_create_secret(path: Path, generate: Callable[[], bytes]) -> bytes:
    """The file's content, writing `generate()` there first if it does not exist yet."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes()
    create_once(path, generate())
    return path.read_bytes()  # ours, or the content of a process that created it first
