"""Celery tasks: event dispatch after commit, and the periodic sweeper."""

from __future__ import annotations

import logging
import uuid

from celery import shared_task

from outbox import dispatcher
from outbox.unit_of_work import Written

logger = logging.getLogger(__name__)


@shared_task(name="outbox.tasks.dispatch_events", acks_late=True)
def dispatch_events(event_ids: list[str]) -> int:
    report = dispatcher.dispatch(event_ids=[uuid.UUID(e) for e in event_ids], limit=len(event_ids))
    return report.handled


def enqueue_dispatch(written: list[Written]) -> None:
    """After a commit with `FINTECH_EVENT_DISPATCH=celery`: a worker delivers the events.
    Never fails the committed work: what is not enqueued is the sweeper's."""
    try:
        dispatch_events.delay([str(item.event.id) for item in written])
    except Exception:
        logger.exception("could not enqueue event dispatch; the sweeper will deliver")


@shared_task(name="outbox.tasks.sweep_outbox")
def sweep_outbox() -> int:
    return dispatcher.sweep().handled


@shared_task(name="outbox.tasks.purge_outbox")
def purge_outbox() -> int:
    from outbox.housekeeping import purge

    return purge().outbox_events
