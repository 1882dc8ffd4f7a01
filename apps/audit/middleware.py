"""Records every state-changing request and every refused one in the audit trail, once the
response is known and in a transaction of its own (docs/architecture.md, "Audit trail", says
what is recorded and why it is written after the business transaction)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils import timezone
from prometheus_client import Counter

from apps.audit import origin as origins
from apps.audit.models import ActorType
from apps.audit.public import principal_type
from apps.audit.services import audit_append
from fintech.auth.principal import Principal

logger = logging.getLogger(__name__)

AUDIT_WRITE_FAILURES = Counter(
    "fintech_audit_write_failures_total", "Audited requests whose audit record could not be written"
)

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROBLEM_CONTENT_TYPE = "application/problem+json"
_FAILURE_ACTIONS = {401: "auth.failed", 403: "authz.denied"}


class AuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = timezone.now()
        origin = origins.origin_of(request)
        with origins.bind(origin):
            response = self.get_response(request)
        facts = audit_facts(request, response)
        if facts is not None:
            try:
                audit_append(occurred_at=started, **facts, **actor_of(request), **origin.as_fields())
            except Exception:  # the response stands (its work is done); the failure is loud
                AUDIT_WRITE_FAILURES.inc()
                logger.exception("audit record not written", extra={"action": facts.get("action")})
        return response

    def process_view(self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any) -> None:
        # An admin save: remember each changed object's fields before it, for the record of the edit.
        current = origins.current()
        if current is not None and request.method == "POST" and _is_admin(request):
            current.capture_before_states = True


def audit_facts(request: HttpRequest, response: HttpResponseBase) -> dict[str, Any] | None:
    """What the record of this request says it did, or None when the request is not audited."""
    method = (request.method or "").upper()
    status = response.status_code
    line = f"{method} {request.path}"
    if status in _FAILURE_ACTIONS:
        return {
            "action": _FAILURE_ACTIONS[status],
            "outcome": status,
            "reason": _problem_code(response),
            **_resource(request, response),
            "details": {"request": line},
        }
    if _is_admin(request):
        return _admin_action(request, response) if method == "POST" else None
    if method in MUTATING_METHODS:
        return {"action": line, "outcome": status, "reason": _problem_code(response), **_resource(request, response)}
    return None


def actor_of(request: HttpRequest) -> dict[str, Any]:
    """Who made the request: the bearer token's principal (DRF puts it on the Django request
    too), the admin's user, or nobody verified."""
    user = getattr(request, "user", None)
    if isinstance(user, Principal):
        return {
            "actor": user.subject,
            "actor_type": principal_type(user),
            "client_id": user.client_id,
            "customer_id": user.customer_id,
        }
    if user is not None and getattr(user, "is_authenticated", False):
        return {"actor": user.get_username(), "actor_type": ActorType.ADMIN}
    return {"actor": "anonymous", "actor_type": ActorType.ANONYMOUS}


def _is_admin(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    return match is not None and "admin" in match.app_names


def _resource(request: HttpRequest, response: HttpResponseBase) -> dict[str, str]:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return {}
    resource_id = next((str(value) for key, value in match.kwargs.items() if key.endswith("_id")), "")
    if not resource_id and 200 <= response.status_code < 300:
        data = getattr(response, "data", None)  # a created resource names itself in the answer
        if isinstance(data, dict) and data.get("id") is not None:
            resource_id = str(data["id"])
    return {"resource_type": match.url_name or "", "resource_id": resource_id}


def _admin_action(request: HttpRequest, response: HttpResponseBase) -> dict[str, Any] | None:
    name = request.POST.get("action")
    selected = request.POST.getlist("_selected_action")
    select_across = request.POST.get("select_across") == "1"
    if not name or not (selected or select_across):
        return None  # not an action (edits are recorded from the admin's log), or nothing to act on
    match = request.resolver_match
    model_admin = getattr(match.func, "model_admin", None) if match else None
    model = getattr(model_admin, "model", None)
    return {
        "action": "admin.action",
        "outcome": response.status_code,
        "resource_type": model._meta.label_lower if model is not None else "",
        "resource_id": ",".join(selected),
        "details": {"name": name, "selected": selected, "select_across": select_across},
    }


def _problem_code(response: HttpResponseBase) -> str:
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("code"), str):
        return str(data["code"])
    if isinstance(response, HttpResponse) and response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE):
        try:
            body = json.loads(response.content)
        except ValueError:
            return ""
        if isinstance(body, dict) and isinstance(body.get("code"), str):
            return str(body["code"])
    return ""
