from __future__ import annotations

import uuid
from datetime import datetime

from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Prefetch, QuerySet
from django.db.models.expressions import RawSQL

from apps.ledger.models import JournalEntry, JournalTransaction, LedgerAccount


def ledger_account_of(*, owner_ref: uuid.UUID) -> LedgerAccount | None:
    return LedgerAccount.objects.filter(owner_ref=owner_ref).first()


def ledger_accounts_of(*, owner_refs: list[uuid.UUID]) -> dict[uuid.UUID, LedgerAccount]:
    return {a.owner_ref: a for a in LedgerAccount.objects.filter(owner_ref__in=owner_refs) if a.owner_ref}


def statement_query(
    *,
    ledger_account_id: uuid.UUID,
    posted_from: datetime | None = None,
    posted_to: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> QuerySet[JournalEntry]:
    """Posted entries of one account, newest first, `limit` of them before `before_id`.

    Ordered by (account, id), the order of the `entries_by_account` index, and with the account
    named as `= ANY(array)` on PostgreSQL: with a plain `account_id = X` the planner may walk the
    whole journal's primary key backwards and filter, which for an account whose entries are
    older than millions of others took 11 s for one page (0.2 ms through the index;
    docs/benchmarks.md). An array condition keeps the account's column in the sort, so only
    that index gives the order."""
    if connection.vendor == "postgresql":
        of_account = RawSQL(f"{JournalEntry._meta.db_table}.account_id = ANY(%s)", ([ledger_account_id],))  # noqa: S611 - the table name is the model's own
        entries: QuerySet[JournalEntry] = JournalEntry.objects.filter(ExpressionWrapper(of_account, BooleanField()))
    else:
        entries = JournalEntry.objects.filter(account_id=ledger_account_id)
    if posted_from is not None:
        entries = entries.filter(posted_at__gte=posted_from)
    if posted_to is not None:
        entries = entries.filter(posted_at__lt=posted_to)
    if before_id is not None:
        entries = entries.filter(id__lt=before_id)
    return entries.select_related("transaction").order_by("-account_id", "-id")[:limit]


def statement_entries(
    *,
    ledger_account_id: uuid.UUID,
    posted_from: datetime | None = None,
    posted_to: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[JournalEntry]:
    return list(
        statement_query(
            ledger_account_id=ledger_account_id,
            posted_from=posted_from,
            posted_to=posted_to,
            before_id=before_id,
            limit=limit,
        )
    )


def journal_transaction_get(*, transaction_id: uuid.UUID) -> JournalTransaction | None:
    """The journal transaction with its entries, in posting order, and their ledger accounts."""
    entries = Prefetch("entries", queryset=JournalEntry.objects.select_related("account").order_by("id"))
    return JournalTransaction.objects.prefetch_related(entries).filter(pk=transaction_id).first()
