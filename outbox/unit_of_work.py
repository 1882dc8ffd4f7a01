"""The unit of work: one database transaction, the events its work publishes, and the
choreography steps those events start (Cosmic Python's message bus, kept inside one commit).

A service opens `unit_of_work()` where it would open `transaction.atomic()`. While it is open:

- `publish()` keeps each event in memory instead of writing its row at once;
- when the work is done and before the commit, the steps subscribed to those events
  (`subscribe(..., same_unit_of_work=True)`) run in the same transaction, inside one
  savepoint, and the events they publish continue the chain in turn. If any step raises, the
  savepoint rolls back every step (and what they published) and the events are left to the
  dispatcher after the commit, which delivers them handler by handler with retries;
- then every surviving event is written in one INSERT, the inbox records of the steps that
  ran in one more, and the rows the unit delivered (a dispatcher's batch) are marked
  dispatched in one UPDATE. An event whose subscribers all ran here is written already
  dispatched; the others are handed to the dispatcher once the transaction has committed.

So an event is still recorded with the change or not at all, each handler's effect still
commits with its inbox record, and a crash anywhere loses nothing: what committed is in the
outbox, what did not never happened. What changes is the price: a transfer's five steps and
six events cost one transaction instead of fifteen. Units nest: an inner `unit_of_work()`
joins the one already open on this thread (as a savepoint), and the outermost finishes.
See docs/adr/0003-the-spine-at-the-speed-of-the-books.md.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Model
from django.utils import timezone

from fintech import bus
from fintech.events import ReceivedEvent, upcast
from fintech.faults import crash_point
from fintech.sql import insert_rows
from outbox.metrics import CHOREOGRAPHY_DEFERRED, EVENTS_HANDLED
from outbox.models import InboxRecord, OutboxEvent

logger = logging.getLogger(__name__)

# More steps than this in one unit is a loop between handlers, not a choreography.
MAX_STEPS_PER_UNIT = 50_000
# What a unit writes of an event; `txid` takes the database's default (the writing transaction).
OUTBOX_COLUMNS = (
    "event_id",
    "event_type",
    "schema_version",
    "source",
    "aggregate_id",
    "envelope",
    "headers",
    "created_at",
    "dispatched_at",
)


class ChoreographyLoop(RuntimeError):
    """Steps kept publishing events that start more steps."""


class PendingEvent:
    """An event published inside a unit of work, on its way to the outbox.

    It is registered with `transaction.on_commit` as a callback that does nothing: Django drops
    the callbacks registered inside a savepoint that rolls back, so an event published there is
    forgotten with the rest of the savepoint's work, exactly as its row would have been. The
    unit writes the events that are still registered when it finishes.
    """

    __slots__ = (
        "aggregate_id",
        "created_at",
        "data",
        "dispatched_at",
        "envelope",
        "event_id",
        "event_type",
        "headers",
        "row_id",
        "source",
        "version",
    )

    def __init__(
        self,
        *,
        event_id: uuid.UUID,
        event_type: str,
        version: int,
        source: str,
        aggregate_id: str,
        envelope: dict[str, Any],
        headers: dict[str, str],
        created_at: datetime,
        data: dict[str, Any],
    ) -> None:
        self.event_id = event_id
        self.event_type = event_type
        self.version = version
        self.source = source
        self.aggregate_id = aggregate_id
        self.envelope = envelope
        self.headers = headers
        self.created_at = created_at
        self.data = data
        self.row_id: int | None = None
        self.dispatched_at: datetime | None = None

    # The outbox row's names, for insert_rows.
    @property
    def schema_version(self) -> int:
        return self.version

    @property
    def pk(self) -> int | None:
        return self.row_id

    @pk.setter
    def pk(self, value: int) -> None:
        self.row_id = value

    def __call__(self) -> None:
        return None  # the registration is what counts (see the class docstring)

    def received(self) -> ReceivedEvent:
        """The event as its handlers see it (upcast to the newest version they know)."""
        version, data = upcast(self.event_type, self.version, self.data)
        return ReceivedEvent(
            id=self.event_id,
            type=self.event_type,
            version=version,
            source=self.envelope["source"],
            subject=self.aggregate_id,
            time=self.created_at,
            data=data,
            headers=self.headers,
        )


@dataclass(frozen=True, slots=True)
class _InboxRow:
    handler: str
    event_id: uuid.UUID
    handled_at: datetime


@dataclass(frozen=True, slots=True)
class Written:
    """An event written by a unit of work whose subscribers did not all run in it."""

    row_id: int
    event: ReceivedEvent
    done: frozenset[str]  # handlers that already applied it, in that unit


AfterCommit = Callable[[list[Written]], None]
# Set by the outbox app (apps.py) to the dispatcher's entry point: a unit of work hands it the
# events that still have handlers to run, once the transaction has committed.
_after_commit_hook: list[AfterCommit] = []


def set_after_commit(hook: AfterCommit) -> None:
    _after_commit_hook[:] = [hook]


E = TypeVar("E")
M = TypeVar("M", bound=Model)


def grouped(events: Iterable[E], key: Callable[[E], str]) -> dict[str, list[E]]:
    """Events grouped by `key` (their type), the groups in order of their first event, each
    group in order. A batch applies its events by type: within one type, in order."""
    groups: dict[str, list[E]] = {}
    for event in events:
        groups.setdefault(key(event), []).append(event)
    return groups


class UnitOfWork:
    def __init__(self, *, using: str, continue_steps: bool, after_commit: bool) -> None:
        self.using = using
        self.continue_steps = continue_steps
        self.after_commit = after_commit
        self.published: list[PendingEvent] = []
        self.applied: list[tuple[str, uuid.UUID]] = []  # (handler, event id) of steps run here
        self.delivered: list[int] = []  # rows written earlier that this unit delivered
        self.seen: dict[tuple[type[Model], object], Model] = {}
        self._callbacks: list[Any] | None = None
        self._alive: set[int] = set()
        self._counted = 0

    # -- what the work does ---------------------------------------------------------------

    def collect(self, event: PendingEvent) -> None:
        transaction.on_commit(event, using=self.using)
        self.published.append(event)

    def remember(self, instance: Model) -> None:
        """Keep `instance` as this unit's copy of its row: a row this transaction created (or
        locked), which no other transaction can change before the commit. Steps that load it
        again take this copy instead of a SELECT ... FOR UPDATE (Cosmic Python's `seen`), and
        the command that created it returns it as the choreography left it. Only the context
        that owns the model remembers its instances, and every write of it keeps the copy right."""
        self.seen[(type(instance), instance.pk)] = instance

    def remembered(self, model: type[M], pk: object) -> M | None:
        instance = self.seen.get((model, pk))
        return instance if isinstance(instance, model) else None

    def delivered_rows(self, row_ids: Iterable[int]) -> None:
        """Rows of events written earlier that this unit has delivered to every subscriber:
        they are marked dispatched when it finishes."""
        self.delivered.extend(row_ids)

    # -- finishing --------------------------------------------------------------------------

    def finish(self) -> None:
        """Run the steps the published events start, then write what the unit produced."""
        if self.continue_steps and any(bus.steps_for(event.event_type) for event in self.published):
            self._continue_steps()
        self._write()

    def _is_alive(self, event: PendingEvent) -> bool:
        """Whether `event` is still registered, i.e. no savepoint around it rolled back.

        Django replaces its list of callbacks when a savepoint rolls back and appends to it
        otherwise, so the set is rebuilt only after a rollback."""
        callbacks = connections[self.using].run_on_commit
        if callbacks is not self._callbacks:
            self._callbacks = callbacks
            self._alive = {id(entry[1]) for entry in callbacks if isinstance(entry[1], PendingEvent)}
            self._counted = len(self.published)
        elif self._counted < len(self.published):
            self._alive.update(id(published) for published in self.published[self._counted :])
            self._counted = len(self.published)
        return id(event) in self._alive

    def _continue_steps(self) -> None:
        applied: list[tuple[str, uuid.UUID]] = []
        try:
            with transaction.atomic(using=self.using):
                position = 0
                # In waves: the events published so far, by type in order of first appearance,
                # each step applied to all its events at once; then what those steps published.
                while position < len(self.published):
                    wave = self.published[position:]
                    position = len(self.published)
                    alive = [event for event in wave if self._is_alive(event)]
                    for event_type, events in grouped(alive, lambda event: event.event_type).items():
                        steps = bus.steps_for(event_type)
                        if not steps:
                            continue
                        received = [event.received() for event in events]
                        for step in steps:
                            step.apply(received)
                            applied.extend((step.name, event.event_id) for event in events)
                    if len(applied) > MAX_STEPS_PER_UNIT:
                        raise ChoreographyLoop(f"more than {MAX_STEPS_PER_UNIT} steps in one unit of work")
        except Exception as error:  # noqa: BLE001 - any step error leaves the events to the dispatcher
            for instance in self.seen.values():
                instance.refresh_from_db()  # the steps' changes were rolled back with them
            CHOREOGRAPHY_DEFERRED.inc()
            logger.warning(
                "a choreography step failed; the dispatcher delivers its events after the commit",
                extra={"error": repr(error), "steps_rolled_back": len(applied)},
            )
            return
        self.applied.extend(applied)
        for name, _ in applied:
            EVENTS_HANDLED.labels(name).inc()

    def _write(self) -> None:
        events = [event for event in self.published if self._is_alive(event)]
        now = timezone.now()
        handled: dict[uuid.UUID, set[str]] = {}
        for name, event_id in self.applied:
            handled.setdefault(event_id, set()).add(name)
        waiting: list[PendingEvent] = []
        for event in events:
            done = handled.get(event.event_id, set())
            finished = all(sub.name in done for sub in bus.subscriptions_for(event.event_type))
            event.dispatched_at = now if finished else None
            if not finished:
                waiting.append(event)
        crash_point("before_outbox_write")
        # The pending events themselves carry the row's columns: no model instance per row. The
        # inbox records ride in the same statement (PostgreSQL).
        inbox = [_InboxRow(name, event_id, now) for name, event_id in self.applied]
        insert_rows(
            OutboxEvent,
            OUTBOX_COLUMNS,
            events,
            returning_pk=True,
            also=[(InboxRecord, ("handler", "event_id", "handled_at"), inbox)],
        )
        if self.delivered:
            mark_dispatched(self.delivered, now=now, using=self.using)
        if waiting and self.after_commit and _after_commit_hook:
            hook = _after_commit_hook[0]
            written = [
                Written(
                    row_id=event.row_id or 0,
                    event=event.received(),
                    done=frozenset(handled.get(event.event_id, ())),
                )
                for event in waiting
            ]
            transaction.on_commit(lambda: hook(written), using=self.using)


def mark_dispatched(row_ids: Sequence[int], *, now: datetime, using: str = "default") -> None:
    """Every handler is done with these rows: a row the relay has shipped already goes, the
    others are marked and go once shipped. One UPDATE; a DELETE only when some were shipped."""
    table = OutboxEvent._meta.db_table
    marks = ", ".join(["%s"] * len(row_ids))
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET dispatched_at = %s WHERE id IN ({marks}) AND dispatched_at IS NULL "  # noqa: S608
            "RETURNING id, sent_at",
            [connection.ops.adapt_datetimefield_value(now), *row_ids],
        )
        shipped = [row_id for row_id, sent_at in cursor.fetchall() if sent_at is not None]
        if shipped and not settings.FINTECH_OUTBOX_KEEP_SHIPPED:
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(shipped))})",  # noqa: S608
                shipped,
            )


_local = threading.local()


def current(using: str = "default") -> UnitOfWork | None:
    """The unit of work open on this thread, if any."""
    uow: UnitOfWork | None = getattr(_local, "unit", None)
    return uow if uow is not None and uow.using == using else None


def steps_continue_here() -> bool:
    """Whether a unit opened by a command continues the choreography before it commits: with
    in-process dispatch, yes; when workers deliver (`worker`, `celery`) the command only
    records its events and the workers' units continue them."""
    return bool(settings.FINTECH_EVENT_DISPATCH == "inline")


@contextmanager
def unit_of_work(
    *,
    using: str = "default",
    continue_steps: bool | None = None,
    after_commit: bool = True,
    savepoint: bool = False,
) -> Iterator[UnitOfWork]:
    """A transaction that collects its events and continues the choreography before it commits.

    `continue_steps` defaults to `steps_continue_here()`. `after_commit=False` writes the
    events and hands none to the in-process dispatcher (a Kafka consumer's unit: other
    contexts' handlers are other consumers' business).

    Inside a unit already open, a command joins it without a savepoint (two statements saved
    per command on the hot path): an error it raises rolls back the whole unit, as it should
    for a step of a choreography. A command that expects an error it will catch and recover
    from (a unique constraint racing a check) asks for `savepoint=True`.
    """
    outer = current(using)
    if outer is not None:
        if savepoint:
            with transaction.atomic(using=using):
                yield outer
        else:
            yield outer
        return
    uow = UnitOfWork(
        using=using,
        continue_steps=steps_continue_here() if continue_steps is None else continue_steps,
        after_commit=after_commit,
    )
    _local.unit = uow
    try:
        with transaction.atomic(using=using):
            try:
                yield uow
                uow.finish()
            finally:
                # Closed before the commit: work done by on-commit callbacks opens units of its own.
                _local.unit = None
    finally:
        _local.unit = None
