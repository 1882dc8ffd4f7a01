"""What other contexts may ask the transactions context synchronously. Plain data only."""

from __future__ import annotations

import uuid

from apps.transactions import selectors

__all__ = ["transfers_in_flight"]


def transfers_in_flight(customer_id: uuid.UUID) -> int:
    """How many transfers from or to the customer are not final yet (money on its way)."""
    return selectors.transfers_in_flight_count(customer_id=customer_id)
