"""What other contexts may ask the accounts context synchronously. Plain data only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from apps.accounts.errors import AccountBlocked, AccountClosed, AccountNotFound
from apps.accounts.models import BankAccount
from apps.accounts.selectors import account_get, account_get_by_number, account_list, accounts_get
from fintech.errors import DomainError
from fintech.money import CurrencyMismatch

__all__ = [
    "AccountBlocked",
    "AccountClosed",
    "AccountNotFound",
    "AccountSnapshot",
    "CurrencyMismatch",
    "account_refusal",
    "account_snapshot",
    "account_snapshots",
    "accounts_of_customer",
    "movable_account",
    "movable_account_by_number",
]


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    status: str  # active, blocked or closed
    number: str
    branch: str = ""


def account_snapshot(account_id: uuid.UUID, *, lock: bool = False) -> AccountSnapshot | None:
    """The account as it is now. `lock=True` (inside a transaction) holds its row until the
    caller commits, so its status cannot change under an operation that depends on it."""
    account = account_get(account_id=account_id, lock=lock)
    return None if account is None else _snapshot(account)


def account_snapshots(account_ids: list[uuid.UUID], *, lock: bool = False) -> dict[uuid.UUID, AccountSnapshot]:
    """Several accounts as they are now, read (and with `lock=True` locked, in id order) in one
    statement. Unknown ids are missing from the result."""
    return {
        account_id: _snapshot(account)
        for account_id, account in accounts_get(account_ids=account_ids, lock=lock).items()
    }


def accounts_of_customer(customer_id: uuid.UUID) -> list[AccountSnapshot]:
    """Every account the customer holds or held, closed ones too, in one statement."""
    return [_snapshot(account) for account in account_list(customer_id=customer_id).order_by("created_at")]


def movable_account(*, account_id: uuid.UUID, currency: str, customer_id: uuid.UUID | None = None) -> AccountSnapshot:
    """The account, locked until the caller commits, when money in `currency` may move through it
    now. Raises AccountNotFound (unknown, or not `customer_id`'s: a stranger learns nothing more),
    AccountBlocked, AccountClosed or CurrencyMismatch, whose codes are the refusal's words."""
    account = account_get(account_id=account_id, lock=True)
    if account is None or (customer_id is not None and account.customer_id != customer_id):
        raise AccountNotFound(f"No account {account_id}.")
    return _movable(account, currency)


def movable_account_by_number(*, branch: str, number: str, currency: str) -> AccountSnapshot:
    """`movable_account` for an account named by its branch and number, as other banks name it."""
    account = account_get_by_number(branch=branch, number=number, lock=True)
    if account is None:
        raise AccountNotFound("No account with this branch and number.")
    return _movable(account, currency)


def account_refusal(account: AccountSnapshot, *, currency: str, role: str = "") -> DomainError | None:
    """Why money in `currency` may not move through the account now (blocked, closed, another
    currency), or None. `role` names the account in the message ("source": "The source account
    is blocked.")."""
    the = f"The {role} account" if role else "The account"
    if account.status == BankAccount.Status.BLOCKED:
        return AccountBlocked(f"{the} is blocked.")
    if account.status == BankAccount.Status.CLOSED:
        return AccountClosed(f"{the} is closed.")
    if account.currency != currency:
        return CurrencyMismatch(f"{the} holds {account.currency}, not {currency}.")
    return None


def _movable(account: BankAccount, currency: str) -> AccountSnapshot:
    snapshot = _snapshot(account)
    refusal = account_refusal(snapshot, currency=currency)
    if refusal is not None:
        raise refusal
    return snapshot


def _snapshot(account: BankAccount) -> AccountSnapshot:
    return AccountSnapshot(
        id=account.id,
        customer_id=account.customer_id,
        currency=account.currency,
        status=account.status,
        number=account.number,
        branch=account.branch,
    )
