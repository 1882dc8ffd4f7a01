"""`publish()`: record a domain event in the outbox inside the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from fintech.events import DomainEvent, rfc3339, validate
from fintech.observability import context
from outbox import unit_of_work
from outbox.metrics import EVENTS_PUBLISHED
from outbox.models import OutboxEvent


class PublishOutsideTransaction(RuntimeError):
    """An event published outside a transaction could commit without its state change."""


def build_envelope(
    event: DomainEvent, *, event_id: uuid.UUID, occurred_at: datetime, data: dict[str, object] | None = None
) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": str(event_id),
        "type": event.event_type,
        "source": f"/fintech/{event.source}",
        "subject": event.aggregate_id,
        "time": rfc3339(occurred_at),
        "dataschema": f"{event.event_type}/v{event.version}",
        "datacontenttype": "application/json",
        "data": event.payload() if data is None else data,
    }


def publish(event: DomainEvent, *, occurred_at: datetime | None = None, using: str = "default") -> uuid.UUID:
    """Record `event` as part of the current transaction and return its id.

    Refuses to run outside `transaction.atomic`: the event and the change it describes must
    commit or roll back together. Inside a unit of work the event is written when the unit
    finishes (with the others, in one statement) and its steps run first; outside one its row
    is written now and it is dispatched after the commit.
    """
    if not transaction.get_connection(using).in_atomic_block:
        raise PublishOutsideTransaction(f"publish({event.event_type}) must run inside transaction.atomic()")
    data = event.payload()
    validate(event.event_type, event.version, data)
    event_id = uuid.uuid4()
    moment = occurred_at or timezone.now()
    work = context.current()
    headers = {"traceparent": work.trace.child().traceparent, "correlation_id": work.correlation_id}
    if work.causation_id:
        headers["causation_id"] = work.causation_id
    envelope = build_envelope(event, event_id=event_id, occurred_at=moment, data=data)
    EVENTS_PUBLISHED.labels(event.event_type).inc()
    pending = unit_of_work.PendingEvent(
        event_id=event_id,
        event_type=event.event_type,
        version=event.version,
        source=event.source,
        aggregate_id=event.aggregate_id,
        envelope=envelope,
        headers=headers,
        created_at=moment,
        data=data,
    )
    uow = unit_of_work.current(using)
    if uow is not None:
        uow.collect(pending)
        return event_id
    # No unit of work: a unit of one event, written now and dispatched after the commit.
    with unit_of_work.unit_of_work(using=using, continue_steps=False) as single:
        single.collect(pending)
    return event_id


__all__ = ["OutboxEvent", "PublishOutsideTransaction", "build_envelope", "publish"]
