"""What other contexts may ask the customers context synchronously. Plain data only."""

from __future__ import annotations

import uuid

from apps.customers.errors import CustomerNotFound
from apps.customers.selectors import customer_get

__all__ = ["CustomerNotFound", "customer_kyc_status"]


def customer_kyc_status(customer_id: uuid.UUID) -> str | None:
    """`pending`, `verified`, `rejected`, or `erased` once the customer's personal data was
    erased (no new business with them); None for an unknown customer."""
    customer = customer_get(customer_id=customer_id)
    if customer is None:
        return None
    return "erased" if customer.is_erased else customer.status
