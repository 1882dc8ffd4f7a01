"""One transfer through the choreography: initiated (its amount held on the source account) ->
validated (screened by the fraud context, or held in review until an analyst approves) ->
completed (the ledger posted it), or failed (the ledger voids its hold)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from django.utils import timezone

from apps.accounts import public as accounts
from apps.accounts.public import AccountSnapshot
from apps.ledger import public as ledger
from apps.transactions.errors import TransferNotFound, TransferStateError
from apps.transactions.events import (
    TransferCompleted,
    TransferFailed,
    TransferHeldForReview,
    TransferInitiated,
    TransferValidated,
)
from apps.transactions.models import Transfer
from fintech.errors import DomainError, ValidationFailed
from fintech.events import rfc3339
from fintech.faults import crash_point
from fintech.money import validate_amount
from fintech.sql import update_rows
from outbox.publisher import publish
from outbox.unit_of_work import current as current_unit
from outbox.unit_of_work import unit_of_work


def request_refusal(
    *, amount: object, currency: str, from_account_id: uuid.UUID, to_account_id: uuid.UUID
) -> DomainError | None:
    """Why a transfer is refused whatever its accounts hold, or None (nothing read)."""
    try:
        validate_amount(amount, currency)
    except DomainError as error:
        return error
    if from_account_id == to_account_id:
        return ValidationFailed(
            "A transfer needs two different accounts.",
            code="same_account",
            errors={"to_account_id": ["Must differ from from_account_id."]},
        )
    return None


def transfer_accounts(
    snapshots: Mapping[uuid.UUID, AccountSnapshot],
    *,
    from_account_id: uuid.UUID,
    to_account_id: uuid.UUID,
    currency: str,
    on_behalf_of: uuid.UUID | None,
) -> tuple[AccountSnapshot, AccountSnapshot] | DomainError:
    """The source and destination accounts of a transfer, or why they refuse it. `on_behalf_of`
    is the customer whose token asked: the source must be theirs (another customer's account is
    not found)."""
    source, destination = snapshots.get(from_account_id), snapshots.get(to_account_id)
    if source is None or (on_behalf_of is not None and source.customer_id != on_behalf_of):
        return accounts.AccountNotFound(f"No account {from_account_id}.")
    if destination is None:
        return accounts.AccountNotFound(f"No account {to_account_id}.")
    return (
        accounts.account_refusal(source, currency=currency, role="source")
        or accounts.account_refusal(destination, currency=currency, role="destination")
        or (source, destination)
    )


def new_transfer(
    source: AccountSnapshot,
    destination: AccountSnapshot,
    *,
    amount: int,
    currency: str,
    description: str,
    by: str,
    now: datetime,
    transfer_id: uuid.UUID | None = None,
) -> Transfer:
    """An initiated transfer between two accounts that accept it, not saved yet."""
    return Transfer(
        id=transfer_id or uuid.uuid4(),
        from_account_id=source.id,
        to_account_id=destination.id,
        from_customer_id=source.customer_id,
        to_customer_id=destination.customer_id,
        amount=amount,
        currency=currency,
        description=description,
        initiated_by=by,
        created_at=now,
        updated_at=now,
    )


def initiated_event(transfer: Transfer, *, on_behalf_of: uuid.UUID | None, now: datetime) -> TransferInitiated:
    return TransferInitiated(
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
    )


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
    refusal = request_refusal(
        amount=amount, currency=currency, from_account_id=from_account_id, to_account_id=to_account_id
    )
    if refusal is not None:
        raise refusal
    with unit_of_work() as uow:
        # Lock both accounts (in id order, in one statement) so neither can be blocked or
        # closed before this commits.
        snapshots = accounts.account_snapshots([from_account_id, to_account_id], lock=True)
        checked = transfer_accounts(
            snapshots,
            from_account_id=from_account_id,
            to_account_id=to_account_id,
            currency=currency,
            on_behalf_of=on_behalf_of,
        )
        if isinstance(checked, DomainError):
            raise checked
        source, destination = checked
        transfer = new_transfer(
            source, destination, amount=amount, currency=currency, description=description, by=initiated_by, now=now
        )
        transfer.save(force_insert=True)
        uow.remember(transfer)  # the steps below this unit update it: the caller gets it as they left it
        ledger.place_hold(
            account_id=source.id, amount=amount, currency=currency, operation="transfer", operation_id=transfer.id
        )
        crash_point("after_hold")
        publish(initiated_event(transfer, on_behalf_of=on_behalf_of, now=now), occurred_at=now)
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


def _moved_event(transfer: Transfer, now: datetime) -> TransferValidated | TransferHeldForReview:
    if transfer.status == Transfer.Status.VALIDATED:
        return TransferValidated(
            **_transfer_fields(transfer),  # type: ignore[arg-type]
            description=transfer.description,
            validated_at=rfc3339(now),
        )
    return TransferHeldForReview(
        **_transfer_fields(transfer),  # type: ignore[arg-type]
        customer_id=str(transfer.from_customer_id),
        held_at=rfc3339(now),
    )


def _inactive_account(transfer: Transfer, snapshots: dict[uuid.UUID, AccountSnapshot]) -> tuple[str, str] | None:
    """(failure code, detail) when one of the transfer's accounts no longer takes its money."""
    for account_id, role in ((transfer.from_account_id, "source"), (transfer.to_account_id, "destination")):
        account = snapshots.get(account_id)
        if account is None:
            return accounts.AccountClosed.code, f"The {role} account is no longer active."
        refusal = accounts.account_refusal(account, currency=transfer.currency)
        if refusal is not None:
            return refusal.code, f"The {role} account is no longer active."
    return None


def _fail(transfer: Transfer, *, code: str, detail: str, now: datetime) -> Transfer:
    transfer.status = Transfer.Status.FAILED
    transfer.failure_code = code
    transfer.failure_detail = detail[:280]
    transfer.updated_at = now
    transfer.save(update_fields=["status", "failure_code", "failure_detail", "updated_at"])
    publish(
        TransferFailed(**_transfer_fields(transfer), failure_code=code, failed_at=rfc3339(now)),  # type: ignore[arg-type]
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
                TransferCompleted(
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
