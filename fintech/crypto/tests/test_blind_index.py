from fintech.crypto.blind_index import INDEX_LENGTH, blind_index
from fintech.crypto.keyring import generate_key

from .conftest import key_entry

DOCUMENT = "customers.customer.document"


def test_the_index_is_a_stable_keyed_hash_of_the_value():
    secret = b"s" * 32
    index = blind_index("52998224725", purpose=DOCUMENT, secret=secret)
    assert len(index) == INDEX_LENGTH
    assert index == blind_index("52998224725", purpose=DOCUMENT, secret=secret)
    assert index != blind_index("11144477735", purpose=DOCUMENT, secret=secret)
    assert "52998224725" not in index


def test_another_secret_or_purpose_gives_another_index():
    index = blind_index("52998224725", purpose=DOCUMENT, secret=b"s" * 32)
    assert index != blind_index("52998224725", purpose=DOCUMENT, secret=b"t" * 32)
    assert index != blind_index("52998224725", purpose="customers.customer.phone", secret=b"s" * 32)


def test_rotating_encryption_keys_leaves_the_index_unchanged(settings):
    settings.FINTECH_BLIND_INDEX_KEY = generate_key()
    settings.FINTECH_ENCRYPTION_KEYS = [key_entry("k1", 1)]
    before = blind_index("52998224725", purpose=DOCUMENT)
    settings.FINTECH_ENCRYPTION_KEYS = [key_entry("k2", 2), key_entry("k1", 1)]
    assert blind_index("52998224725", purpose=DOCUMENT) == before
    settings.FINTECH_ENCRYPTION_KEYS = [key_entry("k2", 2)]
    assert blind_index("52998224725", purpose=DOCUMENT) == before
