"""The transactions context's part of the transfer choreography."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from apps.transactions import services
from fintech.bus import subscribe
from fintech.events import ReceivedEvent


def _transfer_decisions(events: Sequence[ReceivedEvent]) -> dict[uuid.UUID, str]:
    """The fraud context's word on transfers (its events also speak of payments)."""
    return {
        uuid.UUID(event.data["subject_id"]): event.data["decision"]
        for event in events
        if event.data["subject_type"] == "transfer"
    }


@subscribe("fraud.screened", name="transactions.continue_screened_transfer", same_unit_of_work=True, batch=True)
def continue_screened_transfers(events: Sequence[ReceivedEvent]) -> None:
    decisions = _transfer_decisions(events)
    if decisions:
        services.transfers_screened(decisions=decisions)


@subscribe("fraud.review_decided", name="transactions.continue_reviewed_transfer", same_unit_of_work=True, batch=True)
def continue_reviewed_transfers(events: Sequence[ReceivedEvent]) -> None:
    decisions = _transfer_decisions(events)
    if decisions:
        services.transfers_reviewed(decisions=decisions)


@subscribe("ledger.entry_written", name="transactions.complete_posted_transfer", same_unit_of_work=True, batch=True)
def complete_posted_transfers(events: Sequence[ReceivedEvent]) -> None:
    posted = {
        uuid.UUID(event.data["reference"]): uuid.UUID(event.data["transaction_id"])
        for event in events
        if event.data["kind"] == "transfer"
    }
    if posted:
        services.transfers_complete(postings=posted)
