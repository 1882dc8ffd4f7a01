"""Delivers committed outbox events to the in-process handlers subscribed to them.

The happy path is one transaction per batch of events (`deliver_batch`): one INSERT claims the
batch's (handler, event id) pairs in the inbox (a pair another dispatcher or a Kafka consumer
has already applied is not claimed and not run), the claimed handlers run, the steps their
events start run in the same unit of work, and the batch's rows are marked dispatched in one
UPDATE. Nothing else is read or written while every handler succeeds.

When a handler raises, the batch rolls back whole and its events are delivered again one at a
time (`deliver`), each handler in its own transaction: the handlers that work commit, the one
that fails is retried with exponential backoff and, after `FINTECH_HANDLER_MAX_ATTEMPTS`,
dead-lettered. Only then are attempt and dead-letter rows written, and the outbox row keeps
`next_attempt_at`, which sends it down this slow path until every handler is done with it.
"""

from __future__ import annotations

import logging
import threading
import traceback
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Min, Q
from django.utils import timezone

from fintech import backoff, bus
from fintech.events import ReceivedEvent, moment, upcast, validate
from outbox.metrics import DEAD_LETTERS, EVENTS_HANDLED, HANDLER_FAILURES
from outbox.models import DeadLetter, DeliveryAttempt, InboxRecord, OutboxEvent
from outbox.unit_of_work import Written, grouped, mark_dispatched, unit_of_work

logger = logging.getLogger(__name__)

# Errors of the infrastructure (the database went away), not of a handler: retrying the
# delivery later is right, counting it against the handler's attempts is not.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)

_local = threading.local()


@dataclass
class DispatchReport:
    events: int = 0
    handled: int = 0
    failed: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    pending_event_ids: list[uuid.UUID] = field(default_factory=list)

    def merge(self, other: DispatchReport) -> None:
        self.events += other.events
        self.handled += other.handled
        self.failed += other.failed
        self.dead_lettered += other.dead_lettered
        self.skipped += other.skipped
        self.pending_event_ids.extend(other.pending_event_ids)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A committed event on its way to its handlers: its outbox row, the event, and the handlers
    known to have applied it already."""

    row_id: int
    event: ReceivedEvent
    done: frozenset[str] = frozenset()


def received_from_envelope(envelope: dict[str, Any], headers: dict[str, Any] | None = None) -> ReceivedEvent:
    """Validate an envelope's data against its schema and upcast it to the newest version."""
    event_type = str(envelope["type"])
    version = int(str(envelope["dataschema"]).rsplit("/v", 1)[1])
    data = dict(envelope["data"])
    validate(event_type, version, data)
    version, data = upcast(event_type, version, data)
    occurred = moment(str(envelope["time"]))
    return ReceivedEvent(
        id=uuid.UUID(str(envelope["id"])),
        type=event_type,
        version=version,
        source=str(envelope["source"]),
        subject=str(envelope["subject"]),
        time=occurred,
        data=data,
        headers={k: str(v) for k, v in (headers or {}).items()},
    )


def backoff_seconds(attempts: int) -> float:
    return backoff.backoff_seconds(
        attempts, base=settings.FINTECH_HANDLER_RETRY_BASE_SECONDS, cap=settings.FINTECH_HANDLER_RETRY_MAX_SECONDS
    )


# -- the happy path: a batch in one unit of work ------------------------------------------------


def claim(pairs: Sequence[tuple[str, uuid.UUID]], *, now: datetime) -> set[tuple[str, uuid.UUID]]:
    """Record (handler, event id) pairs in the inbox, in one statement, and return those that
    were not there: this transaction may apply them. A pair being claimed by a concurrent
    transaction waits for it, then counts as taken if that one committed."""
    if not pairs:
        return set()
    ordered = sorted(set(pairs))  # one order for every dispatcher: claims never deadlock
    field_ = InboxRecord._meta.get_field("event_id")
    applied_at = connection.ops.adapt_datetimefield_value(now)
    params: list[Any] = []
    for handler, event_id in ordered:
        params += [handler, field_.get_db_prep_value(event_id, connection), applied_at]
    table = InboxRecord._meta.db_table
    values = ", ".join(["(%s, %s, %s)"] * len(ordered))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (handler, event_id, handled_at) VALUES {values} "  # noqa: S608
            "ON CONFLICT (handler, event_id) DO NOTHING RETURNING handler, event_id",
            params,
        )
        return {(handler, uuid.UUID(str(event_id))) for handler, event_id in cursor.fetchall()}


def _apply_batch(deliveries: Sequence[Delivery], now: datetime) -> int:
    """Apply every not-yet-applied handler to every delivery, in one unit of work, by event
    type; raises if any handler does (and then nothing of the batch commits)."""
    applied: list[str] = []
    with unit_of_work(continue_steps=True) as uow:
        wanted = [
            (sub.name, delivery.event.id)
            for delivery in deliveries
            for sub in bus.subscriptions_for(delivery.event.type)
            if sub.name not in delivery.done
        ]
        claimed = claim(wanted, now=now)
        for event_type, group in grouped(deliveries, lambda delivery: delivery.event.type).items():
            for sub in bus.subscriptions_for(event_type):
                events = [d.event for d in group if (sub.name, d.event.id) in claimed]
                if events:
                    sub.apply(events)
                    applied.extend(sub.name for _ in events)
        uow.delivered_rows(delivery.row_id for delivery in deliveries)
    for name in applied:
        EVENTS_HANDLED.labels(name).inc()
    return len(applied)


def deliver_batch(deliveries: Sequence[Delivery], *, now: datetime | None = None) -> DispatchReport:
    """Deliver a batch in one transaction, or, if a handler raises, one handler at a time."""
    if not deliveries:
        return DispatchReport()
    now = now or timezone.now()
    try:
        handled = _apply_batch(deliveries, now)
    except TRANSIENT_ERRORS:
        raise  # the database is away: nothing to learn from retrying each handler now
    except Exception as error:  # noqa: BLE001 - a failing handler sends the batch down the slow path
        logger.info(
            "a handler failed in a batch; delivering its events one handler at a time",
            extra={"events": len(deliveries), "error": repr(error)},
        )
        report = DispatchReport()
        rows = OutboxEvent.objects.filter(pk__in=[d.row_id for d in deliveries], dispatched_at__isnull=True)
        for row in rows.order_by("id"):
            report.merge(deliver(row, now=now))
        report.events = len(deliveries)
        return report
    return DispatchReport(events=len(deliveries), handled=handled)


# -- the slow path: one handler at a time, with retries and dead letters -----------------------


def run_handler(sub: bus.Subscription, event: ReceivedEvent, *, after_commit: bool = True) -> bool:
    """Apply `event` with `sub` exactly once, in a unit of work of its own that runs no other
    handler: the events it publishes are written for the dispatcher (after the commit, when
    `after_commit`). False when the inbox says it was applied already.

    A Kafka consumer passes `after_commit=False`: each context's consumer group applies its
    own handlers, and the web process's dispatch setting has no say in what it runs."""
    with unit_of_work(continue_steps=False, after_commit=after_commit):
        try:
            with transaction.atomic():
                InboxRecord.objects.create(handler=sub.name, event_id=event.id)
        except IntegrityError:
            return False
        sub.apply([event])
    return True


def _record_failure(row: OutboxEvent, sub: bus.Subscription, error: BaseException, now: datetime) -> bool:
    """Count a failed attempt; dead-letter when attempts run out. True when dead-lettered."""
    text = "".join(traceback.format_exception(error))[-8000:]
    with transaction.atomic():
        attempt, _ = DeliveryAttempt.objects.select_for_update().get_or_create(
            event_id=row.event_id, handler=sub.name, defaults={"next_attempt_at": now}
        )
        attempt.attempts += 1
        attempt.last_error = text
        attempt.updated_at = now
        if attempt.attempts >= settings.FINTECH_HANDLER_MAX_ATTEMPTS:
            DeadLetter.objects.create(
                event_id=row.event_id,
                event_type=row.event_type,
                handler=sub.name,
                envelope=row.envelope,
                headers=row.headers,
                error=text,
                attempts=attempt.attempts,
            )
            attempt.delete()
            DEAD_LETTERS.labels(sub.name).inc()
            logger.error(
                "handler gave up on event",
                extra={"handler": sub.name, "event_id": str(row.event_id), "attempts": attempt.attempts},
            )
            _schedule(row, now)
            return True
        attempt.next_attempt_at = now + timedelta(seconds=backoff_seconds(attempt.attempts))
        attempt.save()
        _schedule(row, now)
    return False


def _schedule(row: OutboxEvent, now: datetime) -> None:
    """Keep the row on the slow path, due when its earliest waiting handler is (or now, when
    none waits: a dead letter still needs the row marked dispatched)."""
    if row.pk is None:
        return
    due = DeliveryAttempt.objects.filter(event_id=row.event_id).aggregate(due=Min("next_attempt_at"))["due"]
    OutboxEvent.objects.filter(pk=row.pk).update(next_attempt_at=due or now)


def deliver(row: OutboxEvent, *, now: datetime | None = None) -> DispatchReport:
    """Offer one outbox event to every subscriber that has not applied or given up on it,
    each in its own transaction."""
    now = now or timezone.now()
    report = DispatchReport(events=1)
    subs = bus.subscriptions_for(row.event_type)
    done = set(InboxRecord.objects.filter(event_id=row.event_id).values_list("handler", flat=True))
    done |= set(
        DeadLetter.objects.filter(event_id=row.event_id, replayed_at__isnull=True).values_list("handler", flat=True)
    )
    waiting = {a.handler: a for a in DeliveryAttempt.objects.filter(event_id=row.event_id)}
    pending = False
    event: ReceivedEvent | None = None
    for sub in subs:
        if sub.name in done:
            continue
        attempt = waiting.get(sub.name)
        if attempt is not None and attempt.next_attempt_at > now:
            pending = True
            report.skipped += 1
            continue
        try:
            if event is None:
                event = received_from_envelope(row.envelope, row.headers)
            applied = run_handler(sub, event)
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:  # noqa: BLE001 - any handler error is retried, then dead-lettered
            HANDLER_FAILURES.labels(sub.name).inc()
            logger.warning(
                "handler failed",
                extra={"handler": sub.name, "event_id": str(row.event_id), "error": repr(error)},
            )
            if _record_failure(row, sub, error, now):
                report.dead_lettered += 1
            else:
                report.failed += 1
                pending = True
            continue
        if applied:
            report.handled += 1
            EVENTS_HANDLED.labels(sub.name).inc()
        if attempt is not None:
            DeliveryAttempt.objects.filter(pk=attempt.pk).delete()
    if pending:
        report.pending_event_ids.append(row.event_id)
    elif row.pk is not None:
        mark_dispatched([row.pk], now=timezone.now())
    return report


# -- choosing what to deliver -----------------------------------------------------------------


def _due(now: datetime) -> Q:
    return Q(dispatched_at__isnull=True) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))


def dispatch(
    *, event_ids: Iterable[uuid.UUID] | None = None, older_than: datetime | None = None, limit: int = 200
) -> DispatchReport:
    """Deliver undispatched events that are due, in outbox order: the given ones, or all written
    before `older_than` (the sweeper), or simply the oldest `limit`."""
    now = timezone.now()
    rows = OutboxEvent.objects.filter(_due(now)).order_by("id")
    if event_ids is not None:
        rows = rows.filter(event_id__in=list(event_ids))
    if older_than is not None:
        rows = rows.filter(created_at__lte=older_than)
    batch = list(rows[:limit])
    report = DispatchReport()
    fresh = [row for row in batch if row.next_attempt_at is None]
    if fresh:
        deliveries = []
        for row in fresh:
            try:
                deliveries.append(Delivery(row_id=row.pk, event=received_from_envelope(row.envelope, row.headers)))
            except Exception:  # noqa: BLE001 - an unreadable event goes to the slow path, which dead-letters it
                report.merge(deliver(row, now=now))
        report.merge(deliver_batch(deliveries, now=now))
    for row in batch:
        if row.next_attempt_at is not None:
            report.merge(deliver(row, now=now))
    return report


def sweep(*, grace_seconds: float | None = None, limit: int = 500) -> DispatchReport:
    """Pick up what a crash left behind: undispatched events older than the grace period,
    and handlers whose retry time has come."""
    grace = settings.FINTECH_SWEEP_GRACE_SECONDS if grace_seconds is None else grace_seconds
    return dispatch(older_than=timezone.now() - timedelta(seconds=grace), limit=limit)


def dispatch_after_commit(written: list[Written]) -> None:
    """With in-process dispatch, called once a unit of work has committed, with its events that
    still have handlers to run (outbox/apps.py). Delivers them in this process, including those
    the handlers publish in turn (queued, not recursed). Nothing here may fail the request that
    already committed: what does not get delivered now is the sweeper's.
    """
    queue: deque[Delivery] | None = getattr(_local, "queue", None)
    deliveries = [Delivery(row_id=item.row_id, event=item.event, done=item.done) for item in written]
    if queue is not None:
        queue.extend(deliveries)
        return
    queue = _local.queue = deque(deliveries)
    try:
        while queue:
            batch = list(queue)
            queue.clear()
            deliver_batch(batch)
    except Exception:
        logger.exception("inline dispatch stopped; the sweeper will deliver the rest")
    finally:
        _local.queue = None


def replay_dead_letters(
    *, handler: str | None = None, event_id: uuid.UUID | None = None, dead_letter_ids: Iterable[int] | None = None
) -> DispatchReport:
    """Give dead-lettered deliveries a fresh set of attempts, now."""
    letters = DeadLetter.objects.filter(replayed_at__isnull=True)
    if handler:
        letters = letters.filter(handler=handler)
    if event_id:
        letters = letters.filter(event_id=event_id)
    if dead_letter_ids is not None:
        letters = letters.filter(pk__in=list(dead_letter_ids))
    replayed: list[DeadLetter] = []
    with transaction.atomic():
        for letter in letters.select_for_update():
            letter.replayed_at = timezone.now()
            letter.save(update_fields=["replayed_at"])
            DeliveryAttempt.objects.filter(event_id=letter.event_id, handler=letter.handler).delete()
            replayed.append(letter)
    report = DispatchReport()
    for letter in replayed:
        # The outbox row may be gone (shipped and done): the dead letter kept the event.
        row = OutboxEvent.objects.filter(event_id=letter.event_id).first() or OutboxEvent(
            event_id=letter.event_id,
            event_type=letter.event_type,
            envelope=letter.envelope,
            headers=letter.headers,
        )
        report.merge(deliver(row))
    return report
