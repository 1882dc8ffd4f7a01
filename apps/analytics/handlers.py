"""Analytics reads every domain event: reactions after the commit, in batches, each batch's
facts inserted and added to the figures in a few statements.

Every event type the registry knows is subscribed except `analytics.event`, the context's own
output (counting it would feed on itself), and the payment network's messages, which are not
the bank's facts: the payments context books them, or refuses to, and publishes what it booked
(`payment.settled`, `payment.credited`, ...), which is what is counted. Types that carry no
business fact are delivered and acknowledged like the others and count nothing
(apps/analytics/facts.py says which do).
"""

from __future__ import annotations

from collections.abc import Sequence

from apps.analytics import services
from fintech.bus import subscribe
from fintech.events import ReceivedEvent
from fintech.events.registry import known_types

OWN_EVENT = "analytics.event"
# Written by the payment network, not the bank: its answers to our payments and its credits.
NETWORK_MESSAGES = ("payment.processed", "payment.received")
NOT_READ = (OWN_EVENT, *NETWORK_MESSAGES)


def record_facts(events: Sequence[ReceivedEvent]) -> None:
    services.facts_record(events=events)


for _event_type in known_types():
    if _event_type not in NOT_READ:
        subscribe(_event_type, name=f"analytics.count.{_event_type}", batch=True)(record_facts)
