"""Analytics reads every domain event: reactions after the commit, in batches, each batch's
facts inserted and added to the figures in a few statements.

Every event type the registry knows is subscribed except `analytics.event`, the context's own
output: counting it would feed on itself. Types that carry no business fact are delivered and
acknowledged like the others and count nothing (apps/analytics/facts.py says which do).
"""

from __future__ import annotations

from collections.abc import Sequence

from apps.analytics import services
from fintech.bus import subscribe
from fintech.events import ReceivedEvent
from fintech.events.registry import known_types

OWN_EVENT = "analytics.event"


def record_facts(events: Sequence[ReceivedEvent]) -> None:
    services.facts_record(events=events)


for _event_type in known_types():
    if _event_type != OWN_EVENT:
        subscribe(_event_type, name=f"analytics.count.{_event_type}", batch=True)(record_facts)
