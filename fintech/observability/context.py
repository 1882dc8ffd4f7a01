"""Who and what caused the work in progress: W3C trace context, correlation and causation ids.

Kept in contextvars so that a request, a Celery task or an event handler carries them to
every log line and every outbox row it writes, and causality survives the trip through
Kafka.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str
    span_id: str
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @classmethod
    def parse(cls, header: str | None) -> TraceContext | None:
        if not header:
            return None
        match = _TRACEPARENT.match(header.strip().lower())
        if not match or set(match.group(1)) == {"0"} or set(match.group(2)) == {"0"}:
            return None
        return cls(trace_id=match.group(1), span_id=match.group(2), flags=match.group(3))

    @classmethod
    def new(cls) -> TraceContext:
        return cls(trace_id=secrets.token_hex(16), span_id=secrets.token_hex(8))

    def child(self) -> TraceContext:
        return replace(self, span_id=secrets.token_hex(8))


@dataclass(frozen=True, slots=True)
class WorkContext:
    trace: TraceContext
    correlation_id: str
    causation_id: str | None = None


_current: ContextVar[WorkContext | None] = ContextVar("fintech_work_context", default=None)


def current() -> WorkContext:
    """The context of the work in progress, creating a fresh root one when there is none."""
    ctx = _current.get()
    if ctx is None:
        ctx = WorkContext(trace=TraceContext.new(), correlation_id=str(uuid.uuid4()))
        _current.set(ctx)
    return ctx


def peek() -> WorkContext | None:
    return _current.get()


@contextlib.contextmanager
def bind(ctx: WorkContext) -> Iterator[WorkContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def from_incoming(
    *, traceparent: str | None, correlation_id: str | None, causation_id: str | None = None
) -> WorkContext:
    """A context continuing an incoming request or event (a new span under its trace)."""
    parent = TraceContext.parse(traceparent)
    trace = parent.child() if parent else TraceContext.new()
    return WorkContext(
        trace=trace,
        correlation_id=_clean_id(correlation_id) or str(uuid.uuid4()),
        causation_id=causation_id,
    )


def _clean_id(raw: str | None) -> str | None:
    if not raw:
        return None
    raw = raw.strip()
    if len(raw) > 128 or not re.fullmatch(r"[A-Za-z0-9._:\-]+", raw):
        return None
    return raw
