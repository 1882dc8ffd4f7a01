"""`publish()`: record a domain event in the outbox inside the caller's transaction;
`record_incoming()`: the same for a message that came from outside the bank."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from fintech.events import DomainEvent, ReceivedEvent, rfc3339, validate
from fintech.observability import context
from outbox import unit_of_work
from outbox.dispatcher import received_from_envelope
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
    headers = _work_headers()
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
    _collect(pending, using)
    return event_id


def _work_headers() -> dict[str, str]:
    work = context.current()
    headers = {"traceparent": work.trace.child().traceparent, "correlation_id": work.correlation_id}
    if work.causation_id:
        headers["causation_id"] = work.causation_id
    return headers


def _collect(pending: unit_of_work.PendingEvent, using: str) -> None:
    uow = unit_of_work.current(using)
    if uow is not None:
        uow.collect(pending)
        return
    # No unit of work: a unit of one event, written now and dispatched after the commit.
    with unit_of_work.unit_of_work(using=using, continue_steps=False) as single:
        single.collect(pending)


def record_incoming(envelope: Mapping[str, Any], *, using: str = "default") -> ReceivedEvent:
    """Record a CloudEvent from outside the bank (the payment network simulated in this process)
    in the outbox, as it is: the dispatcher then delivers it to every handler of its type, each
    once (the inbox), with retries and dead letters, as it delivers the bank's own events and as
    a consumer group delivers a Kafka record. It is validated against its schema first
    (EventSchemaError, ValueError). In the caller's unit of work, or in one of its own."""
    event = received_from_envelope(dict(envelope))
    pending = unit_of_work.PendingEvent(
        event_id=event.id,
        event_type=event.type,
        version=event.version,
        source=event.source.strip("/")[:50],
        aggregate_id=event.subject,
        envelope=dict(envelope),
        headers=_work_headers(),
        created_at=event.time,
        data=event.data,
    )
    _collect(pending, using)
    return event


__all__ = ["OutboxEvent", "PublishOutsideTransaction", "build_envelope", "publish", "record_incoming"]
