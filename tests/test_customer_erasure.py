"""Erasure of a customer's personal data (LGPD art. 18, VI) across the contexts: refused while the
bank still does business with them (an account not closed, money on its way), allowed to staff
holding `customers:erase` once it is over; then the personal data is gone and the financial
records the law requires the bank to keep (LGPD art. 16, I) are all still there."""

from __future__ import annotations

import io
import threading
import uuid
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.forms.models import model_to_dict

from apps.accounts import services as accounts
from apps.accounts.errors import CustomerNotVerified
from apps.accounts.models import BankAccount
from apps.customers import services as customer_services
from apps.customers.models import Customer
from apps.ledger.models import JournalEntry, JournalTransaction, LedgerAccount
from apps.notifications.models import Notification
from apps.payments.models import Payment
from apps.transactions.models import Transfer
from outbox.models import OutboxEvent
from tests.factories import deposit, open_account, verified_customer
from tests.payments_support import screening_by_the_test, sent_payment

pytestmark = pytest.mark.django_db


def erase(client, customer) -> Any:
    return client.post(f"/api/v1/customers/{customer.id}/erase")


def assert_problem(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def assert_untouched(customer: Customer) -> None:
    stored = Customer.objects.get(pk=customer.id)
    assert (stored.name, stored.email, stored.document, stored.erased_at) == (
        customer.name,
        customer.email,
        customer.document,
        None,
    )
    assert not OutboxEvent.objects.filter(event_type="customer.erased").exists()


def send(client, source, destination, amount: int):
    return client.post(
        "/api/v1/transfers",
        {"from_account_id": str(source.id), "to_account_id": str(destination.id), "amount": amount, "currency": "BRL"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )


def close(account) -> None:
    accounts.account_close(account_id=account.id, reason="customer asked", changed_by="ops")


def test_refused_while_an_account_is_open_and_deposits_keep_landing(staff):
    customer = verified_customer("Olga Open")
    funded = open_account(customer=customer, balance=50_000)
    closed = open_account(customer=customer)
    close(closed)

    body = assert_problem(erase(staff, customer), 409, "customer_has_open_accounts")
    assert body["open_accounts"] == [str(funded.id)]
    assert_untouched(customer)
    deposit(funded, 100)  # the account is the customer's as before, and still takes money
    assert staff.get(f"/api/v1/accounts/{funded.id}").json()["balance"] == 50_100


def test_refused_while_a_transfer_to_the_customer_waits_in_review(staff):
    """The customer's own account is empty and closed, but money is on its way to it: an analyst
    still has to decide a large transfer from someone else."""
    customer = verified_customer("Rita Receiving")
    receiving = open_account(customer=customer)
    payer = open_account(balance=10_000_000)
    held = send(staff, payer, receiving, 6_000_000)  # above the amount rule: held for review
    assert held.json()["status"] == "review", held.content
    close(receiving)  # zero balance: closing is allowed

    body = assert_problem(erase(staff, customer), 409, "customer_has_pending_money")
    assert body["pending"] == {"holds": 0, "transfers": 1, "payments": 0, "reviews": 1}
    assert_untouched(customer)


def test_refused_while_a_payment_of_the_customer_is_with_the_network(staff):
    """The customer paid out the whole balance and closed the account; the network has not
    answered the payment yet (it may still return the money)."""
    customer = verified_customer("Paulo Paying")
    account = open_account(customer=customer, balance=1_000)
    with screening_by_the_test():
        payment = sent_payment(account, amount=1_000)
    close(account)

    body = assert_problem(erase(staff, customer), 409, "customer_has_pending_money")
    assert body["pending"]["payments"] == 1
    assert_untouched(customer)
    assert Payment.objects.get(pk=payment.id).status == Payment.Status.PENDING


def test_customers_write_is_not_enough(client_with):
    customer = verified_customer("Walter Write")
    writer = client_with("customers:read customers:write kyc:review")
    body = assert_problem(erase(writer, customer), 403, "insufficient_scope")
    assert "customers:erase" in body["detail"]
    assert_untouched(customer)


def test_a_customer_token_with_the_scope_cannot_erase(client_with):
    customer = verified_customer("Cida Customer")
    own = client_with("customers:read customers:erase", customer_id=customer.id)
    assert_problem(erase(own, customer), 403, "staff_only")
    assert_untouched(customer)


@pytest.mark.django_db(transaction=True)  # the transfers' choreography runs after their commit
def test_once_the_accounts_are_closed_staff_erase_and_the_records_stay(client_with, staff):
    customer = verified_customer("Erin Erased")
    funded = open_account(customer=customer, balance=12_345)
    other = open_account(balance=1_000)
    assert send(staff, funded, other, 345).status_code == 201
    assert send(staff, funded, other, 12_000).status_code == 201  # the customer empties the account
    close(funded)
    transfers = list(Transfer.objects.filter(from_account_id=funded.id).values_list("id", "status"))
    assert [status for _, status in transfers] == ["completed", "completed"]

    def books() -> tuple[Any, ...]:
        return (
            [model_to_dict(a) for a in BankAccount.objects.order_by("id")],
            [model_to_dict(a) for a in LedgerAccount.objects.order_by("id")],
            [model_to_dict(e) for e in JournalEntry.objects.order_by("id")],
            [model_to_dict(t) for t in JournalTransaction.objects.order_by("id")],
            [model_to_dict(t) for t in Transfer.objects.order_by("id")],
            staff.get(f"/api/v1/accounts/{funded.id}/statement").json(),
        )

    before = books()
    officer = client_with("customers:erase", subject="dpo-officer")  # staff: no customer in the token
    response = erase(officer, customer)
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "erased"

    stored = Customer.objects.get(pk=customer.id)
    assert stored.is_erased
    personal = (stored.email, stored.phone, stored.document, stored.document_index, stored.birth_date)
    assert personal == (None, None, None, None, None)
    assert stored.name == "erased"
    assert books() == before  # accounts, the journal and the transfers are kept as they were
    assert len(before[5]["results"]) == 3  # the deposit and both transfers, still on the statement
    assert BankAccount.objects.get(pk=funded.id).customer_id == customer.id  # the records still name the id
    event = OutboxEvent.objects.get(event_type="customer.erased")
    assert event.envelope["data"]["erased_by"] == "dpo-officer"
    # The notifications context erased its copies too: the notices greeted the customer by name.
    notices = list(Notification.objects.filter(customer_id=customer.id).values_list("subject", "body", "erased_at"))
    assert notices, "the deposit and the transfers were notified"
    assert all((subject, body) == ("", "") and erased_at is not None for subject, body, erased_at in notices)
    assert not Notification.objects.filter(body__contains="Erin").exists()

    out = io.StringIO()
    call_command("reconcile", "--quiet", stdout=out)
    assert "the books reconcile" in out.getvalue()


@pytest.mark.django_db(transaction=True)  # two threads, two connections, each its own transaction
def test_an_account_cannot_open_under_an_erasure(monkeypatch):
    """The erasure found no account and is about to erase; an account opening for the customer
    arrives now. It must wait for the erasure and then be refused: had it read the customer as
    verified and gone on, an erased customer would hold an open account."""
    customer = verified_customer("Nina Nearly")
    checked, opened = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}
    original = customer_services._erasure_refusal

    def refusal_then_a_pause(customer_id):
        refusal = original(customer_id)
        checked.set()
        opened.wait(timeout=3)  # long enough for an unlocked opening to commit meanwhile
        return refusal

    monkeypatch.setattr(customer_services, "_erasure_refusal", refusal_then_a_pause)

    def open_an_account() -> None:
        checked.wait(timeout=30)
        try:
            outcome["account"] = accounts.account_open(customer_id=customer.id)
        except Exception as error:  # the refusal is the expected outcome
            outcome["error"] = error
        finally:
            opened.set()
            connections.close_all()

    opener = threading.Thread(target=open_an_account, daemon=True)
    opener.start()
    customer_services.customer_erase(customer_id=customer.id, erased_by="dpo")
    opener.join(timeout=60)
    assert not opener.is_alive(), "the account opening never finished"

    assert Customer.objects.get(pk=customer.id).is_erased
    assert isinstance(outcome.get("error"), CustomerNotVerified), outcome
    assert not BankAccount.objects.filter(customer_id=customer.id).exists()
