"""Bad input is a 4xx problem, never a 5xx: defects found by fuzzing and by hand, each pinned."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import OperationalError

from apps.customers.models import Customer
from apps.transactions.models import Transfer
from tests.factories import open_account

pytestmark = pytest.mark.django_db


def assert_problem(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("debug", [False, True])
def test_a_deeply_nested_body_is_malformed_not_a_crash(staff, settings, debug):
    settings.DEBUG = debug
    for path in ("/api/v1/customers", "/api/v1/transfers", "/api/v1/deposits", "/api/v1/transfers/batch"):
        body = '{"name": ' + nested(1000) + "}"
        response = staff.post(path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
        assert_problem(response, 400, "malformed_request")
    assert not Customer.objects.exists()


def test_nesting_within_the_limit_is_read_as_usual(staff):
    body = {"name": "Ana", "email": "a@example.com", "document": "52998224725", "extra": [[[[1]]]]}
    response = staff.post("/api/v1/customers", body, format="json")
    assert_problem(response, 400, "validation_error")  # the unknown field, not the nesting


def test_a_five_thousand_digit_amount_is_too_large_plainly(staff):
    source, destination = open_account(balance=1_000), open_account()
    body = (
        f'{{"from_account_id": "{source.id}", "to_account_id": "{destination.id}", '
        f'"amount": {"9" * 5000}, "currency": "BRL"}}'
    )
    response = staff.post(
        "/api/v1/transfers", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )
    problem = assert_problem(response, 400, "amount_too_large")
    assert "set_int_max_str_digits" not in json.dumps(problem)
    negative = body.replace('"amount": 9', '"amount": -9')
    response = staff.post(
        "/api/v1/transfers", negative, content_type="application/json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )
    assert_problem(response, 400, "invalid_amount")
    assert not Transfer.objects.exists()


@pytest.mark.parametrize("path", ["/api/v1/no/such/thing", "/api/v1/accounts/not-a-uuid", "/api/v1/transfers/123"])
def test_under_api_every_error_is_a_problem_in_development_too(staff, settings, path):
    settings.DEBUG = True  # Django's debug page would list every URL pattern
    response = staff.get(path)
    body = assert_problem(response, 404, "not_found")
    assert "urlpatterns" not in json.dumps(body).lower()


def test_options_is_not_an_operation(staff, anonymous):
    for client in (staff, anonymous):
        response = client.options("/api/v1/customers")
        assert_problem(response, 405, "method_not_allowed")


def test_a_lost_database_is_503_with_retry_after(staff, monkeypatch):
    from apps.customers import selectors

    def database_away(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(selectors, "customer_list", database_away)
    response = staff.get("/api/v1/customers")
    assert_problem(response, 503, "service_unavailable")
    assert response["Retry-After"] == "5"


def test_the_error_page_of_a_lost_database_outside_the_api_is_503():
    import sys

    from django.test import RequestFactory

    from fintech.api.errors import server_error_view

    request = RequestFactory().get("/admin/")
    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError:
        assert sys.exc_info()[0] is OperationalError
        response = server_error_view(request)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    try:
        raise RuntimeError("a bug")
    except RuntimeError:
        assert server_error_view(request).status_code == 500
