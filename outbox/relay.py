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
from collections.abc import Iterator

from django.conf import settings
from django.db import connection, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from outbox.metrics import EVENTS_RELAYED
from outbox.models import OutboxEvent
from outbox.sinks import OutgoingEvent, RelaySink

logger = logging.getLogger(__name__)

# Any constant that no other part of the bank uses as an advisory lock key.
RELAY_LOCK_KEY = 0x0F17_0B0C


# Transactions below the snapshot's xmin have all finished. A row written by a transaction at
# or above it (one that was still open when an earlier row's transaction began) is held back
# with every row after it, so no row is shipped past one that has yet to commit.
_SNAPSHOT_XMIN_SQL = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"


FETCH_CHUNK = 500
_CHUNK_SQL = (
    "SELECT id, event_id, event_type, aggregate_id, envelope::text, headers->>'traceparent', "
    "headers->>'correlation_id', headers->>'causation_id', txid FROM {table} "
    "WHERE sent_at IS NULL AND id > %s ORDER BY id LIMIT %s"
)


def _next_batch(size: int) -> Iterator[OutgoingEvent]:
    """The oldest unsent rows that may ship now, as plain values: the envelope stays the JSON
    text it is stored as, so shipping it costs no parse and no re-serialization. Rows are read
    in chunks as the sink consumes them, so reading overlaps with the sink's own I/O."""
    if connection.vendor == "postgresql":
        yield from _next_batch_postgresql(size)
        return
    values = (
        OutboxEvent.objects.filter(sent_at__isnull=True)
        .order_by("id")
        .annotate(envelope_json=Cast("envelope", TextField()))
        .values_list("id", "event_id", "event_type", "aggregate_id", "envelope_json", "headers")[:size]
    )
    for row in values:
        yield OutgoingEvent(*row)


def _next_batch_postgresql(size: int) -> Iterator[OutgoingEvent]:
    # Raw SQL on the hot path: the ORM's per-row work costs more than the query itself.
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(_SNAPSHOT_XMIN_SQL)
        xmin = cursor.fetchone()[0]
        after, taken = 0, 0
        while taken < size:
            cursor.execute(_CHUNK_SQL.format(table=table), [after, min(FETCH_CHUNK, size - taken)])
            rows = cursor.fetchall()
            if not rows:
                return
            for row_id, event_id, event_type, aggregate, envelope, traceparent, correlation, causation, txid in rows:
                if txid is not None and txid >= xmin:
                    return  # written by a transaction that may still be open: it and all after it wait
                headers = {"traceparent": traceparent, "correlation_id": correlation}
                if causation:
                    headers["causation_id"] = causation
                yield OutgoingEvent(row_id, event_id, event_type, aggregate, envelope, headers)
            taken += len(rows)
            after = rows[-1][0]


def _mark_shipped(ids: list[int]) -> None:
    """A shipped row whose handlers are all done has nothing left to do: it is deleted (cheaper
    than an update, and the table stays small). A row still being dispatched is marked sent."""
    if connection.vendor == "postgresql":
        table = OutboxEvent._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s) AND dispatched_at IS NOT NULL", [ids])  # noqa: S608
            cursor.execute(
                f"UPDATE {table} SET sent_at = now() WHERE id = ANY(%s) AND dispatched_at IS NULL",  # noqa: S608
                [ids],
            )
        return
    OutboxEvent.objects.filter(pk__in=ids, dispatched_at__isnull=False).delete()
    OutboxEvent.objects.filter(pk__in=ids, dispatched_at__isnull=True).update(sent_at=timezone.now())


def relay_batch(sink: RelaySink, *, batch_size: int | None = None) -> int:
    """Ship the oldest unsent rows. Returns how many were acknowledged and marked."""
    size = batch_size or settings.FINTECH_RELAY_BATCH_SIZE
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RELAY_LOCK_KEY])
        batch = _TrackedBatch(_next_batch(size))
        sink.send(batch)
        if not batch.ids:
            return 0
        _mark_shipped(batch.ids)
    EVENTS_RELAYED.labels(sink.name).inc(len(batch.ids))
    return len(batch.ids)


class _TrackedBatch:
    """The events of a batch as the sink reads them, remembering which were handed over."""

    def __init__(self, events: Iterator[OutgoingEvent]) -> None:
        self._events = events
        self.ids: list[int] = []

    def __iter__(self) -> Iterator[OutgoingEvent]:
        for event in self._events:
            self.ids.append(event.id)
            yield event


def relay_pending(sink: RelaySink, *, batch_size: int | None = None) -> int:
    """Ship until nothing is left unsent. Returns the number of rows shipped."""
    total = 0
    while shipped := relay_batch(sink, batch_size=batch_size):
        total += shipped
    return total
