"""Outbound payments through the real screening (the fraud context), end to end through the API
on the embedded default's in-process network: a payment under the rules' thresholds is approved
and settles; one above the amount rule waits in review like a transfer, its amount held and
nothing in clearing, until an analyst decides: approval sends it (and the network settles it),
rejection fails it and releases the hold. The books reconcile after each."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import call_command

from apps.fraud.models import Alert
from apps.ledger.models import LedgerAccount
from apps.payments.models import Payment
from outbox.models import OutboxEvent
from outbox.network_simulator import inline
from tests.factories import open_account
from tests.payments_support import ACCOUNT_BENEFICIARY

pytestmark = pytest.mark.django_db(transaction=True)

FUNDS = 10_000_000  # 100,000.00
LARGE = 6_000_000  # 60,000.00: above the amount rule's 50,000.00


@pytest.fixture(autouse=True)
def simulated_network(settings, tmp_path):
    settings.FINTECH_PAYMENT_NETWORK = "simulator-inline"
    settings.FINTECH_EVENT_DISPATCH = "inline"
    settings.FINTECH_PAYMENT_SIMULATOR_SETTLEMENT_FILE = str(tmp_path / "settlement-{date}.csv")
    installed_here = not inline.installed()
    if installed_here:
        inline.install()
    yield
    if installed_here:
        inline.uninstall()


def pay(client, account, amount):
    body = {"account_id": str(account.id), "amount": amount, "currency": "BRL", "beneficiary": ACCOUNT_BENEFICIARY}
    return client.post("/api/v1/payments", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))


def balances(client, account) -> tuple[int, int]:
    body = client.get(f"/api/v1/accounts/{account.id}").json()
    return body["balance"], body["available_balance"]


def clearing() -> int:
    # Opened on first use: a transactional test's flush empties what the migration opened.
    return LedgerAccount.objects.filter(code="system:clearing:BRL").values_list("balance", flat=True).first() or 0


def assert_books_reconcile() -> None:
    out = io.StringIO()
    call_command("reconcile", "--quiet", stdout=out)
    assert "the books reconcile" in out.getvalue()


def test_a_payment_under_the_thresholds_is_approved_by_the_screening_and_settles(staff):
    account = open_account(balance=FUNDS)
    response = pay(staff, account, 1_500)
    assert response.status_code == 202, response.content
    payment = Payment.objects.get(pk=response.json()["id"])
    assert payment.status == Payment.Status.SETTLED
    assert [step for step, _ in payment.history.values_list("step", "status")] == ["initiated", "sent", "settled"]
    screened = OutboxEvent.objects.get(event_type="fraud.screened")
    assert (screened.envelope["data"]["subject_id"], screened.envelope["data"]["decision"]) == (
        str(payment.id),
        "approve",
    )
    assert balances(staff, account) == (FUNDS - 1_500, FUNDS - 1_500)
    assert clearing() == 0
    assert_books_reconcile()


@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_a_payment_above_the_fraud_threshold_waits_in_review_like_a_transfer(staff, verdict):
    account = open_account(balance=FUNDS)
    response = pay(staff, account, LARGE)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "review"
    assert [step["step"] for step in body["history"]] == ["initiated", "review"]
    payment_id = body["id"]
    assert balances(staff, account) == (FUNDS, FUNDS - LARGE)  # held, not moved
    assert clearing() == 0  # nothing went to the network
    assert not OutboxEvent.objects.filter(event_type="payment.requested").exists()
    alert = Alert.objects.get(subject_id=payment_id)
    assert alert.status == Alert.Status.REVIEW
    assert_books_reconcile()

    decided = staff.post(
        f"/api/v1/fraud/reviews/{payment_id}/{verdict}", {"reason": "called the customer"}, format="json"
    )
    assert decided.status_code == 200, decided.content
    shown = staff.get(f"/api/v1/payments/{payment_id}").json()
    if verdict == "approve":
        assert shown["status"] == "settled"
        assert [step["step"] for step in shown["history"]] == ["initiated", "review", "sent", "settled"]
        assert balances(staff, account) == (FUNDS - LARGE, FUNDS - LARGE)
    else:
        assert (shown["status"], shown["failure_code"]) == ("failed", "fraud_rejected")
        assert balances(staff, account) == (FUNDS, FUNDS)
    assert clearing() == 0
    assert_books_reconcile()
