"""Events another party publishes, as DomainEvent classes of the committed schemas, for tests
that may not import the publisher: a context's own tests (which import no other context) and
tests of what the payment network sends. Only the fields the schemas define; tests in tests/
that cross contexts publish the publishers' own classes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from fintech.events import DomainEvent


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
