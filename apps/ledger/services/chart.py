"""The chart of accounts: the bank's own (system) accounts and the ledger account behind each
customer's bank account."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.utils import timezone

from apps.ledger.errors import InvalidPosting, LedgerAccountNotFound
from apps.ledger.models import LedgerAccount, Side
from apps.ledger.models import system_account_code as system_account_code
from fintech.money import is_known_currency

SYSTEM_PURPOSES: dict[str, tuple[str, str, bool]] = {
    # purpose: (type, normal side, may go negative)
    "settlement": (LedgerAccount.Type.ASSET, Side.DEBIT, True),
    "clearing": (LedgerAccount.Type.LIABILITY, Side.CREDIT, True),
    "fees": (LedgerAccount.Type.INCOME, Side.CREDIT, True),
    "suspense": (LedgerAccount.Type.LIABILITY, Side.CREDIT, True),
}


def customer_account_code(owner_ref: uuid.UUID) -> str:
    return f"customer:{owner_ref}"


def ledger_account_open(
    *,
    code: str,
    name: str,
    account_type: str,
    normal_side: str,
    currency: str,
    owner_ref: uuid.UUID | None = None,
    allow_negative: bool = False,
    is_system: bool = False,
    now: datetime | None = None,
) -> LedgerAccount:
    if not is_known_currency(currency):
        raise InvalidPosting(f"Unknown currency {currency!r}.")
    now = now or timezone.now()
    account, _ = LedgerAccount.objects.get_or_create(
        code=code,
        defaults={
            "name": name,
            "account_type": account_type,
            "normal_side": normal_side,
            "currency": currency,
            "owner_ref": owner_ref,
            "allow_negative": allow_negative,
            "is_system": is_system,
            "created_at": now,
            "updated_at": now,
        },
    )
    return account


def customer_ledger_account_open(*, owner_ref: uuid.UUID, currency: str) -> LedgerAccount:
    """The liability the bank owes a customer: credits raise it, it may not go negative."""
    return ledger_account_open(
        code=customer_account_code(owner_ref),
        name=f"Deposits of account {owner_ref}",
        account_type=LedgerAccount.Type.LIABILITY,
        normal_side=Side.CREDIT,
        currency=currency,
        owner_ref=owner_ref,
    )


def system_account(purpose: str, currency: str) -> LedgerAccount:
    """The bank's own account for `purpose` in `currency`, opened on first use."""
    type_, side, allow_negative = SYSTEM_PURPOSES[purpose]
    return ledger_account_open(
        code=system_account_code(purpose, currency),
        name=f"{purpose.title()} ({currency})",
        account_type=type_,
        normal_side=side,
        currency=currency,
        allow_negative=allow_negative,
        is_system=True,
    )


def account_of(owner_ref: uuid.UUID) -> LedgerAccount:
    """The ledger account behind bank account `owner_ref`."""
    account = LedgerAccount.objects.filter(owner_ref=owner_ref).first()
    if account is None:
        raise LedgerAccountNotFound(f"No ledger account backs account {owner_ref}.")
    return account
