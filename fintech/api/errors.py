"""Every error becomes a problem+json response with a stable `code`; none leaks a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from fintech.api.problems import PROBLEM_CONTENT_TYPE, problem
from fintech.errors import DomainError, ValidationFailed

logger = logging.getLogger(__name__)

_TITLES = {
    400: "Invalid request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict with the current state",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Request cannot be processed",
    429: "Too many requests",
}

# DRF's own exception codes, mapped to the contract's stable words.
_CODES = {
    drf.ParseError: "malformed_request",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "invalid_token",
    drf.PermissionDenied: "forbidden",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
}


def _flatten(detail: Any) -> Any:
    """DRF's nested ErrorDetail structure as plain lists of messages per field."""
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        flat: list[Any] = []
        for item in detail:
            value = _flatten(item)
            flat.extend(value if isinstance(value, list) else [value])
        return flat
    return [str(detail)]


def _messages_by_field(detail: Any, field: str = "", found: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """A serializer's errors as `{field: [messages]}`, nested fields as dotted paths
    (`transfers.3.amount`, `beneficiary.document`): the problem's `errors` is one flat object of
    string lists, as the schema's Problem says, however deep the input."""
    found = {} if found is None else found
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = field if key == "non_field_errors" and field else f"{field}.{key}" if field else str(key)
            _messages_by_field(value, name, found)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                _messages_by_field(item, f"{field}.{index}" if field else str(index), found)
            else:
                found.setdefault(field or "non_field_errors", []).append(str(item))
    else:
        found.setdefault(field or "non_field_errors", []).append(str(detail))
    return found


def _drf_code(exc: drf.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str) and codes not in {"error", "invalid", exc.default_code}:
        return codes  # a view raised with a specific code, e.g. insufficient_scope
    for kind, code in _CODES.items():
        if isinstance(exc, kind):
            return code
    return str(exc.default_code)


def domain_problem(error: DomainError) -> dict[str, Any]:
    """The problem details of a business rule's refusal (also one item of a batch's answer)."""
    errors = error.errors if isinstance(error, ValidationFailed) else None
    return problem(
        status=error.status, code=error.code, title=error.title, detail=error.detail, errors=errors, **error.extra
    )


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: domain errors, DRF errors and Django's 404/403 as problems."""
    headers: dict[str, str] = {}
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()

    if isinstance(exc, DomainError):
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return Response(domain_problem(exc), status=exc.status, headers=headers)

    if isinstance(exc, drf.ValidationError):
        errors = _messages_by_field(exc.detail)
        body = problem(
            status=400,
            code="validation_error",
            title="Invalid request",
            detail="; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items()),
            errors=errors,
        )
        return Response(body, status=400)

    if isinstance(exc, drf.APIException):
        status = exc.status_code
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = str(exc.auth_header)  # type: ignore[attr-defined]
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait or 1))  # type: ignore[attr-defined]
        detail = exc.detail if isinstance(exc.detail, str) else "; ".join(_flatten(exc.detail))
        body = problem(status=status, code=_drf_code(exc), title=_TITLES.get(status, "Error"), detail=str(detail))
        return Response(body, status=status, headers=headers)

    if isinstance(exc, DATABASE_AWAY):
        logger.warning("database unavailable", extra={"error": str(exc).strip()[:300]})
        body = problem(
            status=503,
            code="service_unavailable",
            title="Service unavailable",
            detail="The bank's database is unavailable; retry shortly.",
        )
        return Response(body, status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})

    # Anything else is a bug: log it whole, answer without a trace of it.
    request = context.get("request")
    logger.exception("unhandled error", extra={"path": getattr(request, "path", None)}, exc_info=exc)
    return Response(
        problem(
            status=500,
            code="internal_error",
            title="Internal error",
            detail="The bank could not complete this request.",
        ),
        status=500,
    )


def _problem_response(status: int, code: str, title: str, detail: str) -> HttpResponse:
    return JsonResponse(
        problem(status=status, code=code, title=title, detail=detail), status=status, content_type=PROBLEM_CONTENT_TYPE
    )


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _problem_response(404, "not_found", "Not found", "No resource at this address.")


# A lost database (restarting, failing over, unreachable) is not a bug of the request: the
# client is told to come back, as it would be by a load balancer with no healthy backend.
DATABASE_AWAY = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5


def service_unavailable() -> HttpResponse:
    response = _problem_response(
        503, "service_unavailable", "Service unavailable", "The bank's database is unavailable; retry shortly."
    )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error_view(request: HttpRequest) -> HttpResponse:
    # Django calls this while the exception is being handled, so it can still be seen.
    if isinstance(sys.exc_info()[1], DATABASE_AWAY):
        return service_unavailable()
    return _problem_response(500, "internal_error", "Internal error", "The bank could not complete this request.")


class ApiProblemsMiddleware:
    """Under /api/, an unknown path is a problem+json 404 in development too: Django's debug 404
    page lists every URL pattern of the bank."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and request.path.startswith("/api/")
            and not str(response.get("Content-Type", "")).startswith(("application/problem+json", "application/json"))
        ):
            return not_found_view(request)
        return response
