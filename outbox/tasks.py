"""Celery tasks: event dispatch after commit, and the periodic sweeper."""

from __future__ import annotations

import uuid

from celery import shared_task

from outbox import dispatcher


@shared_task(name="outbox.tasks.dispatch_events", acks_late=True)
def dispatch_events(event_ids: list[str]) -> int:
    report = dispatcher.dispatch(event_ids=[uuid.UUID(e) for e in event_ids], limit=len(event_ids))
    return report.handled


@shared_task(name="outbox.tasks.sweep_outbox")
def sweep_outbox() -> int:
    return dispatcher.sweep().handled


@shared_task(name="outbox.tasks.purge_outbox")
def purge_outbox() -> int:
    from outbox.housekeeping import purge

    return purge().outbox_events
