"""Where the relay ships events. A sink's `send` returns only once every event in the batch
is acknowledged (durably accepted); it raises otherwise and the relay marks nothing."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from outbox.models import OutboxEvent

logger = logging.getLogger("fintech.relay")


class RelaySink(Protocol):
    name: str

    def send(self, rows: Sequence[OutboxEvent]) -> None: ...

    def close(self) -> None: ...


def shipped_record(row: OutboxEvent) -> dict[str, object]:
    """What a sink ships for one row: the key, the CloudEvent and its transport headers."""
    return {
        "key": row.aggregate_id,
        "headers": {"ce_type": row.event_type, "ce_id": str(row.event_id), **row.headers},
        "value": row.envelope,
    }


class LogSink:
    """The embedded default: each event becomes a JSON log line on `fintech.relay`."""

    name = "log"

    def send(self, rows: Sequence[OutboxEvent]) -> None:
        for row in rows:
            logger.info("event relayed", extra={"event": shipped_record(row)})

    def close(self) -> None:
        return None


class FileSink:
    """Appends events as JSON lines to a file, fsynced before acknowledging. Safe to share
    between processes (an exclusive lock per batch); handy for audits and for tests."""

    name = "file"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path or settings.FINTECH_RELAY_FILE)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, rows: Sequence[OutboxEvent]) -> None:
        lines = "".join(json.dumps(shipped_record(row), sort_keys=True) + "\n" for row in rows)
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


SINKS: dict[str, str] = {
    "log": "outbox.sinks.LogSink",
    "file": "outbox.sinks.FileSink",
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
