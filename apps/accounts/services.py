"""Commands of the accounts context: opening, blocking, unblocking and closing accounts."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError
from django.utils import timezone

from apps.accounts.errors import AccountNotEmpty, AccountNotFound, CustomerNotVerified, InvalidAccountStatus
from apps.accounts.events import AccountBlocked, AccountClosed, AccountCreated, AccountUnblocked
from apps.accounts.models import BankAccount
from apps.accounts.numbers import new_account_number
from apps.customers import public as customers
from apps.ledger import public as ledger
from fintech.events import rfc3339
from fintech.money import UnsupportedCurrency, is_supported_currency
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work


def account_open(*, customer_id: uuid.UUID, currency: str | None = None, now: datetime | None = None) -> BankAccount:
    now = now or timezone.now()
    currency = currency or settings.FINTECH_DEFAULT_CURRENCY
    if not is_supported_currency(currency):
        raise UnsupportedCurrency(
            f"Accounts are kept in {', '.join(settings.FINTECH_SUPPORTED_CURRENCIES)}.",
            errors={"currency": [f"Must be one of {', '.join(settings.FINTECH_SUPPORTED_CURRENCIES)}."]},
        )
    # The customer's row stays locked until the account commits: an erasure running meanwhile
    # either finds this account (and refuses) or erased first (and the customer is no longer verified).
    with unit_of_work():
        kyc = customers.customer_kyc_status(customer_id, lock=True)
        if kyc is None:
            raise customers.CustomerNotFound(f"No customer {customer_id}.")
        if kyc != "verified":
            raise CustomerNotVerified(f"The customer is {kyc}; accounts open only for verified customers.")
        for _ in range(10):
            try:
                with unit_of_work(savepoint=True):
                    account = BankAccount.objects.create(
                        number=new_account_number(),
                        customer_id=customer_id,
                        currency=currency,
                        created_at=now,
                        updated_at=now,
                    )
                    ledger.open_account(account_id=account.id, currency=currency)
                    publish(
                        AccountCreated(
                            account_id=str(account.id),
                            customer_id=str(customer_id),
                            currency=currency,
                            created_at=rfc3339(now),
                        ),
                        occurred_at=now,
                    )
                    return account
            except IntegrityError:
                continue  # another account drew the same number: draw again
    raise RuntimeError("Could not draw a free account number in 10 tries")


def _account_for_update(account_id: uuid.UUID) -> BankAccount:
    account = BankAccount.objects.select_for_update().filter(pk=account_id).first()
    if account is None:
        raise AccountNotFound(f"No account {account_id}.")
    return account


def _change_status(
    *,
    account_id: uuid.UUID,
    allowed_from: set[str],
    to: str,
    event_class: type[AccountBlocked] | type[AccountUnblocked] | type[AccountClosed],
    reason: str,
    changed_by: str,
    now: datetime | None,
) -> BankAccount:
    now = now or timezone.now()
    with unit_of_work():
        account = _account_for_update(account_id)
        if account.status not in allowed_from:
            raise InvalidAccountStatus(f"The account is {account.status}.", status_now=account.status)
        if to == BankAccount.Status.CLOSED:
            balance = ledger.balances_of([account.id]).get(account.id)
            if balance is not None and (balance.balance != 0 or balance.held != 0):
                raise AccountNotEmpty(
                    f"The account holds {balance.balance} with {balance.held} on hold; it must be zero to close."
                )
            account.closed_at = now
        account.status = to
        account.status_reason = reason
        account.updated_at = now
        account.save(update_fields=["status", "status_reason", "updated_at", "closed_at"])
        publish(
            event_class(
                account_id=str(account.id),
                customer_id=str(account.customer_id),
                status=to,
                reason=reason,
                changed_by=changed_by,
                changed_at=rfc3339(now),
            ),
            occurred_at=now,
        )
    return account


def account_block(*, account_id: uuid.UUID, reason: str, changed_by: str, now: datetime | None = None) -> BankAccount:
    return _change_status(
        account_id=account_id,
        allowed_from={BankAccount.Status.ACTIVE},
        to=BankAccount.Status.BLOCKED,
        event_class=AccountBlocked,
        reason=reason,
        changed_by=changed_by,
        now=now,
    )


def account_unblock(*, account_id: uuid.UUID, reason: str, changed_by: str, now: datetime | None = None) -> BankAccount:
    return _change_status(
        account_id=account_id,
        allowed_from={BankAccount.Status.BLOCKED},
        to=BankAccount.Status.ACTIVE,
        event_class=AccountUnblocked,
        reason=reason,
        changed_by=changed_by,
        now=now,
    )


def account_close(*, account_id: uuid.UUID, reason: str, changed_by: str, now: datetime | None = None) -> BankAccount:
    return _change_status(
        account_id=account_id,
        allowed_from={BankAccount.Status.ACTIVE, BankAccount.Status.BLOCKED},
        to=BankAccount.Status.CLOSED,
        event_class=AccountClosed,
        reason=reason,
        changed_by=changed_by,
        now=now,
    )
