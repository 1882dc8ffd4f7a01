import base64
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from fintech.crypto.keyring import (
    DEV_KID,
    KeyRingError,
    blind_index_secret,
    configuration_problems,
    generate_key,
    key_ring,
    parse_blind_index_key,
    parse_key_ring,
)

from .conftest import key_entry


def test_the_first_key_is_active_and_every_key_is_kept_by_kid():
    ring = parse_key_ring([key_entry("k2", 2), key_entry("k1", 1)])
    assert ring.active_kid == "k2"
    assert ring.kids == ["k2", "k1"]
    assert ring.keys["k1"] == bytes([1]) * 32


def test_a_comma_separated_string_and_url_safe_unpadded_base64_are_accepted():
    key = bytes(range(32))
    urlsafe = base64.urlsafe_b64encode(key).rstrip(b"=").decode()
    ring = parse_key_ring(f" k1:{urlsafe} , {key_entry('old', 7)}")
    assert ring.active_kid == "k1"
    assert ring.keys["k1"] == key


@pytest.mark.parametrize(
    ("entries", "complaint"),
    [
        ([], "holds no key"),
        (["k1"], "must be kid:base64key"),
        (["bad.kid:" + generate_key()], "must be kid:base64key"),
        (["k1:not base64!"], "not valid base64"),
        (["k1:" + base64.b64encode(b"short").decode()], "exactly 32 bytes"),
        ([key_entry("k1", 1), key_entry("k1", 2)], "twice"),
    ],
)
def test_malformed_key_rings_are_refused_without_echoing_keys(entries, complaint):
    with pytest.raises(KeyRingError, match=complaint) as error:
        parse_key_ring(entries)
    for entry in entries:
        secret = entry.partition(":")[2]
        if len(secret) > 8:
            assert secret not in str(error.value)


def test_the_key_ring_repr_shows_kids_not_keys():
    ring = parse_key_ring([key_entry("k1", 1)])
    assert "k1" in repr(ring)
    assert base64.b64encode(bytes([1]) * 32).decode() not in repr(ring)


def test_the_blind_index_secret_needs_32_bytes():
    assert parse_blind_index_key(generate_key())
    with pytest.raises(KeyRingError, match="at least 32 bytes"):
        parse_blind_index_key(base64.b64encode(b"x" * 16).decode())


def test_production_problems_name_the_missing_settings():
    problems = " ".join(configuration_problems([], ""))
    assert "FINTECH_ENCRYPTION_KEYS" in problems
    assert "FINTECH_BLIND_INDEX_KEY" in problems
    assert configuration_problems([key_entry("k1", 1)], generate_key()) == []
    reused = configuration_problems([key_entry("k1", 1)], key_entry("k1", 1).partition(":")[2])
    assert reused == ["FINTECH_BLIND_INDEX_KEY must not be one of the encryption keys"]
    assert "entry 1 must be kid:base64key" in " ".join(configuration_problems(["k1"], generate_key()))


def test_settings_keys_win_and_changes_take_effect(settings):
    settings.FINTECH_ENCRYPTION_KEYS = [key_entry("k1", 1)]
    assert key_ring().active_kid == "k1"
    settings.FINTECH_ENCRYPTION_KEYS = "k2:" + generate_key() + "," + key_entry("k1", 1)
    assert key_ring().kids == ["k2", "k1"]


def test_without_keys_a_dev_key_is_generated_once_private_and_reused(settings, tmp_path):
    path = tmp_path / "nested" / "dev-encryption-key"
    settings.FINTECH_ENCRYPTION_KEYS = []
    settings.FINTECH_DEV_ENCRYPTION_KEY_PATH = str(path)
    with ThreadPoolExecutor(8) as pool:
        rings = list(pool.map(lambda _: key_ring(), range(8)))
    assert {ring.active_kid for ring in rings} == {DEV_KID}
    assert len({ring.keys[DEV_KID] for ring in rings}) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_without_a_blind_index_key_a_dev_secret_is_generated(settings, tmp_path):
    settings.FINTECH_BLIND_INDEX_KEY = ""
    settings.FINTECH_DEV_BLIND_INDEX_KEY_PATH = str(tmp_path / "dev-blind-index-key")
    secret = blind_index_secret()
    assert len(secret) == 32
    assert blind_index_secret() == secret
    assert stat.S_IMODE((tmp_path / "dev-blind-index-key").stat().st_mode) == 0o600


def test_production_never_falls_back_to_dev_keys(settings, tmp_path):
    settings.PRODUCTION = True
    settings.FINTECH_ENCRYPTION_KEYS = []
    settings.FINTECH_BLIND_INDEX_KEY = ""
    settings.FINTECH_DEV_ENCRYPTION_KEY_PATH = str(tmp_path / "k")
    settings.FINTECH_DEV_BLIND_INDEX_KEY_PATH = str(tmp_path / "b")
    with pytest.raises(KeyRingError, match="FINTECH_ENCRYPTION_KEYS"):
        key_ring()
    with pytest.raises(KeyRingError, match="FINTECH_BLIND_INDEX_KEY"):
        blind_index_secret()
    assert not list(tmp_path.iterdir())
