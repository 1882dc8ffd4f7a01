from __future__ import annotations

from django.db import connection

from fintech.bus import subscribe
from fintech.events import ReceivedEvent
from tests.spine.models import FailureSwitch, Tally


class ProbeFailure(RuntimeError):
    pass


def _apply(handler: str, event: ReceivedEvent) -> None:
    if FailureSwitch.objects.filter(handler=handler).exists():
        raise ProbeFailure(f"{handler} is switched to fail")
    # One statement (PostgreSQL and SQLite speak the same upsert), so that the probe costs a
    # consumer little beside the spine's own work; `applied` counts every application.
    table = connection.ops.quote_name(Tally._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (handler, event_id, applied) VALUES (%s, %s, 1) "  # noqa: S608 - our table
            f"ON CONFLICT (handler, event_id) DO UPDATE SET applied = {table}.applied + 1",
            [handler, Tally._meta.get_field("event_id").get_db_prep_value(event.id, connection)],
        )


@subscribe("customer.created", name="probe.count")
def count(event: ReceivedEvent) -> None:
    _apply("probe.count", event)


@subscribe("customer.created", name="probe.fragile")
def fragile(event: ReceivedEvent) -> None:
    _apply("probe.fragile", event)
