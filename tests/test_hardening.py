"""Bad input is a 4xx problem, never a 5xx: defects found by fuzzing and by hand, each pinned."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.db import OperationalError

from apps.customers.models import Customer
from apps.transactions.models import Transfer
from outbox.models import OutboxEvent
from tests.factories import open_account
from tests.test_authorization_matrix import (
    MATRIX,
    url_for,
    world,  # noqa: F401 (the fixture, shared)
)

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


def _schema() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    schema: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
    return schema


def enum_query_parameters() -> list[tuple[str, str, tuple[str, ...]]]:
    """(path, parameter, its values) of every query parameter of a GET that the schema declares
    an enum: a new one is walked by the test below without being named here."""
    return sorted(
        (path, parameter["name"], tuple(parameter["schema"]["enum"]))
        for path, item in _schema()["paths"].items()
        for parameter in item.get("get", {}).get("parameters", [])
        if parameter["in"] == "query" and "enum" in parameter.get("schema", {})
    )


ENUM_FILTERS = enum_query_parameters()


def test_the_schema_declares_the_enum_of_every_status_filter():
    declared = {(path, name) for path, name, _ in ENUM_FILTERS}
    assert {
        ("/api/v1/accounts", "status"),
        ("/api/v1/transfers", "status"),
        ("/api/v1/customers", "status"),
        ("/api/v1/payments", "status"),
        ("/api/v1/fraud/alerts", "status"),
        ("/api/v1/fraud/alerts", "rule"),
    } <= declared


@pytest.mark.parametrize(("path", "name", "values"), ENUM_FILTERS, ids=[f"{p}?{n}" for p, n, _ in ENUM_FILTERS])
def test_a_filter_outside_its_enum_is_refused_not_an_empty_list(staff, path, name, values):
    for wrong in ("AAA", "0", values[0].upper() + "x"):
        response = staff.get(path, {name: wrong})
        body = assert_problem(response, 400, "validation_error")
        assert list(body["errors"]) == [name], body
    for value in values:  # every value the schema declares is one the API reads
        assert staff.get(path, {name: value}).status_code == 200, (path, name, value)


def bodiless_posts() -> list[str]:
    """Every POST whose body the schema says is optional or absent (commands that act on the
    resource in their path): derived from the schema, so a new one is walked too."""
    return sorted(
        path
        for path, item in _schema()["paths"].items()
        if "post" in item and not item["post"].get("requestBody", {}).get("required", False)
    )


BODILESS_POSTS = bodiless_posts()
NOT_OBJECTS = ["false", "[]", "1", '"x"', "null", "true", "[{}]"]


def test_the_bodiless_posts_include_the_account_and_review_commands():
    assert {
        "/api/v1/accounts/{account_id}/block",
        "/api/v1/accounts/{account_id}/close",
        "/api/v1/accounts/{account_id}/unblock",
        "/api/v1/customers/{customer_id}/verify",
        "/api/v1/customers/{customer_id}/reject",
        "/api/v1/customers/{customer_id}/erase",
        "/api/v1/fraud/reviews/{transfer_id}/approve",
        "/api/v1/fraud/reviews/{transfer_id}/reject",
    } <= set(BODILESS_POSTS)


@pytest.mark.parametrize("template", BODILESS_POSTS)
def test_a_json_body_that_is_not_an_object_is_malformed_and_acts_not(template, request, client_with):
    """The world of the authorization matrix, prepared so that each command would act (an active
    account to block, a pending customer to verify, a transfer in review to approve...)."""
    prepared = request.getfixturevalue("world")
    rule = MATRIX[("POST", template)]
    if rule.prepare:
        rule.prepare(prepared)
    url = url_for(prepared, "POST", template)
    caller = client_with(" ".join(rule.scopes))
    written = OutboxEvent.objects.count()
    for body in NOT_OBJECTS:
        response = caller.post(url, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
        assert_problem(response, 400, "malformed_request")
        assert OutboxEvent.objects.count() == written, (template, body)
    # An empty body, or an empty object, is still the command without options: it acts.
    assert caller.post(url, "{}", content_type="application/json").status_code == rule.success, template
    assert OutboxEvent.objects.count() > written, template


EVERY_POST = sorted(path for path, item in _schema()["paths"].items() if "post" in item)


@pytest.mark.parametrize("template", sorted(set(EVERY_POST) - set(BODILESS_POSTS)))
def test_a_post_with_a_required_body_refuses_one_that_is_not_an_object(template, request, client_with):
    prepared = request.getfixturevalue("world")
    rule = MATRIX[("POST", template)]
    caller = client_with(" ".join(rule.scopes))
    written = OutboxEvent.objects.count()
    for body in NOT_OBJECTS:
        response = caller.post(
            url_for(prepared, "POST", template),
            body,
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
        assert_problem(response, 400, "malformed_request")
    assert OutboxEvent.objects.count() == written, template
