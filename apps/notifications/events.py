"""Events the notifications context publishes: ids and words of the bank, never an address or a text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fintech.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class NotificationSend(DomainEvent):
    """A notification was recorded for delivery (one per event, channel and recipient)."""

    event_type: ClassVar[str] = "notification.send"
    source: ClassVar[str] = "notifications"
    aggregate_field: ClassVar[str] = "notification_id"

    notification_id: str
    source_event_id: str
    source_event_type: str
    notice: str
    category: str
    channel: str
    recipient_kind: str
    customer_id: str | None
    language: str
    recorded_at: str
