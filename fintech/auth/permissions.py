"""Who may call an operation: the scopes each one declares (one that declares none is refused),
which customer a token confines the caller to, and the operations that are staff-only."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from fintech.auth.authentication import REALM
from fintech.auth.principal import Principal

if TYPE_CHECKING:
    # Only for annotations: rest_framework.views imports this module (DEFAULT_PERMISSION_CLASSES)
    # while it is itself half-initialised.
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)


class InsufficientScope(PermissionDenied):
    def __init__(self, missing: Sequence[str]) -> None:
        self.missing_scopes = tuple(missing)
        words = " ".join(self.missing_scopes)
        # The code is passed, not set as default_code: the problem handler reports codes that differ
        # from the default and would otherwise fall back to the generic "forbidden".
        super().__init__(detail=f"Token lacks the scope(s): {words}", code="insufficient_scope")
        # RFC 6750 section 3: a 403 for scope carries the challenge naming the scope needed.
        self.auth_header = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{words}"'


class HasRequiredScopes(BasePermission):
    """Grants an operation when the token holds every scope the view declares for it.

    A view declares `required_scopes = {"GET": ("customers:read",), "POST": ("customers:write",)}`
    or defines `get_required_scopes(self, request) -> tuple[str, ...] | None`; an empty tuple
    admits any authenticated caller. HEAD falls back to GET's declaration.
    """

    def has_permission(self, request: Request, view: APIView) -> bool:
        if (request.method or "").upper() == "OPTIONS":
            return True  # not an operation of the API: DRF answers 405 (no metadata class)
        principal = current_principal(request)
        if not _implements(view, request):
            # Nothing would run: let DRF answer 405 rather than blame a missing scope declaration.
            return True
        required = required_scopes_for(request, view)
        if required is None:
            logger.warning("%s declares no scopes for %s", type(view).__name__, request.method)
            raise PermissionDenied("operation has no scope declaration")
        missing = [scope for scope in required if scope not in principal.scopes]
        if missing:
            raise InsufficientScope(missing)
        return True


def required_scopes_for(request: Request, view: APIView) -> tuple[str, ...] | None:
    """The scopes the view needs for this request, None when it declares none."""
    method = (request.method or "").upper()
    get_required_scopes = getattr(view, "get_required_scopes", None)
    if callable(get_required_scopes):
        scopes = get_required_scopes(request)
        return tuple(scopes) if scopes is not None else None
    declared: Mapping[str, Sequence[str]] | None = getattr(view, "required_scopes", None)
    if declared is None:
        return None
    scopes = declared.get(method)
    if scopes is None and method == "HEAD":
        scopes = declared.get("GET")
    return tuple(scopes) if scopes is not None else None


def _implements(view: APIView, request: Request) -> bool:
    method = (request.method or "").lower()
    return method in view.http_method_names and callable(getattr(view, method, None))


def current_principal(request: Request) -> Principal:
    """The authenticated principal of the request; NotAuthenticated (401) when there is none."""
    user: object = getattr(request, "user", None)
    if not isinstance(user, Principal):
        raise NotAuthenticated()
    return user


def customer_scope(request: Request) -> uuid.UUID | None:
    """The one customer whose resources the request may see: a customer's token names it; staff
    and service tokens see every customer (None)."""
    return current_principal(request).customer_id


def require_staff(request: Request, *, action: str) -> Principal:
    """The caller of a back-office operation: staff and service tokens pass, a customer's token
    is refused with 403 `staff_only` ("A customer's token cannot <action>.")."""
    principal = current_principal(request)
    if principal.is_customer:
        raise PermissionDenied(f"A customer's token cannot {action}.", code="staff_only")
    return principal


def require_customer_access(request: Request, customer_id: uuid.UUID | str) -> None:
    """Refuses another customer's resources with 404, so a probe cannot tell whether the id exists."""
    if not current_principal(request).may_access_customer(customer_id):
        raise NotFound()
