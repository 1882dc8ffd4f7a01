"""Brazilian taxpayer documents: CPF (people, 11 digits) and CNPJ (companies, 14 digits).

One rule for the whole bank: a customer's document at onboarding, a payment's beneficiary and
a PIX key that is a document are checked and masked here."""

from __future__ import annotations

import re
from enum import StrEnum


class DocumentType(StrEnum):
    CPF = "cpf"
    CNPJ = "cnpj"


class InvalidDocument(ValueError):
    pass


_SEPARATORS = re.compile(r"[.\-/\s]")


def _check_digit(digits: str, weights: list[int]) -> int:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def normalize_document(raw: str) -> tuple[DocumentType, str]:
    """Return the document's type and its bare digits, or raise InvalidDocument."""
    digits = _SEPARATORS.sub("", raw or "")
    if not digits.isdigit() or not digits.isascii():
        raise InvalidDocument("A document has only digits (dots, dashes and a slash are ignored).")
    if len(digits) == 11:
        kind, first_weights = DocumentType.CPF, list(range(10, 1, -1))
        second_weights = list(range(11, 1, -1))
    elif len(digits) == 14:
        kind, first_weights = DocumentType.CNPJ, [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
        second_weights = [6, *first_weights]
    else:
        raise InvalidDocument("A CPF has 11 digits and a CNPJ 14.")
    if len(set(digits)) == 1:
        raise InvalidDocument(f"This {kind.upper()} is not valid.")  # 000... and 111... pass the checks
    body = digits[: len(first_weights)]
    first = _check_digit(body, first_weights)
    second = _check_digit(body + str(first), second_weights)
    if digits[-2:] != f"{first}{second}":
        raise InvalidDocument(f"The check digits of this {kind.upper()} do not match.")
    return kind, digits


def mask_document(kind: str, digits: str) -> str:
    """Only the middle digits stay readable: enough for a person to recognise the number."""
    if kind == DocumentType.CPF:
        return f"***.{digits[3:6]}.{digits[6:9]}-**"
    return f"**.{digits[2:5]}.{digits[5:8]}/****-**"
