"""The ledger's part of the transfer choreography: post validated transfers' holds, void a
failed one's. Both tolerate duplicates and reordering."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from apps.ledger import services
from apps.ledger.models import JournalTransaction
from fintech.bus import subscribe
from fintech.events import ReceivedEvent


@subscribe("transaction.validated", name="ledger.post_validated_transfer", same_unit_of_work=True, batch=True)
def post_validated_transfers(events: Sequence[ReceivedEvent]) -> None:
    # A transfer that failed before its validation arrived has a voided hold: nothing moves for
    # it. A hold that was never placed raises HoldNotFound: the delivery fails loudly.
    services.holds_post(
        [
            services.HoldPosting(
                hold_key=services.hold_key("transfer", event.data["transfer_id"]),
                to_owner_ref=uuid.UUID(event.data["to_account_id"]),
                kind=JournalTransaction.Kind.TRANSFER,
                reference=event.data["transfer_id"],
                description=event.data.get("description") or "Transfer",
            )
            for event in events
        ]
    )


@subscribe("transaction.failed", name="ledger.void_failed_transfer_hold", same_unit_of_work=True)
def void_failed_transfer_hold(event: ReceivedEvent) -> None:
    # A hold that was already posted raises HoldNotActive: the money moved before the failure
    # was known. That delivery is dead-lettered, where the back office sees it and reverses.
    services.hold_void(hold_key=services.hold_key("transfer", event.data["transfer_id"]))
