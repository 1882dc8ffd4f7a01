"""Binds each request to a trace and correlation id and echoes them back to the client."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from fintech.observability import context


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        work = context.from_incoming(
            traceparent=request.headers.get("traceparent"),
            correlation_id=request.headers.get("X-Correlation-ID") or request.headers.get("X-Request-ID"),
        )
        with context.bind(work):
            response = self.get_response(request)
        response["X-Correlation-ID"] = work.correlation_id
        response["traceparent"] = work.trace.traceparent
        return response
