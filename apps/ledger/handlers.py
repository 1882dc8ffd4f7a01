"""The ledger's part of the transfer choreography: post a validated transfer's hold, void a
failed one's. Both tolerate duplicates and reordering."""

from __future__ import annotations

import uuid

from apps.ledger import services
from apps.ledger.errors import HoldNotActive
from apps.ledger.models import JournalTransaction
from fintech.bus import subscribe
from fintech.events import ReceivedEvent


def transfer_hold_key(transfer_id: str) -> str:
    return f"transfer:{transfer_id}"


@subscribe("transaction.validated", name="ledger.post_validated_transfer")
def post_validated_transfer(event: ReceivedEvent) -> None:
    data = event.data
    try:
        services.hold_post(
            hold_key=transfer_hold_key(data["transfer_id"]),
            to_owner_ref=uuid.UUID(data["to_account_id"]),
            kind=JournalTransaction.Kind.TRANSFER,
            reference=data["transfer_id"],
            description=data.get("description") or "Transfer",
        )
    except HoldNotActive:
        # The transfer failed and its hold was voided before this event arrived: nothing moves.
        return


@subscribe("transaction.failed", name="ledger.void_failed_transfer_hold")
def void_failed_transfer_hold(event: ReceivedEvent) -> None:
    # A hold that was already posted raises HoldNotActive: the money moved before the failure
    # was known. That delivery is dead-lettered, where the back office sees it and reverses.
    services.hold_void(hold_key=transfer_hold_key(event.data["transfer_id"]))
