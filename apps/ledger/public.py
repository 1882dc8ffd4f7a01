"""What other contexts may ask of, or tell, the ledger synchronously. Plain data only.

Commands live here besides questions: opening the ledger account behind a new bank account,
placing the hold of a transfer or a payment, and the postings of payments to and from other
banks. Each must commit in the same database transaction as the caller's own change (an account
without its ledger account, a payment sent without its money in clearing, must never exist).
When a context leaves the monolith these become steps of a saga; see
docs/adr/0002-synchronous-public-commands.md and docs/adr/0005-payments-and-the-network.md.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from apps.ledger import selectors, services
from apps.ledger.errors import CurrencyMismatch, InsufficientFunds
from fintech.errors import DomainError

__all__ = [
    "Balance",
    "CurrencyMismatch",
    "HoldWanted",
    "InsufficientFunds",
    "StatementLine",
    "balances_of",
    "deposit",
    "open_account",
    "payment_credit",
    "payment_hold_release",
    "payment_return",
    "payment_settle",
    "payments_send",
    "place_hold",
    "place_holds",
    "statement",
]


@dataclass(frozen=True, slots=True)
class Balance:
    currency: str
    balance: int  # posted
    held: int
    available: int


@dataclass(frozen=True, slots=True)
class StatementLine:
    cursor: int
    entry_id: uuid.UUID
    transaction_id: uuid.UUID
    direction: str  # "debit" or "credit", as the account holder sees it
    amount: int
    currency: str
    balance_after: int
    description: str
    kind: str
    posted_at: datetime


def open_account(*, account_id: uuid.UUID, currency: str) -> uuid.UUID:
    """Open the ledger account that backs bank account `account_id`; returns its id."""
    return services.customer_ledger_account_open(owner_ref=account_id, currency=currency).id


def balances_of(account_ids: list[uuid.UUID]) -> dict[uuid.UUID, Balance]:
    accounts = selectors.ledger_accounts_of(owner_refs=account_ids)
    return {
        owner: Balance(currency=a.currency, balance=a.balance, held=a.held, available=a.balance - a.held)
        for owner, a in accounts.items()
    }


def place_hold(
    *, account_id: uuid.UUID, amount: int, currency: str, operation: str, operation_id: uuid.UUID
) -> uuid.UUID:
    """Set money aside for an operation in flight (`operation` "transfer" or "payment", and its
    id: the ledger keys the hold itself). Raises InsufficientFunds."""
    return services.hold_place(
        owner_ref=account_id,
        amount=amount,
        currency=currency,
        hold_key=services.hold_key(operation, operation_id),
    ).id


@dataclass(frozen=True, slots=True)
class HoldWanted:
    """One hold of `place_holds`: money of bank account `account_id` set aside for an operation."""

    account_id: uuid.UUID
    amount: int
    currency: str
    operation: str
    operation_id: uuid.UUID


def place_holds(holds: list[HoldWanted]) -> list[uuid.UUID | DomainError]:
    """Set money aside for many operations at once; per hold, in order, the hold's id or the
    refusal (InsufficientFunds, CurrencyMismatch, ...). One refusal leaves the others."""
    outcomes = services.holds_place(
        [
            services.HoldRequest(
                owner_ref=hold.account_id,
                amount=hold.amount,
                currency=hold.currency,
                hold_key=services.hold_key(hold.operation, hold.operation_id),
            )
            for hold in holds
        ]
    )
    return [outcome if isinstance(outcome, DomainError) else outcome.id for outcome in outcomes]


def deposit(*, account_id: uuid.UUID, amount: int, currency: str, posting_key: str, reference: str) -> uuid.UUID:
    """Credit the account against the bank's settlement account; returns the journal transaction id."""
    journal = services.deposit_post(
        owner_ref=account_id, amount=amount, currency=currency, posting_key=posting_key, reference=reference
    )
    return journal.id


def payments_send(*, payment_ids: list[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID | None]:
    """Move the held amounts of payments leaving for the network from the customers' accounts to
    clearing, in one batch. Per payment: the journal transaction id, or None when its hold was
    voided (nothing moved). Sending again returns the first posting."""
    posted = services.payments_to_clearing(payment_ids)
    return {payment_id: journal.id if journal else None for payment_id, journal in posted.items()}


def payment_hold_release(*, payment_id: uuid.UUID) -> None:
    """A payment that never left: its hold is voided and the available balance restored."""
    services.hold_void(hold_key=services.hold_key("payment", payment_id))


def payment_settle(*, payment_id: uuid.UUID, amount: int, currency: str) -> uuid.UUID:
    """The network settled a payment: clearing -> settlement. Returns the journal transaction id."""
    return services.payment_settle(payment_id=payment_id, amount=amount, currency=currency).id


def payment_return(
    *, payment_id: uuid.UUID, account_id: uuid.UUID, amount: int, currency: str, reason: str
) -> uuid.UUID:
    """The network returned a payment: clearing -> the customer's account."""
    return services.payment_return(
        payment_id=payment_id, account_id=account_id, amount=amount, currency=currency, reason=reason
    ).id


def payment_credit(*, end_to_end_id: str, account_id: uuid.UUID, amount: int, currency: str) -> uuid.UUID:
    """Another bank's credit, settled to us by the network: settlement -> the customer's account."""
    return services.payment_credit(
        end_to_end_id=end_to_end_id, account_id=account_id, amount=amount, currency=currency
    ).id


def statement(
    *,
    account_id: uuid.UUID,
    posted_from: datetime | None = None,
    posted_to: datetime | None = None,
    before_cursor: int | None = None,
    limit: int = 50,
) -> list[StatementLine]:
    ledger_account = selectors.ledger_account_of(owner_ref=account_id)
    if ledger_account is None:
        return []
    entries = selectors.statement_entries(
        ledger_account_id=ledger_account.id,
        posted_from=posted_from,
        posted_to=posted_to,
        before_id=before_cursor,
        limit=limit,
    )
    return [
        StatementLine(
            cursor=e.id,
            entry_id=e.entry_id,
            transaction_id=e.transaction_id,
            direction=e.side,
            amount=e.amount,
            currency=e.currency,
            balance_after=e.balance_after,
            description=e.transaction.description,
            kind=e.transaction.kind,
            posted_at=e.posted_at,
        )
        for e in entries
    ]
