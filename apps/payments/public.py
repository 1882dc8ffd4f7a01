"""What other contexts may ask the payments context synchronously. Plain data only."""

from __future__ import annotations

from apps.payments import selectors


def in_flight_totals() -> dict[str, int]:
    """Per currency, the sum of the payments sent to the network and not answered yet: what the
    ledger's clearing account must hold (apps/ledger/reconciliation.py asks)."""
    return selectors.in_flight_totals()
