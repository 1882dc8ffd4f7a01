"""The transactions context's part of the transfer choreography."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from apps.transactions import services
from fintech.bus import subscribe
from fintech.events import ReceivedEvent


@subscribe("transaction.initiated", name="transactions.screen_transfer", same_unit_of_work=True, batch=True)
def screen_transfers(events: Sequence[ReceivedEvent]) -> None:
    services.transfers_screen(transfer_ids=[uuid.UUID(event.data["transfer_id"]) for event in events])


@subscribe("ledger.entry_written", name="transactions.complete_posted_transfer", same_unit_of_work=True, batch=True)
def complete_posted_transfers(events: Sequence[ReceivedEvent]) -> None:
    posted = {
        uuid.UUID(event.data["reference"]): uuid.UUID(event.data["transaction_id"])
        for event in events
        if event.data["kind"] == "transfer"
    }
    if posted:
        services.transfers_complete(postings=posted)
