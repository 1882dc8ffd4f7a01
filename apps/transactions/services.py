"""Commands of the transactions context: transfers through the choreography, and deposits."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts import public as accounts
from apps.accounts.public import AccountSnapshot
from apps.ledger import public as ledger
from apps.transactions.events import (
    DepositCompleted,
    TransactionCompleted,
    TransactionFailed,
    TransactionInitiated,
    TransactionValidated,
)
from apps.transactions.models import Deposit, Transfer
from fintech.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from fintech.money import CURRENCY_EXPONENTS
from outbox.publisher import publish, rfc3339


class AccountNotFound(NotFound):
    code = "account_not_found"
    title = "Account not found"


class TransferNotFound(NotFound):
    code = "transfer_not_found"
    title = "Transfer not found"


class CurrencyMismatch(Unprocessable):
    code = "currency_mismatch"
    title = "The currency does not match the account"


class AccountBlocked(Conflict):
    code = "account_blocked"
    title = "The account is blocked"


class AccountClosed(Conflict):
    code = "account_closed"
    title = "The account is closed"


class DuplicateReference(Conflict):
    code = "duplicate_reference"
    title = "A deposit with this reference already exists"


def validate_money(amount: object, currency: str) -> int:
    """The contract's rules for an amount: a whole number of minor units, > 0, <= the maximum."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationFailed("amount is a whole number of minor units.", errors={"amount": ["Must be an integer."]})
    if amount <= 0:
        raise ValidationFailed(
            "amount must be greater than zero.", code="invalid_amount", errors={"amount": ["Must be > 0."]}
        )
    if amount > settings.FINTECH_MAX_AMOUNT:
        raise ValidationFailed(
            f"amount may not exceed {settings.FINTECH_MAX_AMOUNT}.",
            code="amount_too_large",
            errors={"amount": [f"Must be <= {settings.FINTECH_MAX_AMOUNT}."]},
        )
    if currency not in CURRENCY_EXPONENTS or currency not in settings.FINTECH_SUPPORTED_CURRENCIES:
        raise ValidationFailed(
            f"The bank does not move {currency}.", code="unsupported_currency", errors={"currency": ["Unsupported."]}
        )
    return amount


def _ensure_open(account: AccountSnapshot, role: str) -> None:
    if account.status == "blocked":
        raise AccountBlocked(f"The {role} account is blocked.")
    if account.status == "closed":
        raise AccountClosed(f"The {role} account is closed.")


def transfer_hold_key(transfer_id: uuid.UUID) -> str:
    return f"transfer:{transfer_id}"


def transfer_initiate(
    *,
    from_account_id: uuid.UUID,
    to_account_id: uuid.UUID,
    amount: int,
    currency: str,
    initiated_by: str,
    description: str = "",
    on_behalf_of: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Transfer:
    """Accept a transfer and hold its amount on the source account, or refuse it whole.

    `on_behalf_of` is the customer whose token asked: the source must be theirs. Every refusal
    raises before anything is written.
    """
    now = now or timezone.now()
    validate_money(amount, currency)
    if from_account_id == to_account_id:
        raise ValidationFailed(
            "A transfer needs two different accounts.",
            code="same_account",
            errors={"to_account_id": ["Must differ from from_account_id."]},
        )
    with transaction.atomic():
        # Lock both accounts (in a fixed order) so neither can be blocked or closed before commit.
        snapshots = {
            account_id: accounts.account_snapshot(account_id, lock=True)
            for account_id in sorted([from_account_id, to_account_id])
        }
        source, destination = snapshots[from_account_id], snapshots[to_account_id]
        if source is None or (on_behalf_of is not None and source.customer_id != on_behalf_of):
            raise AccountNotFound(f"No account {from_account_id}.")
        if destination is None:
            raise AccountNotFound(f"No account {to_account_id}.")
        if source.currency != currency or destination.currency != currency:
            raise CurrencyMismatch(
                f"The transfer is in {currency}; the accounts hold {source.currency} and {destination.currency}."
            )
        _ensure_open(source, "source")
        _ensure_open(destination, "destination")
        transfer = Transfer.objects.create(
            from_account_id=source.id,
            to_account_id=destination.id,
            from_customer_id=source.customer_id,
            to_customer_id=destination.customer_id,
            amount=amount,
            currency=currency,
            description=description,
            initiated_by=initiated_by,
            created_at=now,
            updated_at=now,
        )
        ledger.place_hold(
            account_id=source.id, amount=amount, currency=currency, hold_key=transfer_hold_key(transfer.id)
        )
        publish(
            TransactionInitiated(
                transfer_id=str(transfer.id),
                from_account_id=str(source.id),
                to_account_id=str(destination.id),
                amount=amount,
                currency=currency,
                customer_id=str(source.customer_id),
                description=description,
                initiated_at=rfc3339(now),
            ),
            occurred_at=now,
        )
    return transfer


def _transfer_for_update(transfer_id: uuid.UUID) -> Transfer:
    transfer = Transfer.objects.select_for_update().filter(pk=transfer_id).first()
    if transfer is None:
        raise TransferNotFound(f"No transfer {transfer_id}.")
    return transfer


def _transfer_fields(transfer: Transfer) -> dict[str, object]:
    return {
        "transfer_id": str(transfer.id),
        "from_account_id": str(transfer.from_account_id),
        "to_account_id": str(transfer.to_account_id),
        "amount": transfer.amount,
        "currency": transfer.currency,
    }


def transfer_screen(*, transfer_id: uuid.UUID, now: datetime | None = None) -> Transfer:
    """Decide whether an initiated transfer may be posted.

    Today every transfer whose accounts are still open passes (the fraud context will hook in
    here). Screening a transfer that is past `initiated` does nothing.
    """
    now = now or timezone.now()
    with transaction.atomic():
        transfer = _transfer_for_update(transfer_id)
        if transfer.status != Transfer.Status.INITIATED:
            return transfer
        for account_id, role in ((transfer.from_account_id, "source"), (transfer.to_account_id, "destination")):
            account = accounts.account_snapshot(account_id)
            if account is None or account.status != "active":
                code = "account_closed" if account is None or account.status == "closed" else "account_blocked"
                return _fail(transfer, code=code, detail=f"The {role} account is no longer active.", now=now)
        transfer.status = Transfer.Status.VALIDATED
        transfer.updated_at = now
        transfer.save(update_fields=["status", "updated_at"])
        publish(
            TransactionValidated(
                **_transfer_fields(transfer),  # type: ignore[arg-type]
                description=transfer.description,
                validated_at=rfc3339(now),
            ),
            occurred_at=now,
        )
    return transfer


def _fail(transfer: Transfer, *, code: str, detail: str, now: datetime) -> Transfer:
    transfer.status = Transfer.Status.FAILED
    transfer.failure_code = code
    transfer.failure_detail = detail[:280]
    transfer.updated_at = now
    transfer.save(update_fields=["status", "failure_code", "failure_detail", "updated_at"])
    publish(
        TransactionFailed(**_transfer_fields(transfer), failure_code=code, failed_at=rfc3339(now)),  # type: ignore[arg-type]
        occurred_at=now,
    )
    return transfer


def transfer_fail(*, transfer_id: uuid.UUID, code: str, detail: str = "", now: datetime | None = None) -> Transfer:
    """Fail a transfer that is still in flight; its hold is voided by the ledger."""
    now = now or timezone.now()
    with transaction.atomic():
        transfer = _transfer_for_update(transfer_id)
        if transfer.status in Transfer.FINAL:
            return transfer
        return _fail(transfer, code=code, detail=detail or code, now=now)


class TransferStateError(Conflict):
    code = "transfer_state_conflict"
    title = "The transfer is in a state that does not allow this"


def transfer_complete(
    *, transfer_id: uuid.UUID, journal_transaction_id: uuid.UUID, now: datetime | None = None
) -> Transfer:
    """The ledger posted the transfer: the money moved. Completing it again does nothing."""
    now = now or timezone.now()
    with transaction.atomic():
        transfer = _transfer_for_update(transfer_id)
        if transfer.status == Transfer.Status.COMPLETED:
            return transfer
        if transfer.status == Transfer.Status.FAILED:
            # The ledger only posts an active hold, and a failed transfer's hold is voided:
            # reaching this means the books and the transfer disagree. Let a person look.
            raise TransferStateError(f"Transfer {transfer.id} failed but the ledger posted it.")
        transfer.status = Transfer.Status.COMPLETED
        transfer.journal_transaction_id = journal_transaction_id
        transfer.completed_at = now
        transfer.updated_at = now
        transfer.save(update_fields=["status", "journal_transaction_id", "completed_at", "updated_at"])
        publish(
            TransactionCompleted(
                **_transfer_fields(transfer),  # type: ignore[arg-type]
                journal_transaction_id=str(journal_transaction_id),
                completed_at=rfc3339(now),
            ),
            occurred_at=now,
        )
    return transfer


def deposit_make(
    *, account_id: uuid.UUID, amount: int, currency: str, reference: str, made_by: str, now: datetime | None = None
) -> Deposit:
    """Credit an account with money that came from outside, against the settlement account."""
    now = now or timezone.now()
    validate_money(amount, currency)
    reference = reference.strip()
    if not reference:
        raise ValidationFailed("A deposit needs a reference.", errors={"reference": ["This field is required."]})
    try:
        with transaction.atomic():
            account = accounts.account_snapshot(account_id, lock=True)
            if account is None:
                raise AccountNotFound(f"No account {account_id}.")
            if account.currency != currency:
                raise CurrencyMismatch(f"The deposit is in {currency}; the account holds {account.currency}.")
            _ensure_open(account, "destination")
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
