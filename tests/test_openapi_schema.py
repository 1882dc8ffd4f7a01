"""The OpenAPI schema says exactly what the server accepts: what it declares valid is taken, what
it declares invalid is refused, and every answer the server can give is documented (issue 14).
tests/test_fuzz_api.py proves the same by generating requests; these pin each rule by name."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from typing import Any
from unittest.mock import ANY

import pytest
from drf_spectacular.generators import SchemaGenerator

from fintech.api.idempotency import KEY_MAX_LENGTH
from fintech.api.schema import NO_NUL_PATTERN
from tests.factories import open_account

MONEY_INPUTS = ["TransferInputRequest", "DepositInputRequest", "PaymentInputRequest"]


def live_schema() -> dict[str, Any]:
    schema: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
    return schema


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def request_components(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The components that describe a request body (COMPONENT_SPLIT_REQUEST names them *Request)."""
    return {
        name: component
        for name, component in schema["components"]["schemas"].items()
        if name.endswith("Request") and component.get("type") == "object"
    }


def currency_enum(schema: dict[str, Any], component: str) -> list[str]:
    """The currencies a request component allows (drf-spectacular names the enum once, CurrencyEnum)."""
    node = schema["components"]["schemas"][component]["properties"]["currency"]
    node = node["allOf"][0] if "allOf" in node else node
    if "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return list(node["enum"])


def test_money_inputs_declare_the_amount_range_and_the_currencies_the_bank_moves(settings):
    settings.FINTECH_MAX_AMOUNT = 5_000
    settings.FINTECH_SUPPORTED_CURRENCIES = ["BRL", "EUR", "XXX"]  # XXX: listed, but unknown to the bank
    schema = live_schema()
    for name in MONEY_INPUTS:
        properties = schema["components"]["schemas"][name]["properties"]
        assert properties["amount"]["minimum"] == 1, name
        assert properties["amount"]["maximum"] == 5_000, name
        assert currency_enum(schema, name) == ["BRL", "EUR"], name
    assert currency_enum(schema, "AccountOpenInputRequest") == ["BRL", "EUR"]
    # A batch takes any amount and currency code: an item outside the rules fails alone (207).
    item = schema["components"]["schemas"]["TransferBatchItemInputRequest"]["properties"]
    assert "minimum" not in item["amount"]
    assert "enum" not in item["currency"]


def test_every_input_object_refuses_properties_it_does_not_declare():
    components = request_components(live_schema())
    assert set(MONEY_INPUTS) <= set(components)
    open_objects = [name for name, schema in components.items() if schema.get("additionalProperties") is not False]
    assert not open_objects, f"the server refuses unknown fields of {open_objects}; their schema must say so"


def test_no_two_input_schemas_share_a_description():
    inputs = request_components(live_schema()).values()
    descriptions = Counter(component["description"] for component in inputs if "description" in component)
    shared = [text for text, count in descriptions.items() if count > 1]
    assert not shared, f"one docstring describes several inputs: {shared}"


def test_every_idempotency_key_header_declares_the_length_the_server_enforces():
    declared = [
        (method, path, parameter["schema"])
        for method, path, operation in operations(live_schema())
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "header" and parameter["name"] == "Idempotency-Key"
    ]
    assert {path for _, path, _ in declared} >= {"/api/v1/transfers", "/api/v1/deposits", "/api/v1/payments"}
    for method, path, schema in declared:
        assert (schema["minLength"], schema["maxLength"]) == (1, KEY_MAX_LENGTH), (method, path)
        assert "pattern" in schema, (method, path)


def test_every_operation_documents_the_answers_given_before_its_view_runs():
    for method, path, operation in operations(live_schema()):
        documented = set(operation["responses"])
        assert {"400", "401", "403", "429", "503"} <= documented, (method, path)
        if "requestBody" in operation:
            assert {"413", "415"} <= documented, (method, path)
            for status in ("413", "415"):
                assert "application/problem+json" in operation["responses"][status]["content"], (method, path, status)


@pytest.mark.django_db
def test_a_deposit_built_from_the_schemas_own_bounds_is_accepted(staff):
    """Swagger UI fills a form from the schema: its smallest amount and first currency must work."""
    schema = live_schema()
    properties = schema["components"]["schemas"]["DepositInputRequest"]["properties"]
    currency = currency_enum(schema, "DepositInputRequest")[0]
    account = open_account(currency=currency)
    body = {
        "account_id": str(account.id),
        "amount": properties["amount"]["minimum"],
        "currency": currency,
        "reference": "schema",
    }
    response = staff.post("/api/v1/deposits", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert response.status_code == 201, response.json()
    body["amount"] = properties["amount"]["maximum"] + 1
    response = staff.post("/api/v1/deposits", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert (response.status_code, response.json()["code"]) == (400, "amount_too_large")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "accepted"),
    [
        ("k" * KEY_MAX_LENGTH, True),
        ("a key with spaces inside", True),
        ("k" * (KEY_MAX_LENGTH + 1), False),
        (" padded ", False),
        ("clé", False),  # printable, but not ASCII: the schema's pattern refuses it, so does the server
        ("tab\tinside", False),
    ],
)
def test_the_server_takes_exactly_the_idempotency_keys_the_schema_declares(staff, key, accepted):
    account = open_account()
    body = {"account_id": str(account.id), "amount": 100, "currency": "BRL", "reference": "key"}
    response = staff.post("/api/v1/deposits", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    if accepted:
        assert response.status_code == 201, response.json()
    else:
        assert (response.status_code, response.json()["code"]) == (400, "idempotency_key_invalid")


def test_a_batch_declares_how_many_transfers_it_takes():
    transfers = live_schema()["components"]["schemas"]["TransferBatchInputRequest"]["properties"]["transfers"]
    assert (transfers["minItems"], transfers["maxItems"]) == (1, 1000)


@pytest.mark.django_db
@pytest.mark.parametrize(("page_size", "status"), [("abc", 400), ("0", 400), ("2.5", 400), ("1", 200), ("5000", 200)])
def test_page_size_is_a_whole_number_from_one(staff, page_size, status):
    response = staff.get("/api/v1/accounts", {"page_size": page_size})
    assert response.status_code == status, response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/accounts", "/api/v1/customers", "/api/v1/transfers", "/api/v1/payments"])
def test_a_status_filter_outside_its_enum_is_refused(staff, path):
    response = staff.get(path, {"status": "null"})
    assert (response.status_code, list(response.json()["errors"])) == (400, ["status"])


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["account_id", "reference"])
def test_a_json_value_that_is_not_a_string_is_not_read_as_one(staff, field):
    """DRF reads `false` as the UUID 0 and 7 as "7"; the schema says string."""
    account = open_account()
    body: dict[str, Any] = {"account_id": str(account.id), "amount": 100, "currency": "BRL", "reference": "r"}
    body[field] = 0 if field == "account_id" else 7
    response = staff.post("/api/v1/deposits", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))
    assert (response.status_code, response.json()["errors"]) == (400, {field: ["Must be a string."]})


@pytest.mark.django_db
def test_nested_errors_are_named_by_their_path(staff):
    """The Problem schema's `errors` is one object of string lists, however deep the input."""
    response = staff.post("/api/v1/transfers/batch", {"transfers": []}, format="json")
    assert (response.status_code, response.json()["errors"]) == (400, {"transfers": [ANY]})
    item = {"id": "not-a-uuid", "from_account_id": str(uuid.uuid4()), "to_account_id": str(uuid.uuid4())}
    response = staff.post(
        "/api/v1/transfers/batch", {"transfers": [{**item, "amount": 1, "currency": "BRL"}]}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["transfers.0.id"]


@pytest.mark.django_db
def test_the_last_representable_day_as_a_period_end_is_refused_not_a_crash(staff):
    account = open_account()
    response = staff.get(f"/api/v1/accounts/{account.id}/statement", {"to": "9999-12-31"})
    assert response.status_code == 400, response.content


@pytest.mark.django_db
def test_a_summary_up_to_the_first_day_of_the_calendar_is_answered_not_a_crash(client_with):
    response = client_with("analytics:read").get("/api/v1/analytics/summary", {"to": "0001-01-01"})
    assert response.status_code == 200, response.content


def test_text_inputs_declare_that_a_nul_is_refused():
    """DRF refuses a NUL character in any text; the schema says so with a pattern."""
    name = live_schema()["components"]["schemas"]["CustomerCreateInputRequest"]["properties"]["name"]
    assert name["pattern"] == NO_NUL_PATTERN
    assert re.fullmatch(NO_NUL_PATTERN[1:-1], "Ana\x00") is None
