"""The relay: ships committed outbox rows, in order, to a sink, and marks them sent only
after the sink acknowledged them.

One batch is one database transaction. On PostgreSQL a transaction-scoped advisory lock
lets exactly one relay ship at a time (others wait their turn), so several relays can run
for availability without shipping a row twice or out of order; on SQLite the IMMEDIATE
write lock does the same. A relay killed mid-batch commits nothing: the batch is shipped
again by the next one (at least once; consumers are idempotent by event id).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from outbox.metrics import EVENTS_RELAYED
from outbox.models import OutboxEvent
from outbox.sinks import RelaySink

logger = logging.getLogger(__name__)

# Any constant that no other part of the bank uses as an advisory lock key.
RELAY_LOCK_KEY = 0x0F17_0B0C


def relay_batch(sink: RelaySink, *, batch_size: int | None = None) -> int:
    """Ship the oldest unsent rows. Returns how many were acknowledged and marked."""
    size = batch_size or settings.FINTECH_RELAY_BATCH_SIZE
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RELAY_LOCK_KEY])
        rows = list(OutboxEvent.objects.filter(sent_at__isnull=True).order_by("id")[:size])
        if not rows:
            return 0
        sink.send(rows)
        OutboxEvent.objects.filter(pk__in=[row.pk for row in rows]).update(sent_at=timezone.now())
    EVENTS_RELAYED.labels(sink.name).inc(len(rows))
    return len(rows)


def relay_pending(sink: RelaySink, *, batch_size: int | None = None) -> int:
    """Ship until nothing is left unsent. Returns the number of rows shipped."""
    total = 0
    while shipped := relay_batch(sink, batch_size=batch_size):
        total += shipped
    return total
