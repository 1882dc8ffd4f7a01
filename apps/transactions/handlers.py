"""The transactions context's part of the transfer choreography."""

from __future__ import annotations

import uuid

from apps.transactions import services
from fintech.bus import subscribe
from fintech.events import ReceivedEvent


@subscribe("transaction.initiated", name="transactions.screen_transfer")
def screen_transfer(event: ReceivedEvent) -> None:
    services.transfer_screen(transfer_id=uuid.UUID(event.data["transfer_id"]))


@subscribe("ledger.entry_written", name="transactions.complete_posted_transfer")
def complete_posted_transfer(event: ReceivedEvent) -> None:
    if event.data["kind"] != "transfer":
        return
    services.transfer_complete(
        transfer_id=uuid.UUID(event.data["reference"]),
        journal_transaction_id=uuid.UUID(event.data["transaction_id"]),
    )
