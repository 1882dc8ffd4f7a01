"""In-process publish/subscribe: which handlers react to which event types.

`publish()` lives in the outbox (it writes a row in the caller's transaction); this module
only keeps the subscriptions, keyed by a stable handler name that the inbox records, so
that a handler renamed in code is a deliberate, visible change.

A subscription is one of two kinds:

- a step of a choreography (`same_unit_of_work=True`): a command that needs no outside
  answer, such as posting a validated transfer. It runs in the unit of work that published
  the event, before that commits, so a transfer's steps cost one transaction, not one each;
- a reaction (the default): it runs after the commit, in a batch with other events' reactions
  (notifications, analytics), and may lag behind without holding up the work that caused it.

Either way a handler records its event id in the inbox with its effect, so it applies an
event once however often the event arrives (docs/adr/0003-the-spine-at-the-speed-of-the-books.md).

A handler subscribed with `batch=True` takes a sequence of events of its type and applies them
together (one statement for a thousand transfers instead of a thousand); the spine hands it
whatever arrived together, often one. A batch of one runs in the work context of its event
(same trace, caused by it); a larger batch in the context of its first event, without a
causation id, since no single event caused what it publishes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from fintech.events.base import ReceivedEvent
from fintech.observability import context

Handler = Callable[[ReceivedEvent], None]
BatchHandler = Callable[[Sequence[ReceivedEvent]], None]


def work_context_of(event: ReceivedEvent) -> context.WorkContext:
    """The work an event causes: the same trace and correlation, caused by this event."""
    return context.from_incoming(
        traceparent=event.headers.get("traceparent"),
        correlation_id=event.headers.get("correlation_id"),
        causation_id=str(event.id),
    )


@dataclass(frozen=True, slots=True)
class Subscription:
    name: str
    event_type: str
    handler: Callable[[Any], None]  # a Handler, or a BatchHandler when `batch`
    same_unit_of_work: bool = False
    batch: bool = False

    def apply(self, events: Sequence[ReceivedEvent]) -> None:
        """Apply `events` (all of this subscription's type), each in its own work context, or
        together for a batch handler."""
        if self.batch:
            work = work_context_of(events[0])
            with context.bind(work if len(events) == 1 else replace(work, causation_id=None)):
                self.handler(events)
            return
        for event in events:
            with context.bind(work_context_of(event)):
                self.handler(event)

    @property
    def context(self) -> str:
        """The bounded context that owns the handler: the part of its name before the dot."""
        return self.name.split(".", 1)[0]


_subscriptions: dict[str, list[Subscription]] = {}


H = TypeVar("H", Handler, BatchHandler)


def subscribe(
    event_type: str, *, name: str | None = None, same_unit_of_work: bool = False, batch: bool = False
) -> Callable[[H], H]:
    """Register `handler` for `event_type`. The name defaults to `module.function`.

    `same_unit_of_work=True` makes it a step of a choreography, `batch=True` a handler of a
    sequence of events (see the module's docstring).
    """

    def decorator(handler: H) -> H:
        sub_name = name or f"{handler.__module__}.{handler.__qualname__}"
        current = _subscriptions.setdefault(event_type, [])
        if any(existing.name == sub_name for existing in current):
            return handler  # a module imported twice registers once
        current.append(
            Subscription(
                name=sub_name,
                event_type=event_type,
                handler=handler,
                same_unit_of_work=same_unit_of_work,
                batch=batch,
            )
        )
        return handler

    return decorator


def subscriptions_for(event_type: str) -> list[Subscription]:
    return list(_subscriptions.get(event_type, ()))


def steps_for(event_type: str) -> list[Subscription]:
    """The choreography steps that continue `event_type` in the unit of work that published it."""
    return [sub for sub in _subscriptions.get(event_type, ()) if sub.same_unit_of_work]


def all_subscriptions() -> list[Subscription]:
    return [sub for subs in _subscriptions.values() for sub in subs]


def subscription_named(name: str) -> Subscription | None:
    for subs in _subscriptions.values():
        for sub in subs:
            if sub.name == name:
                return sub
    return None


def unsubscribe(name: str) -> None:
    """Remove a subscription (tests register temporary handlers)."""
    for event_type, subs in list(_subscriptions.items()):
        _subscriptions[event_type] = [sub for sub in subs if sub.name != name]
