"""Refusals of the ledger. Other contexts see them through `apps.ledger.public`."""

from __future__ import annotations

from fintech.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from fintech.money import CurrencyMismatch

__all__ = [
    "AlreadyReversed",
    "CurrencyMismatch",
    "HoldNotActive",
    "HoldNotFound",
    "InsufficientFunds",
    "InvalidPosting",
    "JournalTransactionNotFound",
    "LedgerAccountNotFound",
    "UnbalancedTransaction",
]


class InsufficientFunds(Unprocessable):
    code = "insufficient_funds"
    title = "Insufficient funds"


class UnbalancedTransaction(ValidationFailed):
    code = "unbalanced_transaction"
    title = "Debits and credits differ"


class InvalidPosting(ValidationFailed):
    code = "invalid_posting"
    title = "Invalid posting"


class LedgerAccountNotFound(NotFound):
    code = "ledger_account_not_found"
    title = "Ledger account not found"


class HoldNotActive(Conflict):
    code = "hold_not_active"
    title = "The hold is no longer active"


class AlreadyReversed(Conflict):
    code = "already_reversed"
    title = "This journal transaction was already reversed"


class HoldNotFound(NotFound):
    """An operation names a hold that was never placed: the books and the operation disagree."""

    code = "hold_not_found"
    title = "No such hold"


class JournalTransactionNotFound(NotFound):
    code = "journal_transaction_not_found"
    title = "Journal transaction not found"
