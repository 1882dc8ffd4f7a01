import base64

import pytest

from fintech.crypto.cipher import (
    NONCE_BYTES,
    DecryptionFailed,
    MalformedToken,
    UnknownKeyId,
    decrypt,
    encrypt,
    token_kid,
)
from fintech.crypto.keyring import parse_key_ring

from .conftest import key_entry

EMAIL = "customers.customer.email"
K1 = parse_key_ring([key_entry("k1", 1)])
K2_K1 = parse_key_ring([key_entry("k2", 2), key_entry("k1", 1)])
K2 = parse_key_ring([key_entry("k2", 2)])


def test_round_trip_under_the_active_key():
    token = encrypt("ana@example.com", purpose=EMAIL, ring=K1)
    assert token.startswith("v1.k1.")
    assert "ana" not in token
    assert decrypt(token, purpose=EMAIL, ring=K1) == "ana@example.com"


def test_unicode_and_empty_values_round_trip():
    for value in ("", "José Ñúñez — 😀", "x" * 10_000):
        assert decrypt(encrypt(value, purpose=EMAIL, ring=K1), purpose=EMAIL, ring=K1) == value


def test_equal_plaintexts_have_different_tokens():
    assert encrypt("52998224725", purpose=EMAIL, ring=K1) != encrypt("52998224725", purpose=EMAIL, ring=K1)


def test_the_token_is_version_kid_and_base64url_of_nonce_and_ciphertext():
    version, kid, payload = encrypt("abc", purpose=EMAIL, ring=K1).split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert (version, kid) == ("v1", "k1")
    assert len(raw) == NONCE_BYTES + len("abc") + 16  # nonce, ciphertext, GCM tag


def test_a_value_moved_to_another_column_does_not_decrypt():
    token = encrypt("ana@example.com", purpose=EMAIL, ring=K1)
    with pytest.raises(DecryptionFailed, match=r"customers\.customer\.phone"):
        decrypt(token, purpose="customers.customer.phone", ring=K1)


@pytest.mark.parametrize("position", [0, NONCE_BYTES, -1])
def test_a_tampered_token_does_not_decrypt(position):
    version, kid, payload = encrypt("ana@example.com", purpose=EMAIL, ring=K1).split(".")
    raw = bytearray(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    raw[position] ^= 0x01
    forged = f"{version}.{kid}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"
    with pytest.raises(DecryptionFailed):
        decrypt(forged, purpose=EMAIL, ring=K1)


def test_a_token_relabelled_with_another_kid_does_not_decrypt():
    ring = parse_key_ring([key_entry("k1", 1), key_entry("k9", 1)])  # same key bytes, other kid
    token = encrypt("ana@example.com", purpose=EMAIL, ring=ring)
    with pytest.raises(DecryptionFailed):
        decrypt(token.replace("v1.k1.", "v1.k9.", 1), purpose=EMAIL, ring=ring)


def test_an_unknown_kid_fails_clearly():
    token = encrypt("ana@example.com", purpose=EMAIL, ring=K1)
    with pytest.raises(UnknownKeyId) as error:
        decrypt(token, purpose=EMAIL, ring=K2)
    message = str(error.value)
    assert "'k1'" in message
    assert "k2" in message
    assert "rotate_keys" in message
    assert "ana@example.com" not in message


@pytest.mark.parametrize("value", ["52998224725", "v2.k1.AAAA", "v1..AAAA", "v1.k1.", "v1.k1.AAAA", "v1.k1.!!!!"])
def test_plaintext_or_malformed_tokens_are_refused(value):
    with pytest.raises(MalformedToken):
        decrypt(value, purpose=EMAIL, ring=K1)


def test_rotation_new_writes_use_the_first_key_and_old_tokens_still_decrypt():
    old = encrypt("ana@example.com", purpose=EMAIL, ring=K1)
    new = encrypt("ana@example.com", purpose=EMAIL, ring=K2_K1)
    assert token_kid(old) == "k1"
    assert token_kid(new) == "k2"
    assert decrypt(old, purpose=EMAIL, ring=K2_K1) == decrypt(new, purpose=EMAIL, ring=K2_K1) == "ana@example.com"
    # Once k1 is gone, only what was re-encrypted under k2 still reads.
    assert decrypt(new, purpose=EMAIL, ring=K2) == "ana@example.com"
    with pytest.raises(UnknownKeyId):
        decrypt(old, purpose=EMAIL, ring=K2)


def test_the_configured_ring_is_used_by_default(settings):
    settings.FINTECH_ENCRYPTION_KEYS = [key_entry("k1", 1)]
    token = encrypt("x", purpose=EMAIL)
    assert token_kid(token) == "k1"
    assert decrypt(token, purpose=EMAIL, ring=K1) == "x"
