from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fintech.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class PaymentEvent(DomainEvent):
    source: ClassVar[str] = "payments"
    aggregate_field: ClassVar[str] = "payment_id"

    payment_id: str
    account_id: str
    amount: int
    currency: str


@dataclass(frozen=True, kw_only=True)
class PaymentInitiated(PaymentEvent):
    event_type: ClassVar[str] = "payment.initiated"

    customer_id: str
    beneficiary_ref: str
    initiated_by_customer: bool
    initiated_at: str


@dataclass(frozen=True, kw_only=True)
class PaymentRequested(PaymentEvent):
    """The message to the network: the beneficiary's personal data only sealed."""

    event_type: ClassVar[str] = "payment.requested"

    end_to_end_id: str
    payer_ispb: str
    beneficiary_kind: str
    beneficiary_bank_code: str | None
    beneficiary_ref: str
    beneficiary_sealed: str
    requested_at: str


@dataclass(frozen=True, kw_only=True)
class PaymentHeldForReview(PaymentEvent):
    event_type: ClassVar[str] = "payment.held_for_review"

    customer_id: str
    held_at: str


@dataclass(frozen=True, kw_only=True)
class PaymentSettled(PaymentEvent):
    event_type: ClassVar[str] = "payment.settled"

    customer_id: str
    end_to_end_id: str
    network_reference: str
    journal_transaction_id: str
    settled_at: str


@dataclass(frozen=True, kw_only=True)
class PaymentReturned(PaymentEvent):
    event_type: ClassVar[str] = "payment.returned"

    customer_id: str
    end_to_end_id: str
    network_reference: str
    return_reason: str
    journal_transaction_id: str
    returned_at: str


@dataclass(frozen=True, kw_only=True)
class PaymentFailed(PaymentEvent):
    event_type: ClassVar[str] = "payment.failed"

    customer_id: str
    failure_code: str
    failed_at: str


@dataclass(frozen=True, kw_only=True)
class PaymentCredited(DomainEvent):
    event_type: ClassVar[str] = "payment.credited"
    source: ClassVar[str] = "payments"
    aggregate_field: ClassVar[str] = "account_id"

    credit_id: str
    end_to_end_id: str
    account_id: str
    customer_id: str
    amount: int
    currency: str
    journal_transaction_id: str
    credited_at: str


@dataclass(frozen=True, kw_only=True)
class PaymentCreditReturned(DomainEvent):
    """The bank's refusal of a credit, which the network reads to give the money back."""

    event_type: ClassVar[str] = "payment.credit_returned"
    source: ClassVar[str] = "payments"
    aggregate_field: ClassVar[str] = "end_to_end_id"

    credit_id: str
    end_to_end_id: str
    amount: int
    currency: str
    return_reason: str
    returned_at: str
