"""Which business facts each domain event carries: the analytics context's reading of the events.

A fact is (metric, currency, amount, subject). Most events carry one or none; an event whose
money is named elsewhere (a review decision names only the transfer or payment) takes its amount
and currency from the fact recorded earlier for the same subject (`known`).

Payments are counted from what the payments context booked (`payment.settled`, `payment.returned`,
`payment.failed`, `payment.credited`, ...), each with its own money, never from the network's
messages (`payment.processed`, `payment.received`): the bank may refuse to book those (an unknown
payment, another amount, a duplicate under a new message id), and a refused message is no fact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fintech.events import ReceivedEvent

NO_CURRENCY = "XXX"

# Metrics with money: count and volume per currency.
TRANSFERS = ("transfers.initiated", "transfers.review", "transfers.completed", "transfers.failed")
PAYMENTS = ("payments.initiated", "payments.review", "payments.settled", "payments.returned", "payments.failed")
# Credits from other banks for our customers: booked (credited) or sent back to the network.
CREDITS = ("credits.credited", "credits.returned")
FRAUD_DECISIONS = ("fraud.decisions.approve", "fraud.decisions.review", "fraud.decisions.reject")
FRAUD_REVIEWS = ("fraud.reviews.approved", "fraud.reviews.rejected", "fraud.reviews.expired")
DEPOSITS = "deposits"
FRAUD_ALERTS = "fraud.alerts"
# Counts without money (currency XXX).
CUSTOMERS = ("customers.created", "customers.verified", "customers.rejected")
ACCOUNTS_BLOCKED = "accounts.blocked"
NOTIFICATIONS = "notifications"

# The event types whose facts are counted (the others are delivered and acknowledged).
_SIMPLE = {
    "transaction.initiated": ("transfers.initiated", "transfer_id"),
    "transaction.held_for_review": ("transfers.review", "transfer_id"),
    "transaction.completed": ("transfers.completed", "transfer_id"),
    "transaction.failed": ("transfers.failed", "transfer_id"),
    "deposit.completed": (DEPOSITS, "deposit_id"),
    "payment.initiated": ("payments.initiated", "payment_id"),
    "payment.held_for_review": ("payments.review", "payment_id"),
    "payment.settled": ("payments.settled", "payment_id"),
    "payment.returned": ("payments.returned", "payment_id"),
    "payment.failed": ("payments.failed", "payment_id"),
    "payment.credited": ("credits.credited", "credit_id"),
    "payment.credit_returned": ("credits.returned", "credit_id"),
    "fraud.alert": (FRAUD_ALERTS, "subject_id"),
}
_COUNTS = {
    "customer.created": ("customers.created", "customer_id"),
    "customer.verified": ("customers.verified", "customer_id"),
    "customer.rejected": ("customers.rejected", "customer_id"),
    "account.blocked": (ACCOUNTS_BLOCKED, "account_id"),
    "notification.send": (NOTIFICATIONS, "notification_id"),
}
# What a later event of a subject reads its money from.
_MONEY_OF = {"fraud.review_decided": ("fraud.alerts", *FRAUD_DECISIONS)}


@dataclass(frozen=True, slots=True)
class Reading:
    metric: str
    currency: str
    amount: int
    subject_id: str


class SubjectNotYetKnown(RuntimeError):
    """An event names a subject whose first fact has not arrived (two topics out of order): the
    delivery is retried until it has."""


Known = Callable[[str, tuple[str, ...]], tuple[str, int] | None]


def subjects_looked_up(event: ReceivedEvent) -> tuple[str, tuple[str, ...]] | None:
    """(subject id, metrics) whose earlier fact gives this event its money, if it needs one."""
    if event.type == "fraud.review_decided":
        return str(event.data["subject_id"]), _MONEY_OF[event.type]
    return None


def readings_of(event: ReceivedEvent, known: Known) -> list[Reading]:
    data = event.data
    if event.type in _SIMPLE:
        metric, subject = _SIMPLE[event.type]
        return [Reading(metric, str(data["currency"]), int(data["amount"]), str(data[subject]))]
    if event.type in _COUNTS:
        metric, subject = _COUNTS[event.type]
        return [Reading(metric, NO_CURRENCY, 0, str(data[subject]))]
    if event.type == "fraud.screened":
        metric = f"fraud.decisions.{data['decision']}"
        return [Reading(metric, str(data["currency"]), int(data["amount"]), str(data["subject_id"]))]
    looked_up = subjects_looked_up(event)
    if looked_up is None:
        return []
    subject, metrics = looked_up
    money = known(subject, metrics)
    if money is None:
        raise SubjectNotYetKnown(f"{event.type} {event.id} names {subject}, of which nothing is known yet")
    return [Reading(f"fraud.reviews.{data['decision']}", money[0], money[1], subject)]
