"""POST /payments, GET /payments/{id} and GET /payments: the contract's shapes, the beneficiary's
checks (400 that names the field and never echoes the value), the money rules (422), who may see
what, and Idempotency-Key."""

from __future__ import annotations

import uuid

import pytest

from apps.payments.models import Payment
from outbox.models import OutboxEvent
from tests.factories import open_account, verified_customer
from tests.payments_support import ACCOUNT_BENEFICIARY, screen

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("payments_answered_by_the_test")]


def pay(client, body, key=None):
    return client.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))


def body_for(account, **changes):
    return {
        "account_id": str(account.id),
        "amount": 2_500,
        "currency": "BRL",
        "beneficiary": dict(ACCOUNT_BENEFICIARY),
        **changes,
    }


def test_a_payment_is_accepted_pending_with_its_beneficiary_masked(staff):
    account = open_account(balance=10_000)
    response = pay(staff, body_for(account))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending"
    assert (body["account_id"], body["amount"], body["currency"]) == (str(account.id), 2_500, "BRL")
    assert body["beneficiary"] == {
        "kind": "account",
        "name": "Maria Oliveira",
        "document": "***.982.247-**",
        "bank_code": "00000000",
        "branch": "1234",
        "account_number": "****56-7",
    }
    assert body["end_to_end_id"].startswith("E99999999")
    assert [step["step"] for step in body["history"]] == ["initiated"]
    assert "52998224725" not in response.content.decode()
    assert Payment.objects.get(pk=body["id"]).status == "pending"


def test_a_retry_with_the_same_key_replays_and_moves_money_once(staff):
    account = open_account(balance=10_000)
    first = pay(staff, body_for(account), key="pay-rent")
    again = pay(staff, body_for(account), key="pay-rent")
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Payment.objects.count() == 1
    other = pay(staff, body_for(account, amount=9), key="pay-rent")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reuse")


def test_a_payment_without_an_idempotency_key_is_refused(staff):
    account = open_account(balance=10_000)
    response = staff.post("/api/v1/payments", body_for(account), format="json")
    assert (response.status_code, response.json()["code"]) == (400, "idempotency_key_missing")
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    ("beneficiary", "field", "secret"),
    [
        ({**ACCOUNT_BENEFICIARY, "document": "529.982.247-24"}, "beneficiary.document", "529.982.247-24"),
        ({**ACCOUNT_BENEFICIARY, "bank_code": "1234567"}, "beneficiary.bank_code", "1234567"),
        ({**ACCOUNT_BENEFICIARY, "branch": "12a"}, "beneficiary.branch", "12a"),
        ({**ACCOUNT_BENEFICIARY, "account_number": "12.34"}, "beneficiary.account_number", "12.34"),
        ({"pix_key": "not-a-key"}, "beneficiary.pix_key", "not-a-key"),
        ({"pix_key": "ana@@example"}, "beneficiary.pix_key", "ana@@example"),
        ({"pix_key": "+55 11"}, "beneficiary.pix_key", "+55 11"),
        ({"pix_key": "111.444.777-36"}, "beneficiary.pix_key", "111.444.777-36"),
    ],
)
def test_a_beneficiary_that_fails_its_rule_is_refused_naming_the_field_not_the_value(staff, beneficiary, field, secret):
    account = open_account(balance=10_000)
    response = pay(staff, body_for(account, beneficiary=beneficiary))
    assert response.status_code == 400, response.content
    problem = response.json()
    assert problem["code"] == "invalid_beneficiary"
    assert field in problem["errors"]
    assert secret not in response.content.decode()
    assert not Payment.objects.exists()
    assert not OutboxEvent.objects.filter(event_type__startswith="payment.").exists()


@pytest.mark.parametrize(
    "beneficiary",
    [
        {"pix_key": "x@example.com", "name": "Both"},
        {"name": "Maria", "document": "52998224725"},
        {**ACCOUNT_BENEFICIARY, "nickname": "mari"},
        "Maria",
    ],
)
def test_a_beneficiary_of_neither_shape_is_refused(staff, beneficiary):
    response = pay(staff, body_for(open_account(balance=10_000), beneficiary=beneficiary))
    assert response.status_code == 400, response.content
    # Named by its path (`beneficiary.name`), as every nested field is.
    assert all(name.split(".")[0] == "beneficiary" for name in response.json()["errors"])
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    ("key", "kind", "masked"),
    [
        ("529.982.247-25", "cpf", "***.982.247-**"),
        ("11.222.333/0001-81", "cnpj", "**.222.333/****-**"),
        ("Maria.Oliveira@Example.com", "email", "m***@e***.com"),
        ("+55 11 98765-4321", "phone", "+55*******4321"),
        ("3F2504E0-4F89-41D3-9A0C-0305E82C3301", "evp", "3f2504e0-****-****-****-********3301"),
    ],
)
def test_each_kind_of_pix_key_is_accepted_and_shown_masked(staff, key, kind, masked):
    response = pay(staff, body_for(open_account(balance=10_000), beneficiary={"pix_key": key}))
    assert response.status_code == 202, response.content
    assert response.json()["beneficiary"] == {"kind": "pix_key", "pix_key_type": kind, "pix_key": masked}


@pytest.mark.parametrize(
    ("amount", "code"), [(2.5, "validation_error"), ("100", "validation_error"), (0, "invalid_amount")]
)
def test_an_amount_that_is_not_whole_positive_minor_units_is_refused(staff, amount, code):
    response = pay(staff, body_for(open_account(balance=10_000), amount=amount))
    assert (response.status_code, response.json()["code"]) == (400, code)


def test_insufficient_funds_is_422_at_once_and_writes_nothing(staff):
    account = open_account(balance=1_000)
    response = pay(staff, body_for(account, amount=1_001))
    assert (response.status_code, response.json()["code"]) == (422, "insufficient_funds")
    assert not Payment.objects.exists()


def test_a_customer_pays_from_its_own_account_and_not_from_anothers(client_with):
    owner = verified_customer("Owner")
    mine, theirs = open_account(customer=owner, balance=10_000), open_account(balance=10_000)
    client = client_with("payments:write", customer_id=owner.id)
    refused = pay(client, body_for(theirs))
    assert (refused.status_code, refused.json()["code"]) == (404, "account_not_found")
    assert pay(client, body_for(mine)).status_code == 202
    assert Payment.objects.get().initiated_by_customer is True


def test_get_shows_the_status_and_its_history_to_the_owner_only(client_with, staff):
    owner = verified_customer("Owner")
    account = open_account(customer=owner, balance=10_000)
    payment_id = pay(staff, body_for(account)).json()["id"]
    screen(Payment.objects.get(pk=payment_id), "reject")

    response = client_with("transfers:read", customer_id=owner.id).get(f"/api/v1/payments/{payment_id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["failure_code"]) == ("failed", "fraud_rejected")
    assert [(step["step"], step["status"]) for step in body["history"]] == [
        ("initiated", "pending"),
        ("failed", "failed"),
    ]
    stranger = client_with("transfers:read", customer_id=uuid.uuid4())
    assert stranger.get(f"/api/v1/payments/{payment_id}").status_code == 404
    assert staff.get(f"/api/v1/payments/{uuid.uuid4()}").json()["code"] == "payment_not_found"


def test_the_list_filters_by_account_and_status_and_a_customer_sees_only_its_own(client_with, staff):
    owner = verified_customer("Owner")
    account, other = open_account(customer=owner, balance=10_000), open_account(balance=10_000)
    failed = pay(staff, body_for(account)).json()["id"]
    screen(Payment.objects.get(pk=failed), "reject")
    pending = pay(staff, body_for(account)).json()["id"]
    elsewhere = pay(staff, body_for(other)).json()["id"]

    listed = staff.get("/api/v1/payments", {"account_id": str(account.id)}).json()
    assert {p["id"] for p in listed["results"]} == {failed, pending}
    assert listed["next"] is None
    only_pending = staff.get("/api/v1/payments", {"account_id": str(account.id), "status": "pending"}).json()
    assert [p["id"] for p in only_pending["results"]] == [pending]
    mine = client_with("transfers:read", customer_id=owner.id).get("/api/v1/payments").json()
    assert {p["id"] for p in mine["results"]} == {failed, pending}
    assert elsewhere not in str(mine)
    bad = staff.get("/api/v1/payments", {"status": "lost"})
    assert (bad.status_code, bad.json()["code"]) == (400, "validation_error")
