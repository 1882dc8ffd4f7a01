"""Events of the contracts other contexts publish (fraud, payments, the transfer held for
review) or the payment network sends, as DomainEvent classes of the committed schemas: tests
publish them to drive notifications and analytics before those publishers exist here.
Only the fields the schemas define."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from fintech.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class FraudScreened(DomainEvent):
    event_type: ClassVar[str] = "fraud.screened"
    source: ClassVar[str] = "fraud"
    aggregate_field: ClassVar[str] = "subject_id"

    screening_id: str
    subject_type: str
    subject_id: str
    account_id: str
    amount: int
    currency: str
    decision: str
    score: int
    rules: list[dict[str, Any]] = field(default_factory=list)
    screened_at: str


@dataclass(frozen=True, kw_only=True)
class FraudAlert(DomainEvent):
    event_type: ClassVar[str] = "fraud.alert"
    source: ClassVar[str] = "fraud"
    aggregate_field: ClassVar[str] = "subject_id"

    alert_id: str
    subject_type: str
    subject_id: str
    account_id: str
    amount: int
    currency: str
    decision: str
    score: int
    rules: list[dict[str, Any]] = field(default_factory=list)
    raised_at: str


@dataclass(frozen=True, kw_only=True)
class FraudReviewDecided(DomainEvent):
    event_type: ClassVar[str] = "fraud.review_decided"
    source: ClassVar[str] = "fraud"
    aggregate_field: ClassVar[str] = "subject_id"

    subject_type: str
    subject_id: str
    decision: str
    decided_by: str
    reason: str
    decided_at: str


@dataclass(frozen=True, kw_only=True)
class TransactionHeldForReview(DomainEvent):
    event_type: ClassVar[str] = "transaction.held_for_review"
    source: ClassVar[str] = "transactions"
    aggregate_field: ClassVar[str] = "transfer_id"

    transfer_id: str
    from_account_id: str
    to_account_id: str
    amount: int
    currency: str
    customer_id: str
    held_at: str


@dataclass(frozen=True, kw_only=True)
class PaymentProcessed(DomainEvent):
    event_type: ClassVar[str] = "payment.processed"
    source: ClassVar[str] = "payment-network"
    aggregate_field: ClassVar[str] = "payment_id"

    payment_id: str
    status: str
    network_reference: str
    return_reason: str | None
    processed_at: str
    # Optional: when the network states them, the payments context books only a matching answer.
    amount: int | None = None
    currency: str | None = None
    end_to_end_id: str | None = None
