from __future__ import annotations

import uuid

from django.db.models import QuerySet

from apps.accounts.models import BankAccount


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
