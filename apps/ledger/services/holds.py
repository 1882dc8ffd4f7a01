"""Holds: money set aside on an account for an operation in flight (a transfer, a payment).

The ledger owns the hold's key: `hold_key("transfer", id)`. Other contexts name the operation
and its id and never spell the key themselves, so a key built two ways cannot leave a
transfer waiting forever on a hold that is not there (a missing hold raises `HoldNotFound`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.ledger.errors import (
    CurrencyMismatch,
    HoldNotActive,
    HoldNotFound,
    InsufficientFunds,
    InvalidPosting,
    LedgerAccountNotFound,
)
from apps.ledger.models import Hold, JournalTransaction, LedgerAccount, Side
from apps.ledger.services.posting import Book, JournalRequest, Posting
from fintech.errors import DomainError
from fintech.money import is_minor_units
from fintech.sql import update_rows
from outbox.unit_of_work import unit_of_work

OPERATIONS = ("transfer", "payment")


def hold_key(operation: str, operation_id: uuid.UUID | str) -> str:
    """The key of the hold of one operation: the one place that spells it."""
    if operation not in OPERATIONS:
        raise InvalidPosting(f"Unknown operation {operation!r} for a hold.")
    return f"{operation}:{uuid.UUID(str(operation_id))}"


_PLACE_SQL = """
UPDATE {accounts} SET held = held + %s, updated_at = %s
 WHERE owner_ref = %s AND currency = %s AND (allow_negative OR balance - held >= %s)
   AND NOT EXISTS (SELECT 1 FROM {holds} WHERE hold_key = %s)
RETURNING id
"""
# PostgreSQL places the hold in one statement: the balance check, the held amount and the
# hold row, or nothing at all.
_PLACE_SQL_POSTGRESQL = """
WITH account AS ({update})
INSERT INTO {holds} (id, hold_key, account_id, amount, currency, status, created_at)
SELECT %s, %s, account.id, %s, %s, 'active', %s FROM account
RETURNING account_id
"""


def hold_place(*, owner_ref: uuid.UUID, amount: int, currency: str, hold_key: str, now: datetime | None = None) -> Hold:
    """Set `amount` aside on the account. Placing the same hold key again returns the first."""
    if not is_minor_units(amount):
        raise InvalidPosting("A hold is a positive whole number of minor units.")
    now = now or timezone.now()
    if not connection.in_atomic_block:
        with transaction.atomic():
            return hold_place(owner_ref=owner_ref, amount=amount, currency=currency, hold_key=hold_key, now=now)
    moment = connection.ops.adapt_datetimefield_value(now)
    owner = owner_ref if connection.vendor == "postgresql" else owner_ref.hex
    update = _PLACE_SQL.format(accounts=LedgerAccount._meta.db_table, holds=Hold._meta.db_table)
    update_params = [amount, moment, owner, currency, amount, hold_key]
    hold = Hold(id=uuid.uuid4(), hold_key=hold_key, amount=amount, currency=currency, created_at=now)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                _PLACE_SQL_POSTGRESQL.format(update=update, holds=Hold._meta.db_table),
                [*update_params, hold.id, hold_key, amount, currency, moment],
            )
            placed = cursor.fetchone()
            if placed is not None:
                hold.account_id = placed[0]
                return hold
        else:
            cursor.execute(update, update_params)
            placed = cursor.fetchone()
            if placed is not None:
                hold.account_id = uuid.UUID(str(placed[0]))
                hold.save(force_insert=True)
                return hold
    # Nothing was set aside: say why (reads only; nothing was written).
    existing = Hold.objects.filter(hold_key=hold_key).first()
    if existing is not None:
        return existing
    account = LedgerAccount.objects.filter(owner_ref=owner_ref).first()
    if account is None:
        raise LedgerAccountNotFound(f"No ledger account backs account {owner_ref}.")
    if account.currency != currency:
        raise CurrencyMismatch(f"The account holds {account.currency}, not {currency}.")
    raise InsufficientFunds("The available balance does not cover this amount.")


@dataclass(frozen=True, slots=True)
class HoldRequest:
    """Set `amount` aside on the account behind bank account `owner_ref`, under `hold_key`."""

    owner_ref: uuid.UUID
    amount: int
    currency: str
    hold_key: str


def holds_place(requests: Sequence[HoldRequest], *, now: datetime | None = None) -> list[Hold | DomainError]:
    """Place many holds together, each refused or placed on its own: four statements, however
    many (lock the accounts in id order, read the keys already held, insert the holds, update
    what the accounts hold). Per request, in order: the hold (the one placed earlier under the
    same key, if any), or the refusal (`InsufficientFunds`, `CurrencyMismatch`,
    `LedgerAccountNotFound`, `InvalidPosting`). Holds on one account are taken in order, each
    against what the earlier ones left available."""
    now = now or timezone.now()
    if not requests:
        return []
    with unit_of_work():
        owners = sorted({request.owner_ref for request in requests})
        accounts = {
            a.owner_ref: a
            for a in LedgerAccount.objects.select_for_update().filter(owner_ref__in=owners).order_by("id")
        }
        existing = {h.hold_key: h for h in Hold.objects.filter(hold_key__in=[r.hold_key for r in requests])}
        outcomes: list[Hold | DomainError] = []
        placed: list[Hold] = []
        for request in requests:
            if request.hold_key in existing:
                outcomes.append(existing[request.hold_key])
                continue
            outcomes.append(_hold_in_memory(request, accounts.get(request.owner_ref), now))
            if isinstance(outcomes[-1], Hold):
                existing[request.hold_key] = outcomes[-1]
                placed.append(outcomes[-1])
        if placed:
            Hold.objects.bulk_create(placed)
            touched = {hold.account_id for hold in placed}
            update_rows(
                LedgerAccount,
                ("held",),
                [(a.id, a.held) for a in accounts.values() if a.id in touched],
                extra={"updated_at": now},
            )
    return outcomes


def _hold_in_memory(request: HoldRequest, account: LedgerAccount | None, now: datetime) -> Hold | DomainError:
    if not is_minor_units(request.amount):
        return InvalidPosting("A hold is a positive whole number of minor units.")
    if account is None:
        return LedgerAccountNotFound(f"No ledger account backs account {request.owner_ref}.")
    if account.currency != request.currency:
        return CurrencyMismatch(f"The account holds {account.currency}, not {request.currency}.")
    if not account.allow_negative and account.balance - account.held < request.amount:
        return InsufficientFunds("The available balance does not cover this amount.")
    account.held += request.amount
    return Hold(
        id=uuid.uuid4(),
        hold_key=request.hold_key,
        account_id=account.id,
        amount=request.amount,
        currency=request.currency,
        created_at=now,
    )


_LOCK_FOR_POSTING_SQL = """
WITH wanted(hold_key, owner_ref) AS (VALUES {wanted})
SELECT h.hold_key, h.id, h.account_id, h.amount, h.currency, h.status, h.journal_transaction_id,
       a.id, a.code, a.currency, a.normal_side, a.allow_negative, a.balance, a.held, a.owner_ref
  FROM wanted w
  JOIN {holds} h ON h.hold_key = w.hold_key
  JOIN {accounts} a ON a.id = h.account_id OR a.owner_ref = w.owner_ref
 ORDER BY a.id{lock}
"""


def _uuid(value: object) -> uuid.UUID:
    return uuid.UUID(str(value))


def _uuid_or_none(value: object) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


@dataclass(frozen=True, slots=True)
class HoldPosting:
    """Post the hold `hold_key` to the account behind bank account `to_owner_ref`."""

    hold_key: str
    to_owner_ref: uuid.UUID
    kind: str
    reference: str = ""
    description: str = ""


def _lock_for_posting(
    postings: Sequence[HoldPosting],
) -> tuple[dict[str, Hold], dict[uuid.UUID, LedgerAccount]]:
    """The holds and every account their postings touch, locked in account id order, in one
    statement."""
    postgres = connection.vendor == "postgresql"
    wanted = ", ".join(["(%s, %s::uuid)" if postgres else "(%s, %s)"] * len(postings))
    params: list[Any] = []
    for posting in postings:
        params += [posting.hold_key, posting.to_owner_ref if postgres else posting.to_owner_ref.hex]
    sql = _LOCK_FOR_POSTING_SQL.format(
        wanted=wanted,
        holds=Hold._meta.db_table,
        accounts=LedgerAccount._meta.db_table,
        lock=" FOR UPDATE OF h, a" if connection.features.has_select_for_update else "",
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    holds: dict[str, Hold] = {}
    accounts: dict[uuid.UUID, LedgerAccount] = {}
    for row in rows:
        if row[0] not in holds:
            holds[row[0]] = Hold(
                id=_uuid(row[1]),
                hold_key=row[0],
                account_id=_uuid(row[2]),
                amount=row[3],
                currency=row[4],
                status=row[5],
                journal_transaction_id=_uuid_or_none(row[6]),
            )
        account_id = _uuid(row[7])
        if account_id not in accounts:
            accounts[account_id] = LedgerAccount(
                id=account_id,
                code=row[8],
                currency=row[9],
                normal_side=row[10],
                allow_negative=bool(row[11]),
                balance=row[12],
                held=row[13],
                owner_ref=_uuid_or_none(row[14]),
            )
    return holds, accounts


def holds_post(postings: Sequence[HoldPosting], *, now: datetime | None = None) -> list[JournalTransaction | None]:
    """Post many holds together: one lock statement and four writes, however many.

    Per posting, in order: the journal transaction (posted now, or already before: posting
    twice moves money once), or None for a hold that was voided (its operation failed first:
    nothing moves). A hold that was never placed raises `HoldNotFound` for the whole batch:
    the operation and the books disagree, and a person must look.
    """
    now = now or timezone.now()
    if not postings:
        return []
    with unit_of_work():
        holds, accounts = _lock_for_posting(postings)
        book = Book(accounts, now)
        outcomes: list[JournalTransaction | str | None] = []
        by_owner = {account.owner_ref: account for account in accounts.values() if account.owner_ref}
        for posting in postings:
            hold = holds.get(posting.hold_key)
            if hold is None:
                raise HoldNotFound(f"No hold {posting.hold_key}.")
            if hold.status == Hold.Status.POSTED and hold.journal_transaction_id is not None:
                outcomes.append(str(hold.journal_transaction_id))
                continue
            if hold.status != Hold.Status.ACTIVE:
                outcomes.append(None)
                continue
            destination = by_owner.get(posting.to_owner_ref)
            if destination is None:
                raise LedgerAccountNotFound(f"No ledger account backs account {posting.to_owner_ref}.")
            outcomes.append(
                book.post(
                    JournalRequest(
                        posting_key=posting.hold_key,
                        kind=posting.kind,
                        reference=posting.reference,
                        description=posting.description,
                        consumes_hold_key=posting.hold_key,
                        postings=[
                            Posting(
                                account_id=hold.account_id, side=Side.DEBIT, amount=hold.amount, currency=hold.currency
                            ),
                            Posting(
                                account_id=destination.id, side=Side.CREDIT, amount=hold.amount, currency=hold.currency
                            ),
                        ],
                    ),
                    hold=hold,
                )
            )
        book.write()
        earlier = [outcome for outcome in outcomes if isinstance(outcome, str)]
        found = {str(j.id): j for j in JournalTransaction.objects.filter(pk__in=earlier)} if earlier else {}
    return [found[outcome] if isinstance(outcome, str) else outcome for outcome in outcomes]


def hold_post(
    *,
    hold_key: str,
    to_owner_ref: uuid.UUID,
    kind: str,
    reference: str = "",
    description: str = "",
    now: datetime | None = None,
) -> JournalTransaction:
    """Turn an active hold into a posted transfer to `to_owner_ref`'s account. Posting it again
    returns the journal transaction it already produced; a voided hold raises `HoldNotActive`,
    a hold that was never placed `HoldNotFound`."""
    posting = HoldPosting(
        hold_key=hold_key, to_owner_ref=to_owner_ref, kind=kind, reference=reference, description=description
    )
    (journal,) = holds_post([posting], now=now)
    if journal is None:
        raise HoldNotActive(f"Hold {hold_key} was voided.")
    return journal


def hold_void(*, hold_key: str, now: datetime | None = None) -> Hold | None:
    """Release an active hold. Voiding a voided hold, or one that never existed, does nothing;
    a posted hold cannot be voided (reverse its transaction instead)."""
    now = now or timezone.now()
    with transaction.atomic():
        hold = Hold.objects.filter(hold_key=hold_key).first()
        if hold is None:
            return None
        account = LedgerAccount.objects.select_for_update().get(pk=hold.account_id)
        hold = Hold.objects.select_for_update().get(pk=hold.pk)
        if hold.status == Hold.Status.VOIDED:
            return hold
        if hold.status == Hold.Status.POSTED:
            raise HoldNotActive(f"Hold {hold_key} was already posted.")
        account.held -= hold.amount
        account.updated_at = now
        account.save(update_fields=["held", "updated_at"])
        hold.status = Hold.Status.VOIDED
        hold.resolved_at = now
        hold.save(update_fields=["status", "resolved_at"])
        return hold
