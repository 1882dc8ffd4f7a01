"""Posting journal transactions: the only code that writes entries and moves balances.

A posting locks the ledger accounts it touches with one SELECT ... FOR UPDATE in id order (so
concurrent postings neither lose an update nor deadlock), computes the entries and the new
balances in memory while it holds those locks, refuses the whole batch if an account that may
not go negative would, and then writes with set-based SQL: one INSERT of the journal
transactions, one of all their entries, one UPDATE of all the balances, whatever the size of
the batch (docs/benchmarks.md has what that bought).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from apps.ledger.errors import (
    AlreadyReversed,
    CurrencyMismatch,
    HoldNotActive,
    InsufficientFunds,
    InvalidPosting,
    LedgerAccountNotFound,
    UnbalancedTransaction,
)
from apps.ledger.events import LedgerEntryWritten
from apps.ledger.models import Hold, JournalEntry, JournalTransaction, LedgerAccount, Side
from apps.ledger.services.chart import account_of, system_account
from fintech.events import rfc3339
from fintech.money import is_known_currency, is_minor_units
from fintech.sql import insert_rows, update_rows
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work


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


def validate_request(request: JournalRequest) -> None:
    if len(request.postings) < 2:
        raise InvalidPosting("A journal transaction needs at least two entries.")
    if request.kind not in JournalTransaction.Kind.values:
        raise InvalidPosting(f"Unknown journal transaction kind {request.kind!r}.")
    totals: dict[str, int] = defaultdict(int)
    for posting in request.postings:
        if not is_minor_units(posting.amount):
            raise InvalidPosting("Every entry amount is a positive whole number of minor units.")
        if posting.side not in (Side.DEBIT, Side.CREDIT):
            raise InvalidPosting(f"Unknown entry side {posting.side!r}.")
        if not is_known_currency(posting.currency):
            raise InvalidPosting(f"Unknown currency {posting.currency!r}.")
        totals[posting.currency] += posting.amount if posting.side == Side.DEBIT else -posting.amount
    unbalanced = {currency: total for currency, total in totals.items() if total}
    if unbalanced:
        raise UnbalancedTransaction(f"Debits and credits differ per currency: {unbalanced}.")


def lock_accounts(account_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, LedgerAccount]:
    """Lock the accounts, in id order, in one statement (rows of every other poster wait)."""
    ids = sorted(set(account_ids))
    return {a.id: a for a in LedgerAccount.objects.select_for_update().filter(id__in=ids).order_by("id")}


@dataclass(slots=True)
class EntryRow:
    """An entry on its way into the journal: the columns insert_rows writes, without a model
    instance per row (building those was a quarter of posting a batch)."""

    entry_id: uuid.UUID
    transaction_id: uuid.UUID
    account_id: uuid.UUID
    side: str
    amount: int
    currency: str
    balance_after: int
    posted_at: datetime


class Book:
    """Journal transactions computed in memory against locked accounts, written in a few
    statements by `write()`. Nothing is written if `post` raises."""

    def __init__(self, accounts: dict[uuid.UUID, LedgerAccount], now: datetime) -> None:
        self.accounts = accounts
        self.now = now
        self.journals: list[JournalTransaction] = []
        self.entries: dict[uuid.UUID, list[EntryRow]] = {}
        self.touched: dict[uuid.UUID, LedgerAccount] = {}
        self.consumed: list[Hold] = []

    def post(self, request: JournalRequest, *, hold: Hold | None = None) -> JournalTransaction:
        journal = JournalTransaction(
            id=uuid.uuid4(),
            posting_key=request.posting_key,
            kind=request.kind,
            reference=request.reference,
            description=request.description[:280],
            reverses_id=request.reverses_id,
            posted_at=self.now,
        )
        changed: dict[uuid.UUID, LedgerAccount] = {}
        if request.consumes_hold_key:
            if hold is None or hold.status != Hold.Status.ACTIVE:
                raise HoldNotActive(f"Hold {request.consumes_hold_key} is not active.")
            held_account = self.accounts[hold.account_id]
            held_account.held -= hold.amount
            hold.status = Hold.Status.POSTED
            hold.resolved_at = self.now
            hold.journal_transaction_id = journal.id
            changed[held_account.id] = held_account
        entries = []
        for posting in request.postings:
            account = self.accounts.get(posting.account_id)
            if account is None:
                raise LedgerAccountNotFound(f"No ledger account {posting.account_id}.")
            if account.currency != posting.currency:
                raise CurrencyMismatch(f"{account.code} holds {account.currency}, not {posting.currency}.")
            account.balance += posting.amount if posting.side == account.normal_side else -posting.amount
            changed[account.id] = account
            entries.append(
                EntryRow(
                    entry_id=uuid.uuid4(),
                    transaction_id=journal.id,
                    account_id=account.id,
                    side=posting.side,
                    amount=posting.amount,
                    currency=posting.currency,
                    balance_after=account.balance,
                    posted_at=self.now,
                )
            )
        for account in changed.values():
            if not account.allow_negative and account.balance - account.held < 0:
                raise InsufficientFunds(f"Account {account.owner_ref or account.code} has insufficient funds.")
        self.touched.update(changed)
        if hold is not None and request.consumes_hold_key:
            self.consumed.append(hold)
        self.entries[journal.id] = entries
        self.journals.append(journal)
        return journal

    def write(self) -> None:
        """Write the journal transactions, their entries, the balances and the consumed holds,
        and publish one `ledger.entry_written` per journal transaction."""
        if not self.journals:
            return
        insert_rows(JournalTransaction, JOURNAL_COLUMNS, self.journals)
        for batch in _entry_batches([entry for journal in self.journals for entry in self.entries[journal.id]]):
            insert_rows(JournalEntry, ENTRY_COLUMNS, batch)
        update_rows(
            LedgerAccount,
            ("balance", "held"),
            [(account.id, account.balance, account.held) for account in self.touched.values()],
            extra={"updated_at": self.now},
        )
        if self.consumed:
            update_rows(
                Hold,
                ("journal_transaction_id",),
                [(hold.id, hold.journal_transaction_id) for hold in self.consumed],
                extra={"status": Hold.Status.POSTED.value, "resolved_at": self.now},
            )
        for journal in self.journals:
            publish(_entry_written(journal, self.entries[journal.id], self.accounts), occurred_at=self.now)


JOURNAL_COLUMNS = ("id", "posting_key", "kind", "reference", "description", "reverses_id", "posted_at")
ENTRY_COLUMNS = ("entry_id", "transaction_id", "account_id", "side", "amount", "currency", "balance_after", "posted_at")
# Rows per INSERT statement, never splitting a journal transaction: PostgreSQL checks per
# statement that the journal transactions it inserts balance.
ENTRY_BATCH_ROWS = 3_000  # well under insert_rows' 3,750 rows of 8 columns per statement


def _entry_batches(entries: list[EntryRow]) -> Iterable[list[EntryRow]]:
    batch: list[EntryRow] = []
    for index, entry in enumerate(entries):
        batch.append(entry)
        last_of_journal = index + 1 == len(entries) or entries[index + 1].transaction_id != entry.transaction_id
        if last_of_journal and len(batch) >= ENTRY_BATCH_ROWS:
            yield batch
            batch = []
    if batch:
        yield batch


def _entry_written(
    journal: JournalTransaction, entries: Iterable[EntryRow], accounts: dict[uuid.UUID, LedgerAccount]
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


def post_transactions(requests: Sequence[JournalRequest], *, now: datetime | None = None) -> list[JournalTransaction]:
    """Post a batch of journal transactions atomically, in a constant number of statements.

    A request whose posting key was already posted is not posted again: its existing
    journal transaction is returned in its place (so a retried operation moves money once).
    The whole batch is refused if any request would leave an account below zero.
    """
    now = now or timezone.now()
    keys = [request.posting_key for request in requests]
    if len(set(keys)) != len(keys):
        raise InvalidPosting("A batch may not post one posting key twice.")
    for request in requests:
        validate_request(request)
    with unit_of_work():
        account_ids = {posting.account_id for request in requests for posting in request.postings}
        accounts = lock_accounts(account_ids)
        missing = account_ids - set(accounts)
        if missing:
            raise LedgerAccountNotFound(f"No ledger account {sorted(map(str, missing))[0]}.")
        # Read after the locks: a concurrent poster of the same key has committed by now.
        already = {t.posting_key: t for t in JournalTransaction.objects.filter(posting_key__in=keys)}
        hold_keys = [r.consumes_hold_key for r in requests if r.consumes_hold_key and r.posting_key not in already]
        holds = (
            {h.hold_key: h for h in Hold.objects.select_for_update().filter(hold_key__in=hold_keys)}
            if hold_keys
            else {}
        )
        book = Book(accounts, now)
        for request in requests:
            if request.posting_key not in already:
                book.post(request, hold=holds.get(request.consumes_hold_key or ""))
        book.write()
    posted = {journal.posting_key: journal for journal in book.journals}
    return [posted.get(key) or already[key] for key in keys]


def post_transaction(request: JournalRequest, *, now: datetime | None = None) -> JournalTransaction:
    return post_transactions([request], now=now)[0]


def deposit_post(
    *, owner_ref: uuid.UUID, amount: int, currency: str, posting_key: str, reference: str, now: datetime | None = None
) -> JournalTransaction:
    """Cash came in: debit the bank's settlement account, credit the customer's."""
    account = account_of(owner_ref)
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
