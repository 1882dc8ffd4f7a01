"""Commands of the analytics context: count the facts of domain events into daily figures, and
rebuild the figures from the facts.

Correct under redelivery and concurrent consumers: a fact is inserted with
`ON CONFLICT (event id, metric) DO NOTHING RETURNING`, and only the facts this transaction
inserted are added to the figures, by an upsert that adds to the row in place. A second
delivery of an event, by this process or another consumer at the same moment, inserts nothing
(PostgreSQL makes the second inserter wait for the first and then finds the row), so it adds
nothing. Figures are upserted in one order (day, metric, currency) so two batches never
deadlock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from django.db import connection
from django.db.models import Count, Field, Sum
from django.utils import timezone

from apps.analytics import selectors
from apps.analytics.events import AnalyticsEvent
from apps.analytics.facts import Reading, readings_of, subjects_looked_up
from apps.analytics.models import DailyFigure, Fact
from fintech.events import ReceivedEvent, rfc3339
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work

# Rows per INSERT: 8 parameters a row stays far below SQLite's and PostgreSQL's limits.
INSERT_ROWS = 500


def _day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _readings(events: Sequence[ReceivedEvent]) -> list[tuple[ReceivedEvent, Reading]]:
    """The readings of every event; an event that takes its money from an earlier fact finds it
    in this batch or in the table (one statement for all of them)."""
    direct: list[tuple[ReceivedEvent, Reading]] = []
    later: list[ReceivedEvent] = []
    for event in events:
        if subjects_looked_up(event) is None:
            direct.extend((event, reading) for reading in readings_of(event, lambda subject, metrics: None))
        else:
            later.append(event)
    if not later:
        return direct
    in_batch = {(reading.subject_id, reading.metric): (reading.currency, reading.amount) for _, reading in direct}
    wanted = [looked for looked in map(subjects_looked_up, later) if looked is not None]
    stored = selectors.money_of_subjects(
        subject_ids={subject for subject, _ in wanted}, metrics={metric for _, metrics in wanted for metric in metrics}
    )

    def known(subject: str, metrics: tuple[str, ...]) -> tuple[str, int] | None:
        for metric in metrics:
            money = in_batch.get((subject, metric)) or stored.get((subject, metric))
            if money is not None:
                return money
        return None

    return direct + [(event, reading) for event in later for reading in readings_of(event, known)]


def _insert_new(facts: list[Fact]) -> list[Fact]:
    """Insert the facts that are not there yet and return those this statement inserted.

    In one order (event id, metric) for every consumer: two batches that share facts wait for
    each other on the unique index instead of deadlocking."""
    facts = sorted(facts, key=lambda fact: (fact.event_id.hex, fact.metric))
    table = connection.ops.quote_name(Fact._meta.db_table)
    columns = ["event_id", "event_type", "metric", "day", "currency", "amount", "subject_id", "occurred_at"]
    fields = [field for name in columns if isinstance(field := Fact._meta.get_field(name), Field)]
    inserted: list[Fact] = []
    for start in range(0, len(facts), INSERT_ROWS):
        chunk = facts[start : start + INSERT_ROWS]
        params: list[Any] = []
        for fact in chunk:
            params.extend(f.get_db_prep_value(getattr(fact, f.attname), connection) for f in fields)
        rows = ", ".join([f"({', '.join(['%s'] * len(columns))})"] * len(chunk))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {rows} "  # noqa: S608
                "ON CONFLICT (event_id, metric) DO NOTHING RETURNING event_id, metric",
                params,
            )
            new = {(str(event_id).replace("-", ""), metric) for event_id, metric in cursor.fetchall()}
        inserted.extend(fact for fact in chunk if (fact.event_id.hex, fact.metric) in new)
    return inserted


def _add_to_figures(facts: list[Fact]) -> None:
    sums: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for fact in facts:
        figure = sums[(fact.day, fact.metric, fact.currency)]
        figure[0] += 1
        figure[1] += fact.amount
    if not sums:
        return
    quote = connection.ops.quote_name
    table = quote(DailyFigure._meta.db_table)
    day_field = DailyFigure._meta.get_field("day")
    params: list[Any] = []
    for (day, metric, currency), (count, volume) in sorted(sums.items()):
        params += [day_field.get_db_prep_value(day, connection), metric, currency, count, volume]
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(sums))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (day, metric, currency, {quote('count')}, volume) VALUES {rows} "  # noqa: S608
            f"ON CONFLICT (day, metric, currency) DO UPDATE SET {quote('count')} = {table}.{quote('count')} + "
            f"excluded.{quote('count')}, volume = {table}.volume + excluded.volume",
            params,
        )


def facts_record(*, events: Sequence[ReceivedEvent]) -> list[Fact]:
    """Count the facts of these events into the daily figures, once each, and publish an
    `analytics.event` for each fact counted now (none for an `analytics.event`: it carries no
    fact, so counting never feeds on itself)."""
    with unit_of_work():
        facts = [
            Fact(
                event_id=event.id,
                event_type=event.type,
                metric=reading.metric,
                day=_day_of(event.time),
                currency=reading.currency,
                amount=reading.amount,
                subject_id=reading.subject_id[:64],
                occurred_at=event.time,
            )
            for event, reading in _readings(events)
        ]
        if not facts:
            return []
        inserted = _insert_new(facts)
        _add_to_figures(inserted)
        for fact in inserted:
            publish(
                AnalyticsEvent(
                    source_event_id=str(fact.event_id),
                    source_event_type=fact.event_type,
                    metric=fact.metric,
                    day=fact.day.isoformat(),
                    currency=fact.currency,
                    amount=fact.amount,
                    subject_id=fact.subject_id,
                    occurred_at=rfc3339(fact.occurred_at),
                ),
                occurred_at=timezone.now(),
            )
    return inserted


Progress = Callable[[int, int], None]


def figures_rebuild(*, days_per_step: int = 31, progress: Progress | None = None) -> int:
    """Recompute every daily figure from the facts, a range of days per statement; returns how
    many figures there are. The figures are locked meanwhile: a batch of facts being counted
    waits and adds its facts on top of the rebuilt figures (PostgreSQL; SQLite has one writer)."""
    with unit_of_work():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    f"LOCK TABLE {connection.ops.quote_name(DailyFigure._meta.db_table)} IN SHARE ROW EXCLUSIVE MODE"
                )
        DailyFigure.objects.all().delete()
        days = list(Fact.objects.order_by("day").values_list("day", flat=True).distinct())
        written = 0
        for start in range(0, len(days), days_per_step):
            step = days[start : start + days_per_step]
            sums = (
                Fact.objects.filter(day__gte=step[0], day__lte=step[-1])
                .values("day", "metric", "currency")
                .annotate(facts=Count("id"), total=Sum("amount"))
                .order_by("day", "metric", "currency")
            )
            figures = [
                DailyFigure(
                    day=row["day"],
                    metric=row["metric"],
                    currency=row["currency"],
                    count=row["facts"],
                    volume=row["total"] or 0,
                )
                for row in sums
            ]
            DailyFigure.objects.bulk_create(figures)
            written += len(figures)
            if progress is not None:
                progress(min(start + days_per_step, len(days)), len(days))
    return written
