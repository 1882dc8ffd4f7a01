"""Money: integer minor units plus an ISO 4217 currency, never a float; the one place that says
what an amount may be (docs/architecture.md, "One owner for every rule", says who checks what)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from fintech.errors import Unprocessable, ValidationFailed

# Minor-unit exponent per currency; the bank knows only the currencies it lists here, and moves
# those of them that FINTECH_SUPPORTED_CURRENCIES names.
CURRENCY_EXPONENTS: dict[str, int] = {"BRL": 2, "USD": 2, "EUR": 2, "GBP": 2, "JPY": 0}


class UnsupportedCurrency(ValidationFailed):
    code = "unsupported_currency"
    title = "The bank does not move this currency"


class CurrencyMismatch(Unprocessable):
    code = "currency_mismatch"
    title = "The currency does not match the account"


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of one currency, as the back office reads it (`10.50 BRL`)."""

    minor_units: int
    currency: str

    def __str__(self) -> str:
        return f"{in_major_units(self.minor_units, self.currency):f} {self.currency}"


def is_minor_units(amount: object) -> bool:
    """A whole number of minor units above zero (True and False are not numbers here)."""
    return isinstance(amount, int) and not isinstance(amount, bool) and amount > 0


def is_known_currency(currency: object) -> bool:
    return currency in CURRENCY_EXPONENTS


def is_supported_currency(currency: object) -> bool:
    """A currency the bank keeps accounts in and moves (FINTECH_SUPPORTED_CURRENCIES)."""
    return is_known_currency(currency) and currency in settings.FINTECH_SUPPORTED_CURRENCIES


def in_major_units(minor_units: int, currency: str) -> Decimal:
    """1050 BRL is Decimal("10.50"): for people to read (notices, charts), never to compute with.
    A currency the bank does not know is read with two decimals."""
    return Decimal(minor_units).scaleb(-CURRENCY_EXPONENTS.get(currency, 2))


def validate_amount(amount: object, currency: str) -> int:
    """The amount of a request to move money (a transfer, a deposit, a payment), as the contract
    allows it: a whole number of minor units, above zero, at most FINTECH_MAX_AMOUNT, in a
    currency the bank moves. Raises ValidationFailed (400) with the contract's codes; nothing has
    been written when it does."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationFailed("amount is a whole number of minor units.", errors={"amount": ["Must be an integer."]})
    if not is_minor_units(amount):
        raise ValidationFailed(
            "amount must be greater than zero.", code="invalid_amount", errors={"amount": ["Must be > 0."]}
        )
    if amount > settings.FINTECH_MAX_AMOUNT:
        raise ValidationFailed(
            f"amount may not exceed {settings.FINTECH_MAX_AMOUNT}.",
            code="amount_too_large",
            errors={"amount": [f"Must be <= {settings.FINTECH_MAX_AMOUNT}."]},
        )
    if not is_supported_currency(currency):
        raise UnsupportedCurrency(f"The bank does not move {currency}.", errors={"currency": ["Unsupported."]})
    return amount
