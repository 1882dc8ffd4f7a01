from __future__ import annotations

from django.db.models import F

from fintech.bus import subscribe
from fintech.events import ReceivedEvent
from tests.spine.models import FailureSwitch, Tally


class ProbeFailure(RuntimeError):
    pass


def _apply(handler: str, event: ReceivedEvent) -> None:
    if FailureSwitch.objects.filter(handler=handler).exists():
        raise ProbeFailure(f"{handler} is switched to fail")
    tally, _ = Tally.objects.get_or_create(handler=handler, event_id=event.id)
    Tally.objects.filter(pk=tally.pk).update(applied=F("applied") + 1)


@subscribe("customer.created", name="probe.count")
def count(event: ReceivedEvent) -> None:
    _apply("probe.count", event)


@subscribe("customer.created", name="probe.fragile")
def fragile(event: ReceivedEvent) -> None:
    _apply("probe.fragile", event)
