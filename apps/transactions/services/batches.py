"""Many transfers in one request, each accepted or refused on its own by the rules of one
transfer (`transfers.request_refusal`, `transfer_accounts`), with set-based SQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import DatabaseError, IntegrityError
from django.utils import timezone

from apps.accounts import public as accounts
from apps.accounts.public import AccountSnapshot
from apps.ledger import public as ledger
from apps.transactions.errors import DuplicateItem, TransferIdReused
from apps.transactions.models import Transfer
from apps.transactions.services.transfers import initiated_event, new_transfer, request_refusal, transfer_accounts
from fintech.errors import DomainError
from fintech.sql import lost_to_another_transaction
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work


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
    refusal = request_refusal(
        amount=request.amount,
        currency=request.currency,
        from_account_id=request.from_account_id,
        to_account_id=request.to_account_id,
    )
    if refusal is not None:
        return refusal
    checked = transfer_accounts(
        snapshots,
        from_account_id=request.from_account_id,
        to_account_id=request.to_account_id,
        currency=request.currency,
        on_behalf_of=on_behalf_of,
    )
    return checked if isinstance(checked, DomainError) else None


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
            transfer = new_transfer(
                snapshots[request.from_account_id],
                snapshots[request.to_account_id],
                amount=request.amount,
                currency=request.currency,
                description=request.description,
                by=initiated_by,
                now=now,
                transfer_id=request.id,
            )
            created.append(transfer)
            outcomes[index] = BatchItemOutcome(id=request.id, transfer=transfer)
        Transfer.objects.bulk_create(created)
        for transfer in created:
            uow.remember(transfer)
            publish(initiated_event(transfer, on_behalf_of=on_behalf_of, now=now), occurred_at=now)
    # The created transfers are as the choreography's steps left them (remembered by the unit).
    return [outcomes[index] for index in range(len(requests))]
