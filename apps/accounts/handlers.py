"""The accounts context turns ledger postings into balance updates of customer accounts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from apps.accounts.events import AccountBalanceUpdated
from apps.accounts.models import BankAccount
from fintech.bus import subscribe
from fintech.events import ReceivedEvent
from outbox.publisher import publish


@subscribe("ledger.entry_written", name="accounts.publish_balance_updates", same_unit_of_work=True, batch=True)
def publish_balance_updates(events: Sequence[ReceivedEvent]) -> None:
    entries = [(event, entry) for event in events for entry in event.data["entries"] if entry.get("account_id")]
    owners = dict(
        BankAccount.objects.filter(id__in={uuid.UUID(entry["account_id"]) for _, entry in entries}).values_list(
            "id", "customer_id"
        )
    )
    for event, entry in entries:
        customer_id = owners.get(uuid.UUID(entry["account_id"]))
        if customer_id is None:
            continue
        publish(
            AccountBalanceUpdated(
                account_id=entry["account_id"],
                customer_id=str(customer_id),
                currency=entry["currency"],
                balance=entry["balance_after"],
                entry_id=entry["entry_id"],
                transaction_id=event.data["transaction_id"],
                side=entry["side"],
                amount=entry["amount"],
                posted_at=event.data["posted_at"],
            )
        )
