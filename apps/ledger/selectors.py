from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Prefetch, QuerySet

from apps.ledger.models import JournalEntry, JournalTransaction, LedgerAccount


def ledger_account_of(*, owner_ref: uuid.UUID) -> LedgerAccount | None:
    return LedgerAccount.objects.filter(owner_ref=owner_ref).first()


def ledger_accounts_of(*, owner_refs: list[uuid.UUID]) -> dict[uuid.UUID, LedgerAccount]:
    return {a.owner_ref: a for a in LedgerAccount.objects.filter(owner_ref__in=owner_refs) if a.owner_ref}


def statement_entries(
    *,
    ledger_account_id: uuid.UUID,
    posted_from: datetime | None = None,
    posted_to: datetime | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[JournalEntry]:
    """Posted entries of one account, newest first, `limit` of them before `before_id`."""
    entries: QuerySet[JournalEntry] = JournalEntry.objects.filter(account_id=ledger_account_id)
    if posted_from is not None:
        entries = entries.filter(posted_at__gte=posted_from)
    if posted_to is not None:
        entries = entries.filter(posted_at__lt=posted_to)
    if before_id is not None:
        entries = entries.filter(id__lt=before_id)
    return list(entries.select_related("transaction").order_by("-id")[:limit])


def journal_transaction_get(*, transaction_id: uuid.UUID) -> JournalTransaction | None:
    """The journal transaction with its entries, in posting order, and their ledger accounts."""
    entries = Prefetch("entries", queryset=JournalEntry.objects.select_related("account").order_by("id"))
    return JournalTransaction.objects.prefetch_related(entries).filter(pk=transaction_id).first()
