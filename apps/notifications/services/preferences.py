"""A customer's channel preferences, and the erasure of their notifications' text."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone

from apps.notifications.errors import (
    UnknownChannel,
)
from apps.notifications.models import Channel, ChannelOptOut, Notification
from outbox.unit_of_work import unit_of_work

# -- preferences and erasure -----------------------------------------------------------------------


def _channel(value: str) -> Channel:
    if value not in Channel.values:
        raise UnknownChannel(f"No channel {value!r}.", errors={"channel": [f"One of {', '.join(Channel.values)}."]})
    return Channel(value)


def channel_opt_out(*, customer_id: uuid.UUID, channel: str, now: datetime | None = None) -> None:
    """The customer no longer wants activity notices on `channel`; security notices still come."""
    with unit_of_work():
        ChannelOptOut.objects.get_or_create(
            customer_id=customer_id, channel=_channel(channel).value, defaults={"created_at": now or timezone.now()}
        )


def channel_opt_in(*, customer_id: uuid.UUID, channel: str) -> None:
    with unit_of_work():
        ChannelOptOut.objects.filter(customer_id=customer_id, channel=_channel(channel).value).delete()


def customers_notifications_erase(*, customer_ids: Iterable[uuid.UUID], now: datetime | None = None) -> int:
    """The customers' personal data was erased: their notifications keep ids, channels and
    outcomes, lose their text (which greets them by name), and the unsent ones are cancelled."""
    now = now or timezone.now()
    ids = set(customer_ids)
    with unit_of_work():
        Notification.objects.filter(customer_id__in=ids, status=Notification.Status.PENDING).update(
            status=Notification.Status.CANCELLED
        )
        return Notification.objects.filter(customer_id__in=ids).update(
            subject="", body="", erased_at=now, lease_until=None, updated_at=now
        )
