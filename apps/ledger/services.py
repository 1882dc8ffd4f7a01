"""Commands of the ledger: posting journal transactions, holds, reversals, opening accounts.

Every command locks the ledger accounts it touches with SELECT ... FOR UPDATE in one fixed
order (by id), so concurrent postings neither lose an update nor deadlock, and checks the
available balance of accounts that may not go negative while holding those locks.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from apps.ledger.errors import (
    AlreadyReversed,
    HoldNotActive,
    InsufficientFunds,
    InvalidPosting,
    LedgerAccountNotFound,
    LedgerCurrencyMismatch,
    UnbalancedTransaction,
)
from apps.ledger.events import LedgerEntryWritten
from apps.ledger.models import Hold, JournalEntry, JournalTransaction, LedgerAccount, Side
from fintech.money import CURRENCY_EXPONENTS
from outbox.publisher import publish, rfc3339

SYSTEM_PURPOSES: dict[str, tuple[str, str, bool]] = {
    # purpose: (type, normal side, may go negative)
    "settlement": (LedgerAccount.Type.ASSET, Side.DEBIT, True),
    "clearing": (LedgerAccount.Type.LIABILITY, Side.CREDIT, True),
    "fees": (LedgerAccount.Type.INCOME, Side.CREDIT, True),
    "suspense": (LedgerAccount.Type.LIABILITY, Side.CREDIT, True),
}


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of a journal transaction."""

    account_id: uuid.UUID
    side: str
    amount: int
    currency: str


@dataclass(frozen=True)
class JournalRequest:
    posting_key: str
    kind: str
    postings: Sequence[Posting]
    description: str = ""
    reference: str = ""
    reverses_id: uuid.UUID | None = None
    consumes_hold_key: str | None = None


def system_account_code(purpose: str, currency: str) -> str:
    return f"system:{purpose}:{currency}"


def customer_account_code(owner_ref: uuid.UUID) -> str:
    return f"customer:{owner_ref}"


def _validate(request: JournalRequest) -> None:
    if len(request.postings) < 2:
        raise InvalidPosting("A journal transaction needs at least two entries.")
    if request.kind not in JournalTransaction.Kind.values:
        raise InvalidPosting(f"Unknown journal transaction kind {request.kind!r}.")
    totals: dict[str, int] = defaultdict(int)
    for posting in request.postings:
        if isinstance(posting.amount, bool) or not isinstance(posting.amount, int) or posting.amount <= 0:
            raise InvalidPosting("Every entry amount is a positive whole number of minor units.")
        if posting.side not in (Side.DEBIT, Side.CREDIT):
            raise InvalidPosting(f"Unknown entry side {posting.side!r}.")
        if posting.currency not in CURRENCY_EXPONENTS:
            raise InvalidPosting(f"Unknown currency {posting.currency!r}.")
        totals[posting.currency] += posting.amount if posting.side == Side.DEBIT else -posting.amount
    unbalanced = {currency: total for currency, total in totals.items() if total}
    if unbalanced:
        raise UnbalancedTransaction(f"Debits and credits differ per currency: {unbalanced}.")


def _signed_for(account: LedgerAccount, side: str, amount: int) -> int:
    """The change of the account's balance, positive on its normal side."""
    return amount if side == account.normal_side else -amount


@transaction.atomic
def post_transactions(requests: Sequence[JournalRequest], *, now: datetime | None = None) -> list[JournalTransaction]:
    """Post a batch of journal transactions atomically, with a few bulk statements.

    A request whose posting key was already posted is not posted again: its existing
    journal transaction is returned in its place (so a retried operation moves money once).
    The whole batch is refused if any request would leave an account below zero.
    """
    now = now or timezone.now()
    keys = [request.posting_key for request in requests]
    if len(set(keys)) != len(keys):
        raise InvalidPosting("A batch may not post one posting key twice.")
    for request in requests:
        _validate(request)

    account_ids = sorted({posting.account_id for request in requests for posting in request.postings})
    accounts = {a.id: a for a in LedgerAccount.objects.select_for_update().filter(id__in=account_ids).order_by("id")}
    missing = set(account_ids) - set(accounts)
    if missing:
        raise LedgerAccountNotFound(f"No ledger account {sorted(map(str, missing))[0]}.")

    # Read after the locks: a concurrent poster of the same key has committed by now.
    already = {t.posting_key: t for t in JournalTransaction.objects.filter(posting_key__in=keys)}
    hold_keys = [r.consumes_hold_key for r in requests if r.consumes_hold_key and r.posting_key not in already]
    holds = {h.hold_key: h for h in Hold.objects.select_for_update().filter(hold_key__in=hold_keys)}

    journal_rows: list[JournalTransaction] = []
    entry_rows: list[JournalEntry] = []
    touched: dict[uuid.UUID, LedgerAccount] = {}
    consumed: list[Hold] = []
    for request in requests:
        if request.posting_key in already:
            continue
        journal = JournalTransaction(
            id=uuid.uuid4(),
            posting_key=request.posting_key,
            kind=request.kind,
            reference=request.reference,
            description=request.description[:280],
            reverses_id=request.reverses_id,
            posted_at=now,
        )
        if request.consumes_hold_key:
            hold = holds.get(request.consumes_hold_key)
            if hold is None or hold.status != Hold.Status.ACTIVE:
                raise HoldNotActive(f"Hold {request.consumes_hold_key} is not active.")
            held_account = accounts[hold.account_id]
            held_account.held -= hold.amount
            hold.status = Hold.Status.POSTED
            hold.resolved_at = now
            hold.journal_transaction_id = journal.id
            consumed.append(hold)
            touched[held_account.id] = held_account
        for posting in request.postings:
            account = accounts[posting.account_id]
            if account.currency != posting.currency:
                raise LedgerCurrencyMismatch(f"{account.code} holds {account.currency}, not {posting.currency}.")
            account.balance += _signed_for(account, posting.side, posting.amount)
            touched[account.id] = account
            entry_rows.append(
                JournalEntry(
                    transaction_id=journal.id,
                    account_id=account.id,
                    side=posting.side,
                    amount=posting.amount,
                    currency=posting.currency,
                    balance_after=account.balance,
                    posted_at=now,
                )
            )
        for account in touched.values():
            if not account.allow_negative and account.balance - account.held < 0:
                raise InsufficientFunds(f"Account {account.owner_ref or account.code} has insufficient funds.")
        journal_rows.append(journal)

    if not journal_rows:
        return [already[key] for key in keys]
    JournalTransaction.objects.bulk_create(journal_rows)
    for batch in _entry_batches(entry_rows):
        JournalEntry.objects.bulk_create(batch)
    for account in touched.values():
        account.updated_at = now
    LedgerAccount.objects.bulk_update(list(touched.values()), ["balance", "held", "updated_at"])
    if consumed:
        Hold.objects.bulk_update(consumed, ["status", "resolved_at", "journal_transaction"])

    entries_by_journal: dict[uuid.UUID, list[JournalEntry]] = defaultdict(list)
    for entry in entry_rows:
        entries_by_journal[entry.transaction_id].append(entry)
    for journal in journal_rows:
        publish(_entry_written(journal, entries_by_journal[journal.id], accounts), occurred_at=now)

    posted = {journal.posting_key: journal for journal in journal_rows}
    return [posted.get(key) or already[key] for key in keys]


ENTRY_BATCH_ROWS = 4000


def _entry_batches(entries: list[JournalEntry]) -> Iterable[list[JournalEntry]]:
    """Insert statements of at most ~ENTRY_BATCH_ROWS rows that never split a journal
    transaction: PostgreSQL checks each statement's journal transactions balance."""
    batch: list[JournalEntry] = []
    for index, entry in enumerate(entries):
        batch.append(entry)
        last_of_journal = index + 1 == len(entries) or entries[index + 1].transaction_id != entry.transaction_id
        if last_of_journal and len(batch) >= ENTRY_BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _entry_written(
    journal: JournalTransaction, entries: Iterable[JournalEntry], accounts: dict[uuid.UUID, LedgerAccount]
) -> LedgerEntryWritten:
    return LedgerEntryWritten(
        transaction_id=str(journal.id),
        posting_key=journal.posting_key,
        kind=journal.kind,
        reference=journal.reference,
        reverses=str(journal.reverses_id) if journal.reverses_id else None,
        posted_at=rfc3339(journal.posted_at),
        entries=[
            {
                "entry_id": str(entry.entry_id),
                "ledger_account_id": str(entry.account_id),
                "account_id": str(accounts[entry.account_id].owner_ref)
                if accounts[entry.account_id].owner_ref
                else None,
                "side": entry.side,
                "amount": entry.amount,
                "currency": entry.currency,
                "balance_after": entry.balance_after,
            }
            for entry in entries
        ],
    )


def post_transaction(request: JournalRequest, *, now: datetime | None = None) -> JournalTransaction:
    return post_transactions([request], now=now)[0]


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
    if currency not in CURRENCY_EXPONENTS:
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


def _account_of(owner_ref: uuid.UUID) -> LedgerAccount:
    account = LedgerAccount.objects.filter(owner_ref=owner_ref).first()
    if account is None:
        raise LedgerAccountNotFound(f"No ledger account backs account {owner_ref}.")
    return account


def hold_place(*, owner_ref: uuid.UUID, amount: int, currency: str, hold_key: str, now: datetime | None = None) -> Hold:
    """Set `amount` aside on the account. Placing the same hold key again returns the first."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise InvalidPosting("A hold is a positive whole number of minor units.")
    now = now or timezone.now()
    with transaction.atomic():
        account = LedgerAccount.objects.select_for_update().get(pk=_account_of(owner_ref).pk)
        existing = Hold.objects.filter(hold_key=hold_key).first()
        if existing is not None:
            return existing
        if account.currency != currency:
            raise LedgerCurrencyMismatch(f"The account holds {account.currency}, not {currency}.")
        if not account.allow_negative and account.balance - account.held < amount:
            raise InsufficientFunds("The available balance does not cover this amount.")
        account.held += amount
        account.updated_at = now
        account.save(update_fields=["held", "updated_at"])
        return Hold.objects.create(hold_key=hold_key, account=account, amount=amount, currency=currency, created_at=now)


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
    returns the journal transaction it already produced."""
    hold = Hold.objects.select_related("journal_transaction").filter(hold_key=hold_key).first()
    if hold is None:
        raise HoldNotActive(f"No hold {hold_key}.")
    if hold.status == Hold.Status.POSTED and hold.journal_transaction is not None:
        return hold.journal_transaction
    destination = _account_of(to_owner_ref)
    request = JournalRequest(
        posting_key=hold_key,
        kind=kind,
        reference=reference,
        description=description,
        consumes_hold_key=hold_key,
        postings=[
            Posting(account_id=hold.account_id, side=Side.DEBIT, amount=hold.amount, currency=hold.currency),
            Posting(account_id=destination.id, side=Side.CREDIT, amount=hold.amount, currency=hold.currency),
        ],
    )
    return post_transaction(request, now=now)


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


def deposit_post(
    *, owner_ref: uuid.UUID, amount: int, currency: str, posting_key: str, reference: str, now: datetime | None = None
) -> JournalTransaction:
    """Cash came in: debit the bank's settlement account, credit the customer's."""
    account = _account_of(owner_ref)
    settlement = system_account("settlement", currency)
    return post_transaction(
        JournalRequest(
            posting_key=posting_key,
            kind=JournalTransaction.Kind.DEPOSIT,
            reference=reference,
            description=f"Deposit {reference}",
            postings=[
                Posting(account_id=settlement.id, side=Side.DEBIT, amount=amount, currency=currency),
                Posting(account_id=account.id, side=Side.CREDIT, amount=amount, currency=currency),
            ],
        ),
        now=now,
    )


def journal_reverse(*, transaction_id: uuid.UUID, reason: str, now: datetime | None = None) -> JournalTransaction:
    """Post the mirror image of a journal transaction: the only way to undo a posting."""
    original = JournalTransaction.objects.prefetch_related("entries").filter(pk=transaction_id).first()
    if original is None:
        raise InvalidPosting(f"No journal transaction {transaction_id}.")
    if original.kind == JournalTransaction.Kind.REVERSAL:
        raise InvalidPosting("A reversal is not reversed; post a new transaction instead.")
    if JournalTransaction.objects.filter(reverses_id=original.id).exists():
        raise AlreadyReversed(f"Journal transaction {original.id} was already reversed.")
    flipped = {Side.DEBIT: Side.CREDIT, Side.CREDIT: Side.DEBIT}
    return post_transaction(
        JournalRequest(
            posting_key=f"reversal:{original.id}",
            kind=JournalTransaction.Kind.REVERSAL,
            reference=str(original.id),
            description=f"Reversal: {reason}"[:280],
            reverses_id=original.id,
            postings=[
                Posting(account_id=e.account_id, side=flipped[Side(e.side)], amount=e.amount, currency=e.currency)
                for e in original.entries.all()
            ],
        ),
        now=now,
    )
