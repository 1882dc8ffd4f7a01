"""Delivers committed outbox events to the in-process handlers subscribed to them.

Each handler runs in its own transaction that first records (handler, event id) in the
inbox: a second delivery of the same event, by a retry, a sweeper or a concurrent
dispatcher, hits the unique constraint and does nothing. A handler that raises is retried
with exponential backoff and, after `FINTECH_HANDLER_MAX_ATTEMPTS`, dead-lettered. An event
is marked dispatched when every subscriber has applied it or given up on it.
"""

from __future__ import annotations

import logging
import random
import threading
import traceback
import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from fintech import bus
from fintech.events import ReceivedEvent, upcast, validate
from fintech.observability import context
from outbox.metrics import DEAD_LETTERS, EVENTS_HANDLED, HANDLER_FAILURES
from outbox.models import DeadLetter, DeliveryAttempt, InboxRecord, OutboxEvent

logger = logging.getLogger(__name__)

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


def received_from_envelope(envelope: dict[str, Any], headers: dict[str, Any] | None = None) -> ReceivedEvent:
    """Validate an envelope's data against its schema and upcast it to the newest version."""
    event_type = str(envelope["type"])
    version = int(str(envelope["dataschema"]).rsplit("/v", 1)[1])
    data = dict(envelope["data"])
    validate(event_type, version, data)
    version, data = upcast(event_type, version, data)
    moment = parse_datetime(str(envelope["time"]))
    if moment is None:
        raise ValueError(f"Event {envelope['id']} has an unreadable time {envelope['time']!r}")
    return ReceivedEvent(
        id=uuid.UUID(str(envelope["id"])),
        type=event_type,
        version=version,
        source=str(envelope["source"]),
        subject=str(envelope["subject"]),
        time=moment,
        data=data,
        headers={k: str(v) for k, v in (headers or {}).items()},
    )


def backoff_seconds(attempts: int) -> float:
    base = float(settings.FINTECH_HANDLER_RETRY_BASE_SECONDS)
    delay = min(float(settings.FINTECH_HANDLER_RETRY_MAX_SECONDS), base * (2.0 ** max(attempts - 1, 0)))
    return delay * random.uniform(0.8, 1.2)  # jitter keeps retries of a burst apart


def run_handler(sub: bus.Subscription, event: ReceivedEvent) -> bool:
    """Apply `event` with `sub` exactly once. False when the inbox says it already was."""
    work = context.from_incoming(
        traceparent=event.headers.get("traceparent"),
        correlation_id=event.headers.get("correlation_id"),
        causation_id=str(event.id),
    )
    with transaction.atomic(), context.bind(work):
        try:
            with transaction.atomic():
                InboxRecord.objects.create(handler=sub.name, event_id=event.id)
        except IntegrityError:
            return False
        sub.handler(event)
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
            return True
        attempt.next_attempt_at = now + timedelta(seconds=backoff_seconds(attempt.attempts))
        attempt.save()
    return False


def deliver(row: OutboxEvent, *, now: datetime | None = None) -> DispatchReport:
    """Offer one outbox event to every subscriber that has not applied or given up on it."""
    now = now or timezone.now()
    report = DispatchReport(events=1)
    subs = bus.subscriptions_for(row.event_type)
    done = set(InboxRecord.objects.filter(event_id=row.event_id).values_list("handler", flat=True))
    done |= set(
        DeadLetter.objects.filter(event_id=row.event_id, replayed_at__isnull=True).values_list("handler", flat=True)
    )
    waiting = {a.handler: a for a in DeliveryAttempt.objects.filter(event_id=row.event_id) if a.next_attempt_at > now}
    pending = False
    event: ReceivedEvent | None = None
    for sub in subs:
        if sub.name in done:
            continue
        if sub.name in waiting:
            pending = True
            report.skipped += 1
            continue
        try:
            if event is None:
                event = received_from_envelope(row.envelope, row.headers)
            applied = run_handler(sub, event)
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
        DeliveryAttempt.objects.filter(event_id=row.event_id, handler=sub.name).delete()
    if pending:
        report.pending_event_ids.append(row.event_id)
    elif row.pk is not None:
        _mark_dispatched(row.pk)
    return report


def _mark_dispatched(pk: int) -> None:
    """Every handler is done with the row: it goes once the relay has shipped it too."""
    deleted, _ = OutboxEvent.objects.filter(pk=pk, sent_at__isnull=False).delete()
    if not deleted:
        OutboxEvent.objects.filter(pk=pk, dispatched_at__isnull=True).update(dispatched_at=timezone.now())


def dispatch(
    *, event_ids: Iterable[uuid.UUID] | None = None, older_than: datetime | None = None, limit: int = 200
) -> DispatchReport:
    """Deliver undispatched events in outbox order: the given ones, or all written before
    `older_than` (the sweeper), or simply the oldest `limit`."""
    rows = OutboxEvent.objects.filter(dispatched_at__isnull=True).order_by("id")
    if event_ids is not None:
        rows = rows.filter(event_id__in=list(event_ids))
    if older_than is not None:
        rows = rows.filter(created_at__lte=older_than)
    report = DispatchReport()
    for row in rows[:limit]:
        report.merge(deliver(row))
    return report


def sweep(*, grace_seconds: float | None = None, limit: int = 500) -> DispatchReport:
    """Pick up what a crash left behind: undispatched events older than the grace period,
    and handlers whose retry time has come."""
    grace = settings.FINTECH_SWEEP_GRACE_SECONDS if grace_seconds is None else grace_seconds
    return dispatch(older_than=timezone.now() - timedelta(seconds=grace), limit=limit)


def dispatch_after_commit(event_ids: list[uuid.UUID]) -> None:
    """Called by `transaction.on_commit` for freshly published events.

    Inline mode drains the events in this process, including those the handlers publish in
    turn (queued, not recursed). Nothing here may fail the request that already committed:
    what does not get delivered now is the sweeper's.
    """
    mode = settings.FINTECH_EVENT_DISPATCH
    if mode == "celery":
        from outbox.tasks import dispatch_events

        try:
            dispatch_events.delay([str(event_id) for event_id in event_ids])
        except Exception:
            logger.exception("could not enqueue event dispatch; the sweeper will deliver")
        return
    if mode != "inline":
        return
    queue: deque[uuid.UUID] | None = getattr(_local, "queue", None)
    if queue is not None:
        queue.extend(event_ids)
        return
    queue = _local.queue = deque(event_ids)
    try:
        while queue:
            batch = list(queue)
            queue.clear()
            dispatch(event_ids=batch, limit=len(batch))
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
