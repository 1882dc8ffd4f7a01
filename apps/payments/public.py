"""What other contexts may ask the payments context synchronously. Plain data only."""

from __future__ import annotations

import uuid

from apps.payments import selectors


def in_flight_totals() -> dict[str, int]:
    """Per currency, the sum of the payments sent to the network and not answered yet: what the
    ledger's clearing account must hold (apps/ledger/reconciliation.py asks)."""
    return selectors.in_flight_totals()


def payments_not_final(customer_id: uuid.UUID) -> int:
    """How many of the customer's payments are not final yet (pending or in review)."""
    return selectors.payments_not_final_count(customer_id=customer_id)
