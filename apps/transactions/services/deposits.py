"""Deposits: money brought into an account from outside (a teller, the cash-in system)."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import IntegrityError
from django.utils import timezone

from apps.accounts import public as accounts
from apps.ledger import public as ledger
from apps.transactions.errors import DuplicateReference
from apps.transactions.events import DepositCompleted
from apps.transactions.models import Deposit
from fintech.errors import ValidationFailed
from fintech.events import rfc3339
from fintech.money import validate_amount
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work


def deposit_make(
    *, account_id: uuid.UUID, amount: int, currency: str, reference: str, made_by: str, now: datetime | None = None
) -> Deposit:
    """Credit an account with money that came from outside, against the settlement account."""
    now = now or timezone.now()
    validate_amount(amount, currency)
    reference = reference.strip()
    if not reference:
        raise ValidationFailed("A deposit needs a reference.", errors={"reference": ["This field is required."]})
    try:
        with unit_of_work(savepoint=True):
            account = accounts.account_snapshot(account_id, lock=True)
            if account is None:
                raise accounts.AccountNotFound(f"No account {account_id}.")
            refusal = accounts.account_refusal(account, currency=currency, role="destination")
            if refusal is not None:
                raise refusal
            if Deposit.objects.filter(reference=reference).exists():
                raise DuplicateReference(f"A deposit with reference {reference!r} already exists.")
            deposit = Deposit.objects.create(
                account_id=account.id,
                customer_id=account.customer_id,
                amount=amount,
                currency=currency,
                reference=reference,
                made_by=made_by,
                created_at=now,
            )
            deposit.journal_transaction_id = ledger.deposit(
                account_id=account.id,
                amount=amount,
                currency=currency,
                posting_key=f"deposit:{deposit.id}",
                reference=reference,
            )
            deposit.save(update_fields=["journal_transaction_id"])
            publish(
                DepositCompleted(
                    deposit_id=str(deposit.id),
                    account_id=str(account.id),
                    amount=amount,
                    currency=currency,
                    reference=reference,
                    journal_transaction_id=str(deposit.journal_transaction_id),
                    completed_at=rfc3339(now),
                ),
                occurred_at=now,
            )
            return deposit
    except IntegrityError:
        # Two deposits with one reference raced past the check above.
        raise DuplicateReference(f"A deposit with reference {reference!r} already exists.") from None
