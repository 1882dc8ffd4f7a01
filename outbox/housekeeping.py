"""Keeps the spine's tables from growing without bound: rows are deleted in chunks once
they have done their job (the history lives on in Kafka and in the ledger)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Model, QuerySet
from django.utils import timezone

from outbox.models import DeadLetter, InboxRecord, OutboxEvent


@dataclass
class PurgeReport:
    outbox_events: int = 0
    inbox_records: int = 0
    dead_letters: int = 0


def _delete_in_chunks(rows: QuerySet[Model], chunk: int) -> int:
    deleted = 0
    while True:
        ids = list(rows.values_list("pk", flat=True)[:chunk])
        if not ids:
            return deleted
        deleted += rows.model._default_manager.filter(pk__in=ids).delete()[0]


def purge(*, now: datetime | None = None, chunk: int = 5_000) -> PurgeReport:
    """Delete outbox rows sent and dispatched before the outbox retention, inbox records and
    replayed dead letters older than the inbox retention (a redelivery older than that is
    beyond any broker's retention of the same event)."""
    now = now or timezone.now()
    outbox_cutoff = now - timedelta(days=settings.FINTECH_OUTBOX_RETENTION_DAYS)
    inbox_cutoff = now - timedelta(days=settings.FINTECH_INBOX_RETENTION_DAYS)
    done = OutboxEvent.objects.filter(
        sent_at__isnull=False, dispatched_at__isnull=False, created_at__lt=outbox_cutoff
    ).order_by("id")
    return PurgeReport(
        outbox_events=_delete_in_chunks(done, chunk),
        inbox_records=_delete_in_chunks(InboxRecord.objects.filter(handled_at__lt=inbox_cutoff), chunk),
        dead_letters=_delete_in_chunks(
            DeadLetter.objects.filter(replayed_at__isnull=False, replayed_at__lt=inbox_cutoff),
            chunk,
        ),
    )
