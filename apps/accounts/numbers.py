"""Account numbers: eight digits and a mod-11 check digit, written 12345678-9."""

from __future__ import annotations

import secrets

_WEIGHTS = [9, 8, 7, 6, 5, 4, 3, 2]


def check_digit(body: str) -> str:
    remainder = sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True)) % 11
    digit = 11 - remainder
    return "0" if digit >= 10 else str(digit)


def new_account_number() -> str:
    body = f"{secrets.randbelow(90_000_000) + 10_000_000}"
    return f"{body}-{check_digit(body)}"


def is_valid_account_number(number: str) -> bool:
    body, _, digit = number.partition("-")
    return len(body) == 8 and body.isdigit() and digit == check_digit(body)
