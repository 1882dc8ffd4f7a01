"""What other contexts may ask the accounts context synchronously. Plain data only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from apps.accounts.errors import AccountNotFound
from apps.accounts.models import BankAccount
from apps.accounts.selectors import account_get, accounts_get

__all__ = ["AccountNotFound", "AccountSnapshot", "account_snapshot", "account_snapshots"]


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    status: str  # active, blocked or closed
    number: str


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


def _snapshot(account: BankAccount) -> AccountSnapshot:
    return AccountSnapshot(
        id=account.id,
        customer_id=account.customer_id,
        currency=account.currency,
        status=account.status,
        number=account.number,
    )
