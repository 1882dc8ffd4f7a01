from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from fintech.events import DomainEvent


@dataclass(frozen=True, kw_only=True)
class AnalyticsEvent(DomainEvent):
    """A fact of a domain event was counted into the daily figures (one per fact)."""

    event_type: ClassVar[str] = "analytics.event"
    source: ClassVar[str] = "analytics"
    aggregate_field: ClassVar[str] = "source_event_id"

    source_event_id: str
    source_event_type: str
    metric: str
    day: str
    currency: str
    amount: int
    subject_id: str
    occurred_at: str
