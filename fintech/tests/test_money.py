"""The amount rules, written once in fintech/money.py."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fintech.errors import DomainError
from fintech.money import Money, in_major_units, is_known_currency, is_minor_units, validate_amount


@pytest.mark.parametrize("amount", [1, 10**12])
def test_whole_positive_numbers_are_minor_units(amount):
    assert is_minor_units(amount)


@pytest.mark.parametrize("amount", [0, -1, 1.0, "100", True, None])
def test_anything_else_is_not(amount):
    assert not is_minor_units(amount)


def test_the_bank_knows_the_currencies_it_lists():
    assert is_known_currency("JPY")
    assert not is_known_currency("XYZ")


def test_an_amount_the_bank_moves_passes(settings):
    settings.FINTECH_MAX_AMOUNT = 1_000
    assert validate_amount(1_000, "BRL") == 1_000


@pytest.mark.parametrize(
    ("amount", "currency", "code", "field"),
    [
        ("10", "BRL", "validation_error", "amount"),
        (False, "BRL", "validation_error", "amount"),
        (0, "BRL", "invalid_amount", "amount"),
        (1_001, "BRL", "amount_too_large", "amount"),
        (10, "GBP", "unsupported_currency", "currency"),  # known, but not one the bank moves
        (10, "XYZ", "unsupported_currency", "currency"),
    ],
)
def test_an_amount_the_bank_does_not_move_is_refused_with_the_contract_s_code(settings, amount, currency, code, field):
    settings.FINTECH_MAX_AMOUNT = 1_000
    settings.FINTECH_SUPPORTED_CURRENCIES = ["BRL", "USD"]
    with pytest.raises(DomainError) as refusal:
        validate_amount(amount, currency)
    assert refusal.value.code == code
    assert field in refusal.value.errors  # type: ignore[attr-defined]
    assert refusal.value.status == 400


def test_minor_units_read_in_major_units_for_people():
    assert in_major_units(1050, "BRL") == Decimal("10.50")
    assert in_major_units(1050, "JPY") == Decimal("1050")
    assert in_major_units(-5, "USD") == Decimal("-0.05")


def test_money_reads_as_the_back_office_writes_it():
    assert [str(Money(1050, "BRL")), str(Money(-5, "USD")), str(Money(1050, "JPY"))] == [
        "10.50 BRL",
        "-0.05 USD",
        "1050 JPY",
    ]
    assert str(Money(10**12, "BRL")) == "10000000000.00 BRL"
