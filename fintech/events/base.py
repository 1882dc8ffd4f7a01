from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from django.utils.dateparse import parse_datetime


def rfc3339(moment: datetime) -> str:
    """The one way the bank writes an instant in an event or an API body: RFC 3339 in UTC, `Z`."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def moment(text: str) -> datetime:
    """An instant as an event writes it (`rfc3339`), read back. A ValueError when unreadable,
    which the schema's date-time format leaves to a broken publisher."""
    parsed = parse_datetime(text)
    if parsed is None:
        raise ValueError(f"unreadable time {text!r}")
    return parsed


def _holds_dataclasses(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return bool(value) and dataclasses.is_dataclass(value[0])
    return dataclasses.is_dataclass(value)


@dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """A past-tense fact. Subclasses set the class variables and declare the payload fields.

    Payload fields are ids and primitives only: amounts as integer minor units, times as
    RFC 3339 strings, no model instances and no personal data.
    """

    event_type: ClassVar[str]
    version: ClassVar[int] = 1
    source: ClassVar[str]  # the bounded context, e.g. "customers"
    aggregate_field: ClassVar[str]  # the payload field that holds the aggregate id

    @property
    def aggregate_id(self) -> str:
        return str(getattr(self, self.aggregate_field))

    def payload(self) -> dict[str, Any]:
        # The fields as they are: they hold primitives, lists and dicts of primitives, already
        # JSON-shaped; `dataclasses.asdict` deep-copied them, a quarter of publishing a batch.
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        if any(_holds_dataclasses(value) for value in values.values()):
            return dataclasses.asdict(self)
        return values


@dataclass(frozen=True, kw_only=True)
class ReceivedEvent:
    """An event as a handler or consumer sees it: envelope fields plus validated data."""

    id: uuid.UUID
    type: str
    version: int
    source: str
    subject: str
    time: datetime
    data: dict[str, Any]
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
