"""What the customer (and the back office) hears of: reactions after the commit, in batches, so
they add nothing to a transfer's own unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from apps.notifications import services
from fintech.bus import subscribe
from fintech.events import ReceivedEvent

# Event types whose facts a customer or the back office is told of (services.notices_of).
TOLD = (
    "customer.verified",
    "customer.rejected",
    "transaction.completed",
    "transaction.failed",
    "transaction.held_for_review",
    "deposit.completed",
    # What the payments context booked, never the network's raw answer (`payment.processed`), which
    # the bank may refuse to book (an unknown payment, another amount, a duplicate).
    "payment.settled",
    "payment.returned",
    "payment.failed",
    "payment.held_for_review",
    "payment.credited",
    "account.blocked",
    "fraud.alert",
)


def notify(events: Sequence[ReceivedEvent]) -> None:
    services.notify(events=events)


for _event_type in TOLD:
    subscribe(_event_type, name=f"notifications.notify.{_event_type}", batch=True)(notify)


@subscribe("customer.erased", name="notifications.erase_customer_texts", batch=True)
def erase_customer_texts(events: Sequence[ReceivedEvent]) -> None:
    services.customers_notifications_erase(customer_ids=[uuid.UUID(event.data["customer_id"]) for event in events])
