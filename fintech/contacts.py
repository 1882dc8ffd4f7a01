"""E-mail addresses and phone numbers: normalization and the masks shown where the whole value is not
needed. One rule for a customer's contacts and for the PIX keys that are an e-mail or a phone."""

from __future__ import annotations

import re


class InvalidPhone(ValueError):
    pass


_PHONE_SEPARATORS = re.compile(r"[\s\-().]")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def normalize_phone(raw: str) -> str:
    """E.164 (`+5511987654321`): a plus, the country code and the number, 8 to 15 digits in all.
    Spaces, dashes, dots and parentheses are ignored. The message never repeats the value."""
    phone = _PHONE_SEPARATORS.sub("", raw or "")
    if not _E164.match(phone) or not phone.isascii():
        raise InvalidPhone("A phone number is E.164: '+', the country code and the number, 8 to 15 digits.")
    return phone


def normalize_email(raw: str) -> str:
    return raw.strip().lower()


def mask_phone(phone: str) -> str:
    """`+55*******4321`: the start of the country code and the last four digits."""
    digits = phone.lstrip("+")
    return f"+{digits[:2]}{'*' * (len(digits) - 6)}{digits[-4:]}"


def mask_email(email: str) -> str:
    """`a***@e***.com`: the first letter of each part and the top-level domain."""
    local, _, domain = email.partition("@")
    name, dot, tld = domain.rpartition(".")
    if not dot:
        name, tld = domain, ""
    return f"{local[:1]}***@{name[:1]}***{dot}{tld}"
