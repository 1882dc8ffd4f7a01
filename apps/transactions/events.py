"""Events of transfers and deposits. Their types keep the contract's names (`transaction.*`);
the classes say what they are about: a transfer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fintech.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class TransferEvent(DomainEvent):
    source: ClassVar[str] = "transactions"
    aggregate_field: ClassVar[str] = "transfer_id"

    transfer_id: str
    from_account_id: str
    to_account_id: str
    amount: int
    currency: str


@dataclass(frozen=True, kw_only=True)
class TransferInitiated(TransferEvent):
    event_type: ClassVar[str] = "transaction.initiated"

    customer_id: str
    description: str
    initiated_at: str
    to_customer_id: str | None = None
    initiated_by_customer: bool = False


@dataclass(frozen=True, kw_only=True)
class TransferValidated(TransferEvent):
    event_type: ClassVar[str] = "transaction.validated"

    description: str
    validated_at: str


@dataclass(frozen=True, kw_only=True)
class TransferHeldForReview(TransferEvent):
    """The screening held the transfer for an analyst: its amount stays held on the source."""

    event_type: ClassVar[str] = "transaction.held_for_review"

    customer_id: str
    held_at: str


@dataclass(frozen=True, kw_only=True)
class TransferCompleted(TransferEvent):
    event_type: ClassVar[str] = "transaction.completed"

    journal_transaction_id: str
    completed_at: str


@dataclass(frozen=True, kw_only=True)
class TransferFailed(TransferEvent):
    event_type: ClassVar[str] = "transaction.failed"

    failure_code: str
    failed_at: str


@dataclass(frozen=True, kw_only=True)
class DepositCompleted(DomainEvent):
    event_type: ClassVar[str] = "deposit.completed"
    source: ClassVar[str] = "transactions"
    aggregate_field: ClassVar[str] = "account_id"

    deposit_id: str
    account_id: str
    amount: int
    currency: str
    reference: str
    journal_transaction_id: str
    completed_at: str
