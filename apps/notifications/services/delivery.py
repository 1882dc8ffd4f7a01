"""Delivery of what was recorded: sent outside any transaction under an idempotency key the
provider sees, then marked; retried with backoff under a lease; resent by the back office."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from apps.customers import public as customers
from apps.notifications import channels, selectors
from apps.notifications.errors import (
    NotificationNotFound,
    NotificationNotResendable,
)
from apps.notifications.metrics import NOTIFICATION_DELIVERIES
from apps.notifications.models import Channel, Notification
from fintech import backoff
from fintech.events import rfc3339
from fintech.faults import crash_point
from outbox.unit_of_work import unit_of_work

logger = logging.getLogger(__name__)


# -- delivery ------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0  # another worker held them

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.failed


def backoff_seconds(attempts: int) -> float:
    """The next try of a message a provider refused, spread widely (a provider's outage fails
    many at once)."""
    return backoff.backoff_seconds(
        attempts,
        base=settings.FINTECH_NOTIFICATIONS_RETRY_BASE_SECONDS,
        cap=settings.FINTECH_NOTIFICATIONS_RETRY_MAX_SECONDS,
        jitter=0.5,
    )


def _lease(notification: Notification, now: datetime) -> datetime | None:
    """Take the notification for sending (one statement); None when another worker has it."""
    until = now + timedelta(seconds=settings.FINTECH_NOTIFICATIONS_LEASE_SECONDS)
    taken = (
        Notification.objects.filter(pk=notification.pk, status=Notification.Status.PENDING, next_attempt_at__lte=now)
        .exclude(lease_until__gte=now)
        .update(lease_until=until)
    )
    return until if taken else None


def _address(notification: Notification) -> str | None:
    if notification.customer_id is None:
        return str(settings.FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL) or None
    contact = customers.customer_contacts([notification.customer_id]).get(notification.customer_id)
    return contact.email if contact is not None and not contact.erased else None


def _push_payload(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.idempotency_key,
        "notification_id": str(notification.id),
        "event_id": str(notification.event_id),
        "event_type": notification.event_type,
        "notice": notification.notice,
        "category": notification.category,
        "customer_id": str(notification.customer_id) if notification.customer_id else None,
        "language": notification.language,
        "title": notification.subject,
        "body": notification.body,
        "created_at": rfc3339(notification.created_at),
    }


def send(notification: Notification) -> bool:
    """Hand the notification to its channel's provider; False when there is nobody to send to
    any more (erased). Raises `channels.DeliveryFailed`."""
    if notification.channel == Channel.EMAIL:
        address = _address(notification)
        if address is None:
            return False
        channels.send_email(
            key=notification.idempotency_key, to=address, subject=notification.subject, body=notification.body
        )
    else:
        channels.send_push(key=notification.idempotency_key, payload=_push_payload(notification))
    return True


def notifications_deliver(*, now: datetime | None = None, limit: int = 100) -> DeliveryReport:
    """Send the notifications that are due, one at a time and outside any transaction: take a
    lease, send, then record the outcome. A failure is tried again after a backoff with jitter
    and, after `FINTECH_NOTIFICATIONS_MAX_ATTEMPTS`, marked failed with the error."""
    now = now or timezone.now()
    report = DeliveryReport()
    for notification in selectors.notifications_due(now=now, limit=limit):
        lease = _lease(notification, now)
        if lease is None:
            report.skipped += 1
            continue
        try:
            delivered = send(notification)
        except channels.DeliveryFailed as error:
            _record_failure(notification, error=str(error), now=now)
            if notification.status == Notification.Status.FAILED:
                report.failed += 1
            else:
                report.retrying += 1
            continue
        if not delivered:
            _cancel(notification, now=now)
            report.cancelled += 1
            continue
        crash_point("after_send_before_record")  # the provider has it; the lease runs out, it goes again
        Notification.objects.filter(pk=notification.pk).update(
            status=Notification.Status.SENT,
            attempts=F("attempts") + 1,
            sent_at=timezone.now(),
            lease_until=None,
            updated_at=timezone.now(),
        )
        NOTIFICATION_DELIVERIES.labels(notification.channel, "sent").inc()
        report.sent += 1
    return report


def _record_failure(notification: Notification, *, error: str, now: datetime) -> None:
    notification.attempts += 1
    notification.last_error = error[:2000]
    notification.lease_until = None
    notification.updated_at = now
    if notification.attempts >= settings.FINTECH_NOTIFICATIONS_MAX_ATTEMPTS:
        notification.status = Notification.Status.FAILED
        outcome = "failed"
        logger.error(
            "notification given up",
            extra={"notification_id": str(notification.id), "channel": notification.channel, "error": error},
        )
    else:
        notification.next_attempt_at = now + timedelta(seconds=backoff_seconds(notification.attempts))
        outcome = "retry"
    notification.save(
        update_fields=["attempts", "last_error", "lease_until", "updated_at", "status", "next_attempt_at"]
    )
    NOTIFICATION_DELIVERIES.labels(notification.channel, outcome).inc()


def _cancel(notification: Notification, *, now: datetime) -> None:
    Notification.objects.filter(pk=notification.pk).update(
        status=Notification.Status.CANCELLED, lease_until=None, updated_at=now
    )


def notification_resend(*, notification_id: uuid.UUID, now: datetime | None = None) -> Notification:
    """Deliver a sent or failed notification again (the back office's resend): a new delivery,
    with a new idempotency key, so the provider does not take it for the first one."""
    now = now or timezone.now()
    with unit_of_work():
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None:
            raise NotificationNotFound(f"No notification {notification_id}.")
        if notification.status not in (Notification.Status.SENT, Notification.Status.FAILED):
            raise NotificationNotResendable(f"The notification is {notification.status}.")
        notification.resends += 1
        notification.status = Notification.Status.PENDING
        notification.attempts = 0
        notification.last_error = ""
        notification.sent_at = None
        notification.lease_until = None
        notification.next_attempt_at = now
        notification.updated_at = now
        notification.save()
    return notification
