"""Money as integer minor units plus an ISO 4217 currency. Never a float."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from fintech.errors import ValidationFailed

# Minor-unit exponent per currency; the bank only moves the currencies it lists here.
CURRENCY_EXPONENTS: dict[str, int] = {"BRL": 2, "USD": 2, "EUR": 2, "GBP": 2, "JPY": 0}


class CurrencyMismatch(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Money:
    minor_units: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor_units, bool) or not isinstance(self.minor_units, int):
            raise TypeError("Money.minor_units must be an int")
        if self.currency not in CURRENCY_EXPONENTS:
            raise ValueError(f"Unknown currency {self.currency!r}")

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"{self.currency} and {other.currency} cannot be combined")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor_units + other.minor_units, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.minor_units - other.minor_units, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor_units, self.currency)

    def __str__(self) -> str:
        exponent = CURRENCY_EXPONENTS[self.currency]
        sign = "-" if self.minor_units < 0 else ""
        units, cents = divmod(abs(self.minor_units), 10**exponent) if exponent else (abs(self.minor_units), 0)
        fraction = f".{cents:0{exponent}d}" if exponent else ""
        return f"{sign}{units}{fraction} {self.currency}"


def validate_amount(amount: object, currency: str) -> int:
    """The contract's rules for an amount the bank is asked to move: a whole number of minor
    units, > 0, <= FINTECH_MAX_AMOUNT, in a currency the bank moves. Every money-moving command
    (transfers, deposits, payments) checks its input here."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationFailed("amount is a whole number of minor units.", errors={"amount": ["Must be an integer."]})
    if amount <= 0:
        raise ValidationFailed(
            "amount must be greater than zero.", code="invalid_amount", errors={"amount": ["Must be > 0."]}
        )
    if amount > settings.FINTECH_MAX_AMOUNT:
        raise ValidationFailed(
            f"amount may not exceed {settings.FINTECH_MAX_AMOUNT}.",
            code="amount_too_large",
            errors={"amount": [f"Must be <= {settings.FINTECH_MAX_AMOUNT}."]},
        )
    if currency not in CURRENCY_EXPONENTS or currency not in settings.FINTECH_SUPPORTED_CURRENCIES:
        raise ValidationFailed(
            f"The bank does not move {currency}.", code="unsupported_currency", errors={"currency": ["Unsupported."]}
        )
    return amount
