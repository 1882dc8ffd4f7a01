"""What other contexts may ask the customers context synchronously. Plain data only."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from apps.customers.errors import CustomerNotFound
from apps.customers.selectors import customer_get, customers_get

__all__ = ["CustomerContact", "CustomerNotFound", "customer_contacts", "customer_kyc_status"]


def customer_kyc_status(customer_id: uuid.UUID, *, lock: bool = False) -> str | None:
    """`pending`, `verified`, `rejected`, or `erased` once the customer's personal data was
    erased (no new business with them); None for an unknown customer. `lock=True` (inside the
    caller's transaction) holds the customer's row until it commits, so the status cannot change
    (an erasure waits) under what the caller does with it."""
    customer = customer_get(customer_id=customer_id, lock=lock)
    if customer is None:
        return None
    return "erased" if customer.is_erased else customer.status


@dataclass(frozen=True, slots=True)
class CustomerContact:
    """How the bank writes to a customer: where, in which language, and the name it greets.

    For an erased customer `email` is None and `first_name` empty: there is no one to write to.
    Callers use it to address a message and keep none of it (they store the customer's id)."""

    customer_id: uuid.UUID
    email: str | None
    language: str  # "pt-BR" or "en"
    first_name: str
    erased: bool


def customer_contacts(customer_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, CustomerContact]:
    """The contacts of these customers, read in one statement; unknown ids are missing."""
    return {
        customer.id: CustomerContact(
            customer_id=customer.id,
            email=None if customer.is_erased else customer.email,
            language=customer.language,
            first_name="" if customer.is_erased else (customer.name.split() or [""])[0],
            erased=customer.is_erased,
        )
        for customer in customers_get(customer_ids=customer_ids)
    }
