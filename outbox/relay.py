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
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from fintech.faults import crash_point
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

# The relay pins its plans rather than trust the statistics of the outbox: a queue whose size
# swings between nothing and a large backlog faster than autoanalyze follows. With statistics
# that say "empty", the planner's own choices were each linear in the backlog, per statement:
# a bitmap scan reading and sorting every unsent row for each chunk of 500 (306 ms instead of
# 2 ms with 50,000 rows waiting); `id = ANY(...)` answered by scanning the (aggregate_id, id)
# index once per element (14 s to mark one batch of 2,000); a hash of the whole table to join
# 2,000 ids. Measured on PostgreSQL 15 with `manage.py bench_relay`.
#
# Reading walks the partial index of unsent rows in id order and stops after the chunk: with
# sequential scans, bitmap scans and sorts priced out, it is the cheapest ordered path left.
_READ_PLAN_SQL = (
    "SELECT set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), "
    "set_config('enable_sort', 'off', true)"
)
# Marking goes straight to each row by its physical address (ctid, read with the row), with
# index scans priced out as well so that no statistics can steer it elsewhere. The id is
# checked too: an address only ever names the row that was read, as long as that row lives,
# and nothing but the relay removes unsent rows.
_MARK_PLAN_SQL = "SELECT set_config('enable_indexscan', 'off', true), set_config('enable_indexonlyscan', 'off', true)"

FETCH_CHUNK = 500
_CHUNK_SQL = (
    "SELECT id, ctid::text, event_id::text, event_type, aggregate_id, envelope::text, "
    "headers->>'traceparent', headers->>'correlation_id', headers->>'causation_id', txid, "
    "dispatched_at IS NOT NULL FROM {table} WHERE sent_at IS NULL AND id > %s ORDER BY id LIMIT %s"
)


class _Shipped(NamedTuple):
    """Where an event handed to the sink lives, and whether its handlers were done when read."""

    id: int
    ctid: str | None  # PostgreSQL only
    dispatched: bool | None  # None: not known


def _next_batch(size: int) -> Generator[tuple[OutgoingEvent, _Shipped], None, None]:
    """The oldest unsent rows that may ship now, as plain values. The envelope stays the JSON
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
        yield OutgoingEvent(*row), _Shipped(row[0], None, None)


def _next_batch_postgresql(size: int) -> Generator[tuple[OutgoingEvent, _Shipped], None, None]:
    # Raw SQL on the hot path: the ORM's per-row work costs more than the query itself.
    with connection.cursor() as cursor:
        cursor.execute(_READ_PLAN_SQL)
        cursor.execute(_SNAPSHOT_XMIN_SQL)
        xmin = cursor.fetchone()[0]
    session = connection.connection  # the driver's connection, for the reading thread
    taken = 0
    # The next chunk is read on a second thread while the sink ships this one: the same session
    # and transaction, used by one thread at a time (the sink does not touch the database), so
    # waiting on PostgreSQL overlaps with producing instead of adding to it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-read") as reader:
        pending: Future[list[tuple[Any, ...]]] | None = reader.submit(_read_chunk, session, 0, min(FETCH_CHUNK, size))
        while pending is not None:
            rows = pending.result()
            taken += len(rows)
            more = len(rows) == FETCH_CHUNK and taken < size
            pending = reader.submit(_read_chunk, session, rows[-1][0], min(FETCH_CHUNK, size - taken)) if more else None
            for (
                row_id,
                ctid,
                event_id,
                event_type,
                aggregate,
                envelope,
                trace,
                correlation,
                causation,
                txid,
                done,
            ) in rows:
                if txid is not None and txid >= xmin:
                    return  # written by a transaction that may still be open: it and all after it wait
                headers = {"traceparent": trace, "correlation_id": correlation}
                if causation:
                    headers["causation_id"] = causation
                event = OutgoingEvent(row_id, event_id, event_type, aggregate, envelope, headers)
                yield event, _Shipped(row_id, ctid, done)
    # Leaving the `with` (on return, exhaustion or close) waits for a chunk still being read,
    # so the marks that follow never share the session with it.


def _read_chunk(session: Any, after: int, limit: int) -> list[tuple[Any, ...]]:
    with session.cursor() as cursor:
        cursor.execute(_CHUNK_SQL.format(table=OutboxEvent._meta.db_table), [after, limit])
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


_DELETE_SQL = "DELETE FROM {table} WHERE ctid = ANY(%s::tid[]) AND id = ANY(%s::bigint[]) AND dispatched_at IS NOT NULL"
_MARK_SENT_SQL = (
    "UPDATE {table} SET sent_at = now() WHERE ctid = ANY(%s::tid[]) AND id = ANY(%s::bigint[]) "
    "AND dispatched_at IS NULL RETURNING id"
)
# FINTECH_OUTBOX_KEEP_SHIPPED: every shipped row stays, marked sent, until the purge.
_KEEP_SENT_SQL = (
    "UPDATE {table} SET sent_at = now() WHERE ctid = ANY(%s::tid[]) AND id = ANY(%s::bigint[]) RETURNING id"
)
# Rows whose address moved between read and mark: the dispatcher updated them meanwhile (it
# marked them dispatched, or scheduled a retry). Found by id, through the primary key.
_MOVED_PLAN_SQL = "SELECT set_config('enable_indexscan', 'on', true)"
_DELETE_MOVED_SQL = "DELETE FROM {table} WHERE id = ANY(%s::bigint[]) AND dispatched_at IS NOT NULL RETURNING id"
_MARK_MOVED_SQL = "UPDATE {table} SET sent_at = now() WHERE id = ANY(%s::bigint[])"


def _array(values: list[str]) -> str:
    # Array literals built here: cheaper than the driver adapting 2,000 values.
    return "{" + ",".join(values) + "}"


def _mark_shipped(shipped: list[_Shipped]) -> None:
    """A shipped row whose handlers were all done when it was read is deleted (cheaper than an
    update, and the table stays small). A row still being dispatched is marked sent, and goes
    when the dispatcher is done with it. A row whose handlers finished between read and mark is
    deleted too: every shipped row is marked, so none ships twice. With
    `FINTECH_OUTBOX_KEEP_SHIPPED` nothing is deleted: the outbox keeps every event, marked sent,
    until `purge_outbox` (an audit of what was written, e.g. for `make chaos`)."""
    keep = bool(settings.FINTECH_OUTBOX_KEEP_SHIPPED)
    if connection.vendor == "postgresql":
        table = OutboxEvent._meta.db_table
        done = [] if keep else [row for row in shipped if row.dispatched]
        waiting = shipped if keep else [row for row in shipped if not row.dispatched]
        with connection.cursor() as cursor:
            cursor.execute(_MARK_PLAN_SQL)
            if done:
                addresses = _array([f'"{row.ctid}"' for row in done])
                cursor.execute(_DELETE_SQL.format(table=table), [addresses, _array([str(row.id) for row in done])])
            if waiting:
                addresses = _array([f'"{row.ctid}"' for row in waiting])
                cursor.execute(
                    (_KEEP_SENT_SQL if keep else _MARK_SENT_SQL).format(table=table),
                    [addresses, _array([str(row.id) for row in waiting])],
                )
                marked = {row_id for (row_id,) in cursor.fetchall()}
                moved = [str(row.id) for row in waiting if row.id not in marked]
                if moved:
                    cursor.execute(_MOVED_PLAN_SQL)
                    gone: set[str] = set()
                    if not keep:
                        cursor.execute(_DELETE_MOVED_SQL.format(table=table), [_array(moved)])
                        gone = {str(row_id) for (row_id,) in cursor.fetchall()}
                    still = [row_id for row_id in moved if row_id not in gone]
                    if still:
                        cursor.execute(_MARK_MOVED_SQL.format(table=table), [_array(still)])
        return
    ids = [row.id for row in shipped]
    if not keep:
        OutboxEvent.objects.filter(pk__in=ids, dispatched_at__isnull=False).delete()
    OutboxEvent.objects.filter(pk__in=ids, sent_at__isnull=True).update(sent_at=timezone.now())


def relay_batch(sink: RelaySink, *, batch_size: int | None = None) -> int:
    """Ship the oldest unsent rows. Returns how many were acknowledged and marked."""
    size = batch_size or settings.FINTECH_RELAY_BATCH_SIZE
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RELAY_LOCK_KEY])
        batch = _TrackedBatch(_next_batch(size))

        def mark_while_acknowledged() -> None:
            # Marked in this transaction while the sink waits for its acknowledgement: the marks
            # commit only after `send` returned, that is after the acknowledgement; if it never
            # comes, `send` raises and they are rolled back with the rest.
            if batch.shipped:
                _mark_shipped(batch.shipped)

        try:
            sink.send(batch, mark_while_acknowledged)
            crash_point("after_produce_before_mark")  # acknowledged, the marks not yet committed
        finally:
            # A sink that stopped half way leaves the reading generator suspended: close it, so
            # a chunk still being read on the other thread finishes before the transaction ends.
            batch.close()
        if not batch.shipped:
            return 0
    EVENTS_RELAYED.labels(sink.name).inc(len(batch.shipped))
    return len(batch.shipped)


class _TrackedBatch:
    """The events of a batch as the sink reads them, remembering which were handed over."""

    def __init__(self, events: Generator[tuple[OutgoingEvent, _Shipped], None, None]) -> None:
        self._events = events
        self.shipped: list[_Shipped] = []

    def close(self) -> None:
        self._events.close()

    def __iter__(self) -> Iterator[OutgoingEvent]:
        remember = self.shipped.append
        for event, shipped in self._events:
            remember(shipped)
            yield event


def relay_pending(sink: RelaySink, *, batch_size: int | None = None) -> int:
    """Ship until nothing is left unsent. Returns the number of rows shipped."""
    total = 0
    while shipped := relay_batch(sink, batch_size=batch_size):
        total += shipped
    return total
