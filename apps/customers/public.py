"""What other contexts may ask the customers context synchronously. Plain data only."""

from __future__ import annotations

import uuid

from apps.customers.selectors import customer_get


def customer_kyc_status(customer_id: uuid.UUID) -> str | None:
    """`pending`, `verified` or `rejected`; None for an unknown customer."""
    customer = customer_get(customer_id=customer_id)
    return customer.status if customer else None
