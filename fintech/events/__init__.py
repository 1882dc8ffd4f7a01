"""Domain events: versioned, schema-checked facts in a CloudEvents 1.0 envelope.

A context declares its events as frozen dataclasses (subclasses of `DomainEvent`) in its
`events.py`; the JSON Schema of every type and version lives in `fintech/events/schemas/`
and is the published contract. Consumers never import the publisher's classes: they read
`ReceivedEvent.data`, which the registry has validated and upcast to the newest version.
"""

from fintech.events.base import DomainEvent, ReceivedEvent, moment, rfc3339
from fintech.events.registry import (
    EventSchemaError,
    latest_version,
    register_upcaster,
    schema_for,
    upcast,
    validate,
)

__all__ = [
    "DomainEvent",
    "EventSchemaError",
    "ReceivedEvent",
    "latest_version",
    "moment",
    "register_upcaster",
    "rfc3339",
    "schema_for",
    "upcast",
    "validate",
]
