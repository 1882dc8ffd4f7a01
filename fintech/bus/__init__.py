"""In-process publish/subscribe: which handlers react to which event types.

`publish()` lives in the outbox (it writes a row in the caller's transaction); this module
only keeps the subscriptions, keyed by a stable handler name that the inbox records, so
that a handler renamed in code is a deliberate, visible change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fintech.events.base import ReceivedEvent

Handler = Callable[[ReceivedEvent], None]


@dataclass(frozen=True, slots=True)
class Subscription:
    name: str
    event_type: str
    handler: Handler


_subscriptions: dict[str, list[Subscription]] = {}


def subscribe(event_type: str, *, name: str | None = None) -> Callable[[Handler], Handler]:
    """Register `handler` for `event_type`. The name defaults to `module.function`."""

    def decorator(handler: Handler) -> Handler:
        sub_name = name or f"{handler.__module__}.{handler.__qualname__}"
        current = _subscriptions.setdefault(event_type, [])
        if any(existing.name == sub_name for existing in current):
            return handler  # a module imported twice registers once
        current.append(Subscription(name=sub_name, event_type=event_type, handler=handler))
        return handler

    return decorator


def subscriptions_for(event_type: str) -> list[Subscription]:
    return list(_subscriptions.get(event_type, ()))


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
