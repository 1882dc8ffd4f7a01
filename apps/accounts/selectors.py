from __future__ import annotations

import uuid

from django.db.models import QuerySet

from apps.accounts.models import BankAccount


def account_get(*, account_id: uuid.UUID, lock: bool = False) -> BankAccount | None:
    accounts = BankAccount.objects.filter(pk=account_id)
    if lock:
        accounts = accounts.select_for_update()
    return accounts.first()


def account_list(*, customer_id: uuid.UUID | None = None, status: str | None = None) -> QuerySet[BankAccount]:
    accounts = BankAccount.objects.all()
    if customer_id is not None:
        accounts = accounts.filter(customer_id=customer_id)
    if status:
        accounts = accounts.filter(status=status)
    return accounts
