"""How far behind the spine is: the age of the oldest event not yet delivered to its handlers
(a stalled dispatcher) and of the oldest not yet shipped (a stalled relay). Shown by /readyz
and exported to Prometheus at each scrape."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from outbox.models import OutboxEvent


@dataclass(frozen=True)
class Backlog:
    undelivered: int
    oldest_undelivered_seconds: float | None
    unsent: int
    oldest_unsent_seconds: float | None


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else max(0.0, (now - moment).total_seconds())


def backlog(*, now: datetime | None = None) -> Backlog:
    """One statement over the outbox's two partial indexes."""
    now = now or timezone.now()
    undelivered, unsent = Q(dispatched_at__isnull=True), Q(sent_at__isnull=True)
    found = OutboxEvent.objects.aggregate(
        undelivered=Count("id", filter=undelivered),
        oldest_undelivered=Min("created_at", filter=undelivered),
        unsent=Count("id", filter=unsent),
        oldest_unsent=Min("created_at", filter=unsent),
    )
    return Backlog(
        undelivered=found["undelivered"],
        oldest_undelivered_seconds=_age(found["oldest_undelivered"], now),
        unsent=found["unsent"],
        oldest_unsent_seconds=_age(found["oldest_unsent"], now),
    )


def dispatcher_check() -> dict[str, object]:
    """/readyz's view of the dispatcher: stalled when an event has waited for its handlers
    longer than `FINTECH_DISPATCH_STALL_SECONDS`. Not a reason to stop serving (requests still
    commit their work and their events), so the probe reports it as degraded, not unready."""
    try:
        found = backlog()
    except Exception as error:  # noqa: BLE001 - a probe reports, it does not raise
        return {"ok": False, "critical": False, "error": type(error).__name__}
    limit = float(settings.FINTECH_DISPATCH_STALL_SECONDS)
    age = found.oldest_undelivered_seconds
    return {
        "ok": age is None or age <= limit,
        "critical": False,
        "undelivered_events": found.undelivered,
        "oldest_undelivered_seconds": None if age is None else round(age, 1),
        "stalled_after_seconds": limit,
        "unsent_events": found.unsent,
        "oldest_unsent_seconds": None if found.oldest_unsent_seconds is None else round(found.oldest_unsent_seconds, 1),
    }


_GAUGES = (
    ("fintech_outbox_undelivered_events", "Committed events not yet applied by every handler"),
    (
        "fintech_outbox_oldest_undelivered_seconds",
        "Age of the oldest event still waiting for a handler (a stalled dispatcher grows it)",
    ),
    ("fintech_outbox_unsent_events", "Committed events not yet shipped"),
    (
        "fintech_outbox_oldest_unsent_seconds",
        "Age of the oldest event not yet shipped by the relay (a stalled relay or broker grows it)",
    ),
)


class BacklogCollector(Collector):
    """Prometheus gauges read from the outbox when /metrics is scraped."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Registering asks for the names: answer without touching the database.
        for name, documentation in _GAUGES:
            yield GaugeMetricFamily(name, documentation)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            found = backlog()
        except Exception:  # noqa: BLE001 - no database, no gauges: the scrape still answers
            return
        values = (
            found.undelivered,
            found.oldest_undelivered_seconds or 0.0,
            found.unsent,
            found.oldest_unsent_seconds or 0.0,
        )
        for (name, documentation), value in zip(_GAUGES, values, strict=True):
            yield GaugeMetricFamily(name, documentation, value=value)
