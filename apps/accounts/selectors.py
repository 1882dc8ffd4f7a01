from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from apps.accounts.models import BankAccount
from apps.ledger import public as ledger


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """What an account holds, as its owner sees it: `balance` posted, `available` = posted minus holds."""

    balance: int
    available: int


NO_MONEY = AccountBalance(balance=0, available=0)


def account_get(*, account_id: uuid.UUID, lock: bool = False) -> BankAccount | None:
    accounts = BankAccount.objects.filter(pk=account_id)
    if lock:
        accounts = accounts.select_for_update()
    return accounts.first()


def account_get_by_number(*, branch: str, number: str, lock: bool = False) -> BankAccount | None:
    accounts = BankAccount.objects.filter(branch=branch, number=number)
    if lock:
        accounts = accounts.select_for_update()
    return accounts.first()


def accounts_get(*, account_ids: list[uuid.UUID], lock: bool = False) -> dict[uuid.UUID, BankAccount]:
    """Several accounts in one statement; `lock=True` locks them in id order (deadlock-free)."""
    accounts = BankAccount.objects.filter(pk__in=sorted(set(account_ids))).order_by("id")
    if lock:
        accounts = accounts.select_for_update()
    return {account.id: account for account in accounts}


def account_list(*, customer_id: uuid.UUID | None = None, status: str | None = None) -> QuerySet[BankAccount]:
    accounts = BankAccount.objects.all()
    if customer_id is not None:
        accounts = accounts.filter(customer_id=customer_id)
    if status:
        accounts = accounts.filter(status=status)
    return accounts


def account_balances(accounts: Iterable[BankAccount]) -> dict[uuid.UUID, AccountBalance]:
    """The balances of these accounts, read from the ledger (the only source of truth for money)
    in one query. Every account given has one: no money for an account the ledger has not seen."""
    ids = [account.id for account in accounts]
    held = ledger.balances_of(ids)
    return {
        account_id: AccountBalance(balance=held[account_id].balance, available=held[account_id].available)
        if account_id in held
        else NO_MONEY
        for account_id in ids
    }


def account_statement(
    *,
    account_id: uuid.UUID,
    posted_from: datetime | None = None,
    posted_to: datetime | None = None,
    before_cursor: int | None = None,
    limit: int = 50,
) -> list[ledger.StatementLine]:
    """The account's posted entries, newest first: `limit` of them before `before_cursor`, within
    [posted_from, posted_to)."""
    return ledger.statement(
        account_id=account_id,
        posted_from=posted_from,
        posted_to=posted_to,
        before_cursor=before_cursor,
        limit=limit,
    )
