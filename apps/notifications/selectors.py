from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from django.db.models import Q, QuerySet

from apps.notifications.models import ChannelOptOut, Notification


def notification_get(*, notification_id: uuid.UUID) -> Notification | None:
    return Notification.objects.filter(pk=notification_id).first()


def notification_list(*, customer_id: uuid.UUID) -> QuerySet[Notification]:
    return Notification.objects.filter(customer_id=customer_id)


def notifications_due(*, now: datetime, limit: int) -> list[Notification]:
    """Pending notifications whose time has come and that no worker holds, oldest first."""
    return list(
        Notification.objects.filter(status=Notification.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("next_attempt_at", "created_at")[:limit]
    )


def recorded_keys(*, event_ids: Iterable[uuid.UUID]) -> set[tuple[uuid.UUID, str, str]]:
    """(event id, channel, recipient) of the notifications already recorded for these events."""
    return set(Notification.objects.filter(event_id__in=set(event_ids)).values_list("event_id", "channel", "recipient"))


def opted_out(*, customer_ids: Iterable[uuid.UUID]) -> set[tuple[uuid.UUID, str]]:
    return set(ChannelOptOut.objects.filter(customer_id__in=set(customer_ids)).values_list("customer_id", "channel"))
