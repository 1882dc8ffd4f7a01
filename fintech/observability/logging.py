"""JSON log lines that carry the trace and correlation ids of the work in progress."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from fintech.observability import context

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        work = context.peek()
        record.trace_id = work.trace.trace_id if work else None
        record.correlation_id = work.correlation_id if work else None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
