"""Which business facts each domain event carries: the analytics context's reading of the events.

A fact is (metric, currency, amount, subject). Most events carry one or none; an event whose
money is named elsewhere (the network's `payment.processed` names only the payment; a review
decision only the transfer) takes its amount and currency from the fact recorded earlier for
the same subject (`known`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fintech.events import ReceivedEvent

NO_CURRENCY = "XXX"

# Metrics with money: count and volume per currency.
TRANSFERS = ("transfers.initiated", "transfers.review", "transfers.completed", "transfers.failed")
PAYMENTS = ("payments.initiated", "payments.settled", "payments.returned")
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
_MONEY_OF = {
    "payment.processed": ("payments.initiated",),
    "fraud.review_decided": ("fraud.alerts", *FRAUD_DECISIONS),
}


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
    if event.type == "payment.processed":
        return str(event.data["payment_id"]), _MONEY_OF[event.type]
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
    metric = f"payments.{data['status']}" if event.type == "payment.processed" else f"fraud.reviews.{data['decision']}"
    return [Reading(metric, money[0], money[1], subject)]
