"""Commands of the transactions context: transfers through the choreography, and deposits."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, IntegrityError
from django.utils import timezone

from apps.accounts import public as accounts
from apps.accounts.public import AccountSnapshot
from apps.ledger import public as ledger
from apps.transactions.events import (
    DepositCompleted,
    TransactionCompleted,
    TransactionFailed,
    TransactionHeldForReview,
    TransactionInitiated,
    TransactionValidated,
)
from apps.transactions.models import Deposit, Transfer
from fintech.errors import Conflict, DomainError, NotFound, Unprocessable, ValidationFailed
from fintech.events import rfc3339
from fintech.faults import crash_point
from fintech.money import CURRENCY_EXPONENTS
from fintech.sql import lost_to_another_transaction, update_rows
from outbox.publisher import publish
from outbox.unit_of_work import current as current_unit
from outbox.unit_of_work import unit_of_work


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
    with unit_of_work() as uow:
        # Lock both accounts (in id order, in one statement) so neither can be blocked or
        # closed before this commits.
        snapshots = accounts.account_snapshots([from_account_id, to_account_id], lock=True)
        source, destination = snapshots.get(from_account_id), snapshots.get(to_account_id)
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
        uow.remember(transfer)  # the steps below this unit update it: the caller gets it as they left it
        ledger.place_hold(
            account_id=source.id, amount=amount, currency=currency, operation="transfer", operation_id=transfer.id
        )
        crash_point("after_hold")
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
                to_customer_id=str(destination.customer_id),
                initiated_by_customer=on_behalf_of is not None,
            ),
            occurred_at=now,
        )
    return transfer


def _transfers_for_update(transfer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Transfer]:
    """The transfers, locked in id order, in one statement; every one must exist. Transfers this
    unit of work created are taken as it holds them (nobody else can see them yet)."""
    uow = current_unit()
    found: dict[uuid.UUID, Transfer] = {}
    for transfer_id in transfer_ids:
        seen = uow.remembered(Transfer, transfer_id) if uow is not None else None
        if seen is not None:
            found[transfer_id] = seen
    wanted = set(transfer_ids) - set(found)
    if wanted:
        found.update((t.id, t) for t in Transfer.objects.select_for_update().filter(pk__in=wanted).order_by("id"))
    missing = [transfer_id for transfer_id in transfer_ids if transfer_id not in found]
    if missing:
        raise TransferNotFound(f"No transfer {missing[0]}.")
    return found


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


# How the transfer goes on after the fraud context's word on it.
_VALIDATE, _HOLD = "validate", "hold"
_AFTER_SCREENING = {"approve": _VALIDATE, "review": _HOLD, "reject": "fraud_rejected"}
_AFTER_REVIEW = {"approved": _VALIDATE, "rejected": "fraud_rejected", "expired": "review_expired"}
_FAILURE_DETAILS = {
    "fraud_rejected": "Refused by the bank's anti-fraud screening.",
    "review_expired": "The anti-fraud review was not decided in time.",
}


def transfers_screened(*, decisions: Mapping[uuid.UUID, str], now: datetime | None = None) -> list[Transfer]:
    """The fraud screening judged initiated transfers (transfer id -> approve, review or reject).

    Approved ones whose accounts are still active are validated (three statements for a batch),
    ones held for review wait for an analyst with their hold in place, rejected ones fail with
    `fraud_rejected` (the ledger voids the hold). A transfer whose account was blocked or closed
    meanwhile fails with that code instead. A transfer already past `initiated` is left alone.
    """
    return _transfers_continue(
        verdicts={transfer_id: _AFTER_SCREENING[decision] for transfer_id, decision in decisions.items()},
        waiting_in=Transfer.Status.INITIATED,
        now=now,
    )


def transfers_reviewed(*, decisions: Mapping[uuid.UUID, str], now: datetime | None = None) -> list[Transfer]:
    """A review ended (transfer id -> approved, rejected or expired): approved transfers are
    validated if their accounts are still active, the others fail (`fraud_rejected`,
    `review_expired`) and their holds are voided. A transfer not in review is left alone."""
    return _transfers_continue(
        verdicts={transfer_id: _AFTER_REVIEW[decision] for transfer_id, decision in decisions.items()},
        waiting_in=Transfer.Status.REVIEW,
        now=now,
    )


def _transfers_continue(*, verdicts: Mapping[uuid.UUID, str], waiting_in: str, now: datetime | None) -> list[Transfer]:
    now = now or timezone.now()
    with unit_of_work():
        transfers = _transfers_for_update(list(verdicts))
        waiting = [t for t in transfers.values() if t.status == waiting_in]
        if not waiting:
            return list(transfers.values())
        going_on = [t for t in waiting if verdicts[t.id] in (_VALIDATE, _HOLD)]
        # A transfer this unit of work created had its accounts checked under their locks, which
        # this transaction still holds: they cannot have been blocked or closed since. The others
        # waited in between (a worker's unit, a review): their accounts are read again.
        uow = current_unit()
        unchecked = [t for t in going_on if uow is None or uow.remembered(Transfer, t.id) is None]
        snapshots = (
            accounts.account_snapshots([i for t in unchecked for i in (t.from_account_id, t.to_account_id)])
            if unchecked
            else {}
        )
        checked = {t.id for t in going_on} - {t.id for t in unchecked}
        moving: dict[str, list[Transfer]] = {_VALIDATE: [], _HOLD: []}
        for transfer in waiting:
            verdict = verdicts[transfer.id]
            inactive = (
                _inactive_account(transfer, snapshots) if verdict in moving and transfer.id not in checked else None
            )
            if inactive is not None:
                _fail(transfer, code=inactive[0], detail=inactive[1], now=now)
            elif verdict in moving:
                moving[verdict].append(transfer)
            else:
                _fail(transfer, code=verdict, detail=_FAILURE_DETAILS[verdict], now=now)
        for verdict, status in ((_VALIDATE, Transfer.Status.VALIDATED), (_HOLD, Transfer.Status.REVIEW)):
            if moving[verdict]:
                Transfer.objects.filter(pk__in=[t.id for t in moving[verdict]]).update(status=status, updated_at=now)
            for transfer in moving[verdict]:
                transfer.status = status
                transfer.updated_at = now
                publish(_moved_event(transfer, now), occurred_at=now)
    return list(transfers.values())


def _moved_event(transfer: Transfer, now: datetime) -> TransactionValidated | TransactionHeldForReview:
    if transfer.status == Transfer.Status.VALIDATED:
        return TransactionValidated(
            **_transfer_fields(transfer),  # type: ignore[arg-type]
            description=transfer.description,
            validated_at=rfc3339(now),
        )
    return TransactionHeldForReview(
        **_transfer_fields(transfer),  # type: ignore[arg-type]
        customer_id=str(transfer.from_customer_id),
        held_at=rfc3339(now),
    )


def _inactive_account(transfer: Transfer, snapshots: dict[uuid.UUID, AccountSnapshot]) -> tuple[str, str] | None:
    """(failure code, detail) when one of the transfer's accounts is no longer active."""
    for account_id, role in ((transfer.from_account_id, "source"), (transfer.to_account_id, "destination")):
        account = snapshots.get(account_id)
        if account is None or account.status != "active":
            code = "account_closed" if account is None or account.status == "closed" else "account_blocked"
            return code, f"The {role} account is no longer active."
    return None


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
    with unit_of_work():
        transfer = _transfer_for_update(transfer_id)
        if transfer.status in Transfer.FINAL:
            return transfer
        return _fail(transfer, code=code, detail=detail or code, now=now)


class TransferStateError(Conflict):
    code = "transfer_state_conflict"
    title = "The transfer is in a state that does not allow this"


def transfers_complete(*, postings: Mapping[uuid.UUID, uuid.UUID], now: datetime | None = None) -> list[Transfer]:
    """The ledger posted these transfers (transfer id -> journal transaction id): the money
    moved. Two statements however many; completing one again does nothing."""
    now = now or timezone.now()
    with unit_of_work():
        transfers = _transfers_for_update(list(postings))
        completing = []
        for transfer in transfers.values():
            if transfer.status == Transfer.Status.COMPLETED:
                continue
            if transfer.status == Transfer.Status.FAILED:
                # The ledger only posts an active hold, and a failed transfer's hold is voided:
                # reaching this means the books and the transfer disagree. Let a person look.
                raise TransferStateError(f"Transfer {transfer.id} failed but the ledger posted it.")
            transfer.status = Transfer.Status.COMPLETED
            transfer.journal_transaction_id = postings[transfer.id]
            transfer.completed_at = now
            transfer.updated_at = now
            completing.append(transfer)
        update_rows(
            Transfer,
            ("journal_transaction_id",),
            [(t.id, t.journal_transaction_id) for t in completing],
            extra={"status": Transfer.Status.COMPLETED.value, "completed_at": now, "updated_at": now},
        )
        for transfer in completing:
            publish(
                TransactionCompleted(
                    **_transfer_fields(transfer),  # type: ignore[arg-type]
                    journal_transaction_id=str(transfer.journal_transaction_id),
                    completed_at=rfc3339(now),
                ),
                occurred_at=now,
            )
    return list(transfers.values())


def transfer_complete(
    *, transfer_id: uuid.UUID, journal_transaction_id: uuid.UUID, now: datetime | None = None
) -> Transfer:
    """The ledger posted the transfer: the money moved. Completing it again does nothing."""
    return transfers_complete(postings={transfer_id: journal_transaction_id}, now=now)[0]


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
        with unit_of_work(savepoint=True):
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


class DuplicateItem(ValidationFailed):
    code = "duplicate_item"
    title = "The batch names this transfer id twice"


class TransferIdReused(Unprocessable):
    code = "idempotency_key_reuse"
    title = "This transfer id was already used for another transfer"


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """One transfer of a batch. Its `id`, chosen by the client, is its idempotency key."""

    id: uuid.UUID
    from_account_id: uuid.UUID
    to_account_id: uuid.UUID
    amount: int
    currency: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class BatchItemOutcome:
    """What became of one transfer of a batch: the transfer (created now, or `replayed` when the
    same id and body came before), or the refusal."""

    id: uuid.UUID
    transfer: Transfer | None = None
    replayed: bool = False
    error: DomainError | None = None


def _refusal(
    request: TransferRequest, on_behalf_of: uuid.UUID | None, snapshots: dict[uuid.UUID, AccountSnapshot]
) -> DomainError | None:
    """Why this transfer is refused before any money is held, or None."""
    try:
        validate_money(request.amount, request.currency)
    except DomainError as error:
        return error
    if request.from_account_id == request.to_account_id:
        return ValidationFailed("A transfer needs two different accounts.", code="same_account")
    source, destination = snapshots.get(request.from_account_id), snapshots.get(request.to_account_id)
    if source is None or (on_behalf_of is not None and source.customer_id != on_behalf_of):
        return AccountNotFound(f"No account {request.from_account_id}.")
    if destination is None:
        return AccountNotFound(f"No account {request.to_account_id}.")
    if source.currency != request.currency or destination.currency != request.currency:
        return CurrencyMismatch(
            f"The transfer is in {request.currency}; the accounts hold {source.currency} and {destination.currency}."
        )
    try:
        _ensure_open(source, "source")
        _ensure_open(destination, "destination")
    except DomainError as error:
        return error
    return None


def _same_transfer(transfer: Transfer, request: TransferRequest) -> bool:
    return (
        transfer.from_account_id,
        transfer.to_account_id,
        transfer.amount,
        transfer.currency,
        transfer.description,
    ) == (
        request.from_account_id,
        request.to_account_id,
        request.amount,
        request.currency,
        request.description,
    )


# Runs of a batch that lost a race: for one of its ids to a batch on other accounts, or a deadlock.
BATCH_ATTEMPTS = 3


def transfers_initiate(
    *,
    requests: Sequence[TransferRequest],
    initiated_by: str,
    on_behalf_of: uuid.UUID | None = None,
    now: datetime | None = None,
) -> list[BatchItemOutcome]:
    """Accept many transfers at once, each accepted or refused on its own, with set-based SQL:
    the accounts are locked and the holds placed for the whole batch in a handful of statements,
    and the choreography's steps take the batch's events together.

    Per request, in order: the transfer (replayed when its id was already used for the same
    transfer), or the refusal (the same codes as one transfer, plus `duplicate_item` and
    `idempotency_key_reuse`). Refusals write nothing. The same batch sent many times at once
    (a client retrying from several connections) creates each transfer once: the others wait
    for it on the accounts' locks and answer with it, `replayed`.
    """
    now = now or timezone.now()
    attempts = 1
    while True:
        try:
            return _transfers_initiate(requests=requests, initiated_by=initiated_by, on_behalf_of=on_behalf_of, now=now)
        except IntegrityError:
            # A concurrent batch created one of these ids for other accounts (whose locks did not
            # queue this one) between the read and the insert. It has committed by now: read again,
            # and it is an earlier transfer (a replay, or a reused id).
            if attempts == BATCH_ATTEMPTS:
                raise
            attempts += 1
        except DatabaseError as error:
            # The database broke a deadlock with a worker (which may lock ledger accounts in several
            # statements) by aborting this batch: nothing of it stayed, so run it again.
            if attempts == BATCH_ATTEMPTS or not lost_to_another_transaction(error):
                raise
            attempts += 1


def _transfers_initiate(
    *, requests: Sequence[TransferRequest], initiated_by: str, on_behalf_of: uuid.UUID | None, now: datetime
) -> list[BatchItemOutcome]:
    outcomes: dict[int, BatchItemOutcome] = {}
    seen: set[uuid.UUID] = set()
    for index, request in enumerate(requests):
        if request.id in seen:
            outcomes[index] = BatchItemOutcome(
                id=request.id, error=DuplicateItem(f"Transfer {request.id} appears twice.")
            )
        seen.add(request.id)
    with unit_of_work(savepoint=True) as uow:
        wanted = [(i, r) for i, r in enumerate(requests) if i not in outcomes]
        # Lock every account the batch names (in id order, one statement) so none can be blocked
        # or closed before this commits, and before reading which ids exist: a concurrent batch
        # with the same transfers holds these locks until it commits, and is read after it.
        snapshots = accounts.account_snapshots(
            [a for _, r in wanted for a in (r.from_account_id, r.to_account_id)], lock=True
        )
        earlier = {t.id: t for t in Transfer.objects.filter(pk__in=seen)}
        for index, request in wanted:
            before = earlier.get(request.id)
            if before is not None:
                outcomes[index] = (
                    BatchItemOutcome(id=request.id, transfer=before, replayed=True)
                    if _same_transfer(before, request)
                    else BatchItemOutcome(id=request.id, error=TransferIdReused(f"Transfer {request.id} exists."))
                )
        fresh = [(i, r) for i, r in wanted if i not in outcomes]
        holdable = []
        for index, request in fresh:
            refusal = _refusal(request, on_behalf_of, snapshots)
            if refusal is None:
                holdable.append((index, request))
            else:
                outcomes[index] = BatchItemOutcome(id=request.id, error=refusal)
        held = ledger.place_holds(
            [
                ledger.HoldWanted(
                    account_id=r.from_account_id,
                    amount=r.amount,
                    currency=r.currency,
                    operation="transfer",
                    operation_id=r.id,
                )
                for _, r in holdable
            ]
        )
        created = []
        for (index, request), hold in zip(holdable, held, strict=True):
            if isinstance(hold, DomainError):
                outcomes[index] = BatchItemOutcome(id=request.id, error=hold)
                continue
            source, destination = snapshots[request.from_account_id], snapshots[request.to_account_id]
            transfer = Transfer(
                id=request.id,
                from_account_id=source.id,
                to_account_id=destination.id,
                from_customer_id=source.customer_id,
                to_customer_id=destination.customer_id,
                amount=request.amount,
                currency=request.currency,
                description=request.description,
                initiated_by=initiated_by,
                created_at=now,
                updated_at=now,
            )
            created.append(transfer)
            outcomes[index] = BatchItemOutcome(id=request.id, transfer=transfer)
        Transfer.objects.bulk_create(created)
        for transfer in created:
            uow.remember(transfer)
            publish(
                TransactionInitiated(
                    transfer_id=str(transfer.id),
                    from_account_id=str(transfer.from_account_id),
                    to_account_id=str(transfer.to_account_id),
                    amount=transfer.amount,
                    currency=transfer.currency,
                    customer_id=str(transfer.from_customer_id),
                    description=transfer.description,
                    initiated_at=rfc3339(now),
                    to_customer_id=str(transfer.to_customer_id),
                    initiated_by_customer=on_behalf_of is not None,
                ),
                occurred_at=now,
            )
    # The created transfers are as the choreography's steps left them (remembered by the unit).
    return [outcomes[index] for index in range(len(requests))]
