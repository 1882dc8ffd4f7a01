"""The topics of the contract: one per event type, and a `dlq.` twin for each."""

from __future__ import annotations

from fintech.events.registry import known_types

# Event types named by the public contract, whether or not a context publishes them yet.
CONTRACT_TOPICS = (
    "customer.created",
    "customer.verified",
    "account.created",
    "account.balance.updated",
    "transaction.initiated",
    "transaction.validated",
    "transaction.completed",
    "transaction.failed",
    "ledger.entry_written",
    "payment.processed",
    "fraud.alert",
    "notification.send",
    "analytics.event",
)
DLQ_PREFIX = "dlq."


def dlq_topic(topic: str) -> str:
    return f"{DLQ_PREFIX}{topic}"


def event_topics() -> list[str]:
    return sorted(set(CONTRACT_TOPICS) | set(known_types()))


def all_topics() -> list[str]:
    topics = event_topics()
    return topics + [dlq_topic(topic) for topic in topics]
