"""Where a request came from, as the audit trail records it: the client's address (trusting
only the configured number of proxies), its user agent, and the trace and correlation ids.

The middleware binds one RequestOrigin to the request's context, so receivers that have no
request at hand (the admin's LogEntry) record the same facts.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypedDict

from django.conf import settings
from django.http import HttpRequest

from fintech.observability import context

USER_AGENT_LENGTH = 256


class OriginFields(TypedDict):
    source_ip: str
    user_agent: str
    correlation_id: str
    trace_id: str


NO_ORIGIN = OriginFields(source_ip="", user_agent="", correlation_id="", trace_id="")


@dataclass
class RequestOrigin:
    source_ip: str
    user_agent: str
    correlation_id: str
    trace_id: str
    # Back-office edits: the changed objects' fields as they were before the save, by
    # (model label, pk), captured while the admin saves them (receivers.py).
    before_states: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    capture_before_states: bool = False

    def as_fields(self) -> OriginFields:
        return OriginFields(
            source_ip=self.source_ip,
            user_agent=self.user_agent,
            correlation_id=self.correlation_id,
            trace_id=self.trace_id,
        )


_current: ContextVar[RequestOrigin | None] = ContextVar("fintech_audit_origin", default=None)


def origin_of(request: HttpRequest) -> RequestOrigin:
    work = context.peek()
    return RequestOrigin(
        source_ip=client_ip(request.META, trusted_proxies=getattr(settings, "FINTECH_TRUSTED_PROXIES", 0)),
        user_agent=(request.META.get("HTTP_USER_AGENT") or "")[:USER_AGENT_LENGTH],
        correlation_id=work.correlation_id if work else "",
        trace_id=work.trace.trace_id if work else "",
    )


def client_ip(meta: dict[str, Any], *, trusted_proxies: int) -> str:
    """The address that connected to the outermost of our `trusted_proxies` proxies.

    Each proxy appends the address it received the request from to X-Forwarded-For, so the
    entry `trusted_proxies` places from the right is the last one our own proxies vouch for;
    anything further left was written by the client and proves nothing. With no trusted proxy
    (the default) the header is ignored and the peer's address is the client's. A header with
    fewer entries than that did not come through our proxies: the peer's address stands.
    """
    remote = _valid_ip(meta.get("REMOTE_ADDR"))
    if trusted_proxies <= 0:
        return remote
    forwarded = [part.strip() for part in str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",") if part.strip()]
    if len(forwarded) < trusted_proxies:
        return remote
    return _valid_ip(forwarded[-trusted_proxies]) or remote


def _valid_ip(value: object) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return ""


@contextlib.contextmanager
def bind(origin: RequestOrigin) -> Iterator[RequestOrigin]:
    token = _current.set(origin)
    try:
        yield origin
    finally:
        _current.reset(token)


def current() -> RequestOrigin | None:
    return _current.get()
