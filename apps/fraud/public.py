"""What other contexts may ask the fraud context synchronously. Plain data only."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from apps.fraud import selectors

__all__ = ["open_reviews"]


def open_reviews(*, customer_id: uuid.UUID, account_ids: Sequence[uuid.UUID]) -> int:
    """How many operations the customer sends, or receives on these accounts, wait for an analyst."""
    return selectors.open_reviews_count(customer_id=customer_id, account_ids=account_ids)
