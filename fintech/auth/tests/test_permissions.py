from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from rest_framework.exceptions import NotAuthenticated, NotFound, PermissionDenied
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from fintech.auth.permissions import customer_scope, require_customer_access, require_staff
from fintech.auth.tokens import issue_dev_token

factory = APIRequestFactory()
CUSTOMER = uuid.UUID("2d7b1f0c-6a3e-4f7e-8b1d-9c4e5a6f7b80")


class CustomerView(APIView):
    required_scopes: ClassVar[dict[str, tuple[str, ...]]] = {
        "GET": ("customers:read",),
        "PUT": ("customers:read", "customers:write"),
        "PATCH": (),
    }

    def get(self, request: Request) -> Response:
        return Response({"subject": request.user.subject})  # type: ignore[union-attr]

    def put(self, request: Request) -> Response:
        return Response({})

    def patch(self, request: Request) -> Response:
        return Response({})

    def post(self, request: Request) -> Response:
        return Response({})


class UndeclaredView(APIView):
    def get(self, request: Request) -> Response:
        return Response({})


class PublicView(APIView):
    permission_classes = [AllowAny]

    def get(self, request: Request) -> Response:
        return Response({"anonymous": request.user is None})


class ActionScopedView(APIView):
    def get_required_scopes(self, request: Request) -> tuple[str, ...] | None:
        return ("fraud:review",) if request.query_params.get("action") == "review" else None

    def get(self, request: Request) -> Response:
        return Response({})


def _call(view: type[APIView], method: str = "get", *, scopes: str | None = None, **kwargs: Any) -> Response:
    headers: dict[str, str] = {}
    if scopes is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {issue_dev_token(subject='u-1', scopes=scopes)}"
    request = getattr(factory, method)("/x", **kwargs, **headers)
    response: Response = view.as_view()(request)
    return response


def test_request_without_token_is_401_with_a_bearer_challenge() -> None:
    response = _call(CustomerView)

    assert response.status_code == 401
    assert response.data["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="fintech"'


@pytest.mark.parametrize("authorization", ["Bearer not.a.jwt", "Basic dTpw", "Bearer", "Bearer a b", ""])
def test_bad_authorization_header_is_401_invalid_token(authorization: str) -> None:
    response = CustomerView.as_view()(factory.get("/x", HTTP_AUTHORIZATION=authorization))

    assert response.status_code == 401
    assert response.data["code"] == "invalid_token"
    assert response["WWW-Authenticate"] == 'Bearer realm="fintech"'


def test_invalid_token_detail_says_why() -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    stale = issue_dev_token(subject="u-1", scopes="customers:read", ttl_seconds=1, now=an_hour_ago)

    response = CustomerView.as_view()(factory.get("/x", HTTP_AUTHORIZATION=f"Bearer {stale}"))

    assert response.status_code == 401
    assert response.data["detail"] == "Invalid bearer token: token has expired"


def test_token_without_the_scope_is_403_insufficient_scope() -> None:
    response = _call(CustomerView, scopes="accounts:read")

    assert response.status_code == 403
    assert response.data["code"] == "insufficient_scope"
    assert "customers:read" in response.data["detail"]
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_every_declared_scope_is_needed_and_the_missing_ones_are_named() -> None:
    response = _call(CustomerView, "put", scopes="customers:read")

    assert response.status_code == 403
    assert response.data["detail"] == "Token lacks the scope(s): customers:write"


def test_token_with_the_scope_is_let_through() -> None:
    response = _call(CustomerView, scopes="customers:read accounts:read")

    assert response.status_code == 200
    assert response.data == {"subject": "u-1"}


def test_head_follows_the_get_declaration() -> None:
    assert _call(CustomerView, "head", scopes="customers:read").status_code == 200
    assert _call(CustomerView, "head", scopes="accounts:read").status_code == 403


def test_empty_declaration_admits_any_authenticated_caller() -> None:
    assert _call(CustomerView, "patch", scopes="").status_code == 200
    assert _call(CustomerView, "patch").status_code == 401


def test_method_without_a_declaration_is_denied() -> None:
    response = _call(CustomerView, "post", scopes="customers:read customers:write", data={}, format="json")

    assert response.status_code == 403
    assert response.data["detail"] == "operation has no scope declaration"


def test_method_the_view_does_not_implement_is_405_not_a_scope_refusal() -> None:
    assert _call(CustomerView, "delete", scopes="customers:read").status_code == 405
    assert _call(CustomerView, "delete").status_code == 401


def test_view_without_any_declaration_is_denied() -> None:
    response = _call(UndeclaredView, scopes="customers:read")

    assert response.status_code == 403
    assert response.data["detail"] == "operation has no scope declaration"


def test_view_that_opts_out_is_open_to_anonymous_callers() -> None:
    response = _call(PublicView)

    assert response.status_code == 200
    assert response.data == {"anonymous": True}


def test_get_required_scopes_decides_per_request() -> None:
    assert _call(ActionScopedView, scopes="fraud:review", data={"action": "review"}).status_code == 200
    assert _call(ActionScopedView, scopes="customers:read", data={"action": "review"}).status_code == 403
    assert _call(ActionScopedView, scopes="fraud:review").status_code == 403


def _authenticated_request(*, customer_id: uuid.UUID | None) -> Request:
    token = issue_dev_token(subject="u-1", scopes="customers:read", customer_id=customer_id)
    request = Request(factory.get("/x", HTTP_AUTHORIZATION=f"Bearer {token}"))
    request.authenticators = tuple(auth() for auth in APIView.authentication_classes)
    return request


def test_customer_token_reaches_its_own_customer() -> None:
    require_customer_access(_authenticated_request(customer_id=CUSTOMER), CUSTOMER)
    require_customer_access(_authenticated_request(customer_id=CUSTOMER), str(CUSTOMER))


def test_another_customers_resource_is_not_found_rather_than_forbidden() -> None:
    with pytest.raises(NotFound):
        require_customer_access(_authenticated_request(customer_id=CUSTOMER), uuid.uuid4())


def test_staff_token_reaches_any_customer() -> None:
    require_customer_access(_authenticated_request(customer_id=None), uuid.uuid4())


def test_customer_access_needs_an_authenticated_request() -> None:
    with pytest.raises(NotAuthenticated):
        require_customer_access(Request(factory.get("/x")), CUSTOMER)


def test_a_customer_token_is_confined_to_its_customer_and_staff_to_none() -> None:
    assert customer_scope(_authenticated_request(customer_id=CUSTOMER)) == CUSTOMER
    assert customer_scope(_authenticated_request(customer_id=None)) is None


def test_a_back_office_operation_refuses_a_customer_token_with_staff_only() -> None:
    with pytest.raises(PermissionDenied) as refusal:
        require_staff(_authenticated_request(customer_id=CUSTOMER), action="read the journal")
    assert refusal.value.get_codes() == "staff_only"
    assert str(refusal.value.detail) == "A customer's token cannot read the journal."
    assert require_staff(_authenticated_request(customer_id=None), action="read the journal").customer_id is None
