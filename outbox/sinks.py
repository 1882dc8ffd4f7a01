"""Where the relay ships events. A sink's `send` returns only once every event in the batch
is acknowledged (durably accepted); it raises otherwise and the relay marks nothing."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from outbox.models import OutboxEvent

if TYPE_CHECKING:
    from fintech.kafka.producer import Record

logger = logging.getLogger("fintech.relay")


class OutgoingEvent(NamedTuple):
    """An outbox row on its way out: the envelope as the JSON text it is stored as. A named
    tuple, the cheapest immutable record to build once per event on the relay's hot path."""

    id: int
    event_id: uuid.UUID | str  # as text when read straight from the database
    event_type: str
    aggregate_id: str
    envelope_json: str
    headers: dict[str, str]

    @property
    def envelope(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.envelope_json)
        return value

    @classmethod
    def of(cls, row: OutboxEvent) -> OutgoingEvent:
        return cls(
            id=row.id,
            event_id=row.event_id,
            event_type=row.event_type,
            aggregate_id=row.aggregate_id,
            envelope_json=json.dumps(row.envelope, separators=(",", ":")),
            headers=row.headers,
        )


class RelaySink(Protocol):
    """`send` returns once every event is acknowledged, and raises otherwise. It calls
    `handed_over` once, after the last event was handed to the transport and before it waits
    for the acknowledgement: the relay prepares its marks there, inside a transaction that only
    commits after `send` returned, so the database work overlaps with the wait."""

    name: str

    def send(self, events: Iterable[OutgoingEvent], handed_over: Callable[[], None] = lambda: None) -> None: ...

    def close(self) -> None: ...


def transport_headers(event: OutgoingEvent) -> dict[str, str]:
    return {"ce_type": event.event_type, "ce_id": str(event.event_id), **event.headers}


def shipped_record(event: OutgoingEvent) -> dict[str, object]:
    """What the log and file sinks write for one event: key, CloudEvent and transport headers."""
    return {"key": event.aggregate_id, "headers": transport_headers(event), "value": event.envelope}


class LogSink:
    """The embedded default: each event becomes a JSON log line on `fintech.relay`."""

    name = "log"

    def send(self, events: Iterable[OutgoingEvent], handed_over: Callable[[], None] = lambda: None) -> None:
        for event in events:
            logger.info("event relayed", extra={"event": shipped_record(event)})
        handed_over()

    def close(self) -> None:
        return None


class FileSink:
    """Appends events as JSON lines to a file, fsynced before acknowledging. Safe to share
    between processes (an exclusive lock per batch); handy for audits and for tests."""

    name = "file"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path or settings.FINTECH_RELAY_FILE)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, events: Iterable[OutgoingEvent], handed_over: Callable[[], None] = lambda: None) -> None:
        lines = "".join(json.dumps(shipped_record(event), sort_keys=True) + "\n" for event in events)
        handed_over()
        with open(self.path, "a", encoding="utf-8") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            try:
                file.write(lines)
                file.flush()
                os.fsync(file.fileno())
            finally:
                fcntl.flock(file, fcntl.LOCK_UN)

    def close(self) -> None:
        return None


class KafkaSink:
    """Ships each event to the topic named by its type, keyed by its aggregate id (so one
    aggregate's events stay in order on one partition), with CloudEvents and trace headers.
    `send` returns once the broker acknowledged the whole batch (acks=all)."""

    name = "kafka"

    def __init__(self) -> None:
        from fintech.kafka.producer import BatchProducer

        self._producer = BatchProducer()

    @staticmethod
    def record(event: OutgoingEvent) -> Record:
        """The Kafka record of an event: topic = type, key = aggregate id, CloudEvent value."""
        return (
            event.event_type,
            event.aggregate_id.encode(),
            event.envelope_json.encode(),
            [("ce_type", event.event_type), ("ce_id", str(event.event_id)), *event.headers.items()],
        )

    def send(self, events: Iterable[OutgoingEvent], handed_over: Callable[[], None] = lambda: None) -> None:
        record = self.record
        self._producer.send((record(event) for event in events), handed_over=handed_over)

    def close(self) -> None:
        self._producer.close()


SINKS: dict[str, str] = {
    "log": "outbox.sinks.LogSink",
    "file": "outbox.sinks.FileSink",
    "kafka": "outbox.sinks.KafkaSink",
}


def build_sink(name: str | None = None) -> RelaySink:
    """The sink named in `FINTECH_RELAY_SINK` (a short name or a dotted path)."""
    name = name or settings.FINTECH_RELAY_SINK
    path = SINKS.get(name, name)
    try:
        factory = import_string(path)
    except ImportError as error:
        raise ValueError(f"Unknown relay sink {name!r}; known: {', '.join(SINKS)}") from error
    sink: RelaySink = factory()
    return sink
