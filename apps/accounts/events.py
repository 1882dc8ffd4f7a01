from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fintech.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class AccountCreated(DomainEvent):
    event_type: ClassVar[str] = "account.created"
    source: ClassVar[str] = "accounts"
    aggregate_field: ClassVar[str] = "account_id"

    account_id: str
    customer_id: str
    currency: str
    created_at: str


@dataclass(frozen=True, kw_only=True)
class AccountStatusChanged(DomainEvent):
    """Base of account.blocked, account.unblocked and account.closed."""

    source: ClassVar[str] = "accounts"
    aggregate_field: ClassVar[str] = "account_id"

    account_id: str
    customer_id: str
    status: str
    reason: str
    changed_by: str
    changed_at: str


@dataclass(frozen=True, kw_only=True)
class AccountBlocked(AccountStatusChanged):
    event_type: ClassVar[str] = "account.blocked"


@dataclass(frozen=True, kw_only=True)
class AccountUnblocked(AccountStatusChanged):
    event_type: ClassVar[str] = "account.unblocked"


@dataclass(frozen=True, kw_only=True)
class AccountClosed(AccountStatusChanged):
    event_type: ClassVar[str] = "account.closed"


@dataclass(frozen=True, kw_only=True)
class AccountBalanceUpdated(DomainEvent):
    event_type: ClassVar[str] = "account.balance.updated"
    source: ClassVar[str] = "accounts"
    aggregate_field: ClassVar[str] = "account_id"

    account_id: str
    customer_id: str
    currency: str
    balance: int
    entry_id: str
    transaction_id: str
    side: str
    amount: int
    posted_at: str
