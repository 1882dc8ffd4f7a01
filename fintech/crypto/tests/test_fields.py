from datetime import date
from typing import Any

import pytest
from django.core.exceptions import FieldError, ValidationError
from django.db.models.expressions import Col
from django.db.models.lookups import IsNull

from fintech.crypto.cipher import decrypt, token_kid
from fintech.crypto.fields import EncryptedDateField, EncryptedTextField

from .conftest import key_entry


@pytest.fixture(autouse=True)
def one_key(settings):
    settings.FINTECH_ENCRYPTION_KEYS = [key_entry("k1", 1)]


def test_text_is_encrypted_for_the_database_and_decrypted_back():
    field: EncryptedTextField[Any, Any] = EncryptedTextField(purpose="bank.thing.note")
    token = field.get_prep_value("hello")
    assert token_kid(token) == "k1"
    assert decrypt(token, purpose="bank.thing.note") == "hello"
    assert field.from_db_value(token, None, None) == "hello"
    assert field.get_prep_value(None) is None
    assert field.from_db_value(None, None, None) is None


def test_dates_round_trip_as_dates():
    field: EncryptedDateField[Any, Any] = EncryptedDateField(purpose="bank.thing.born")
    token = field.get_prep_value(date(1990, 4, 1))
    assert decrypt(token, purpose="bank.thing.born") == "1990-04-01"
    assert field.from_db_value(token, None, None) == date(1990, 4, 1)
    assert field.to_python("1990-04-01") == date(1990, 4, 1)
    with pytest.raises(ValidationError):
        field.to_python("yesterday")


def test_only_isnull_lookups_are_allowed():
    field: EncryptedTextField[Any, Any] = EncryptedTextField(purpose="bank.thing.note")
    assert field.get_lookup("isnull") is IsNull
    for name in ("exact", "iexact", "contains", "startswith", "in", "gt"):
        with pytest.raises(FieldError, match=r"bank\.thing\.note is encrypted: only `isnull`"):
            field.get_lookup(name)(Col("bank_thing", field), "x")
    assert field.get_transform("lower") is None


def test_the_purpose_survives_deconstruction_only_when_set():
    assert EncryptedTextField(purpose="old.name.field").deconstruct()[3]["purpose"] == "old.name.field"
    assert "purpose" not in EncryptedTextField().deconstruct()[3]
    assert EncryptedTextField().deconstruct()[1] == "fintech.crypto.fields.EncryptedTextField"
