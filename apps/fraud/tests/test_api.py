from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from apps.fraud import services
from apps.fraud.tests.conftest import NOON_UTC

pytestmark = pytest.mark.django_db

ALERTS = "/api/v1/fraud/alerts"


def review_url(subject_id, verdict: str) -> str:
    return f"/api/v1/fraud/reviews/{subject_id}/{verdict}"


@pytest.fixture
def analyst(client_with):
    return client_with("fraud:review", subject="analyst-ana")


@pytest.fixture
def held(transfer):
    """Three operations held for review, a minute apart, and one the rules approved."""
    source = uuid.uuid4()
    operations = [transfer(source=source, amount=5_000_001, at=NOON_UTC + timedelta(minutes=i)) for i in range(3)]
    for minute, operation in enumerate(operations):
        services.operations_screen(operations=[operation], now=NOON_UTC + timedelta(minutes=minute))
    approved = transfer(amount=100)
    services.operations_screen(operations=[approved], now=NOON_UTC)
    return source, operations, approved


def assert_problem(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def test_the_alerts_list_shows_the_rules_scores_and_inputs_newest_first(analyst, held):
    source, operations, _ = held
    body = analyst.get(ALERTS).json()
    assert [alert["subject_id"] for alert in body["results"]] == [str(o.subject_id) for o in reversed(operations)]
    alert = body["results"][0]
    assert alert["status"] == "review"
    assert alert["decision"] == "review"
    assert alert["account_id"] == str(source)
    assert (alert["amount"], alert["currency"]) == (5_000_001, "BRL")
    assert {r["rule"] for r in alert["rules"]} >= {"amount", "new_account", "new_beneficiary"}
    assert all(r["version"] == 1 and r["score"] > 0 and r["reason"] for r in alert["rules"])
    assert alert["score"] == sum(r["score"] for r in alert["rules"])
    assert alert["inputs"]["amount"] == 5_000_001
    assert alert["rule_versions"]["velocity"] == 1
    assert body["next"] is None


def test_the_alerts_list_filters_and_pages(analyst, held, transfer):
    _, operations, _ = held
    services.review_reject(subject_id=operations[0].subject_id, decided_by="bruno", decider_kind="staff")
    other = transfer(amount=5_000_001)
    services.operations_screen(operations=[other], now=NOON_UTC + timedelta(days=1))

    def ids(**query):
        return [alert["subject_id"] for alert in analyst.get(ALERTS, query).json()["results"]]

    assert ids(status="rejected") == [str(operations[0].subject_id)]
    assert len(ids(status="review")) == 3
    assert ids(account_id=str(other.account_id)) == [str(other.subject_id)]
    assert len(ids(rule="amount")) == 4
    assert ids(rule="deny_list") == []
    assert ids(**{"from": "2026-12-01"}) == [str(other.subject_id)]
    assert len(ids(to="2026-11-30")) == 3
    first = analyst.get(ALERTS, {"page_size": 2}).json()
    assert len(first["results"]) == 2
    second = analyst.get(first["next"]).json()
    assert len(second["results"]) == 2
    assert not {a["alert_id"] for a in first["results"]} & {a["alert_id"] for a in second["results"]}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "open"}, "status"),
        ({"rule": "astrology"}, "rule"),
        ({"account_id": "x"}, "account_id"),
        ({"from": "yesterday"}, "from"),
    ],
)
def test_a_bad_filter_is_a_400(analyst, query, field):
    response = analyst.get(ALERTS, query)
    assert_problem(response, 400, "validation_error")
    assert field in response.json()["errors"]


def test_an_analyst_approves_a_review_once(analyst, held):
    _, operations, _ = held
    subject_id = operations[0].subject_id
    response = analyst.post(review_url(subject_id, "approve"), {"reason": "called the customer"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["decided_by"], body["decision_reason"]) == (
        "approved",
        "analyst-ana",
        "called the customer",
    )
    again = analyst.post(review_url(subject_id, "reject"), {}, format="json")
    assert_problem(again, 409, "review_already_decided")


def test_a_reject_needs_no_reason(analyst, held):
    _, operations, _ = held
    response = analyst.post(review_url(operations[1].subject_id, "reject"))
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "rejected"


def test_deciding_what_is_not_in_review_is_a_409(analyst, held):
    _, _, approved = held
    for subject_id in (approved.subject_id, uuid.uuid4()):
        assert_problem(analyst.post(review_url(subject_id, "approve")), 409, "transfer_not_in_review")


def test_bad_decision_input_is_a_400_and_decides_nothing(analyst, held):
    _, operations, _ = held
    url = review_url(operations[0].subject_id, "approve")
    assert_problem(analyst.post(url, {"reason": "x" * 501}, format="json"), 400, "validation_error")
    assert_problem(analyst.post(url, {"verdict": "yes"}, format="json"), 400, "validation_error")
    assert analyst.get(ALERTS, {"status": "review"}).json()["results"][-1]["status"] == "review"
    assert len(analyst.get(ALERTS, {"status": "review"}).json()["results"]) == 3


def test_a_customers_token_never_sees_alerts_nor_decides(client_with, held):
    _, operations, _ = held
    customer = client_with("fraud:review transfers:read", customer_id=uuid.uuid4())
    assert_problem(customer.get(ALERTS), 403, "staff_only")
    assert_problem(customer.post(review_url(operations[0].subject_id, "approve")), 403, "staff_only")
    assert_problem(customer.post(review_url(operations[0].subject_id, "reject")), 403, "staff_only")


def test_staff_without_the_fraud_review_scope_are_refused(client_with, held):
    _, operations, _ = held
    teller = client_with("transfers:read transfers:write")
    assert_problem(teller.get(ALERTS), 403, "insufficient_scope")
    assert_problem(teller.post(review_url(operations[0].subject_id, "approve")), 403, "insufficient_scope")
