"""POST /transfers/batch: up to 1,000 transfers, each accepted or refused on its own, idempotent
per item by its client-chosen id, posted with set-based SQL."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.fraud import services as fraud
from apps.ledger.models import Hold, JournalTransaction, LedgerAccount
from apps.transactions.models import Transfer
from tests.factories import open_account

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/transfers/batch"


def item(source, destination, amount=100, **extra):
    return {
        "id": str(uuid.uuid4()),
        "from_account_id": str(source.id),
        "to_account_id": str(destination.id),
        "amount": amount,
        "currency": "BRL",
        **extra,
    }


def post(client, items):
    return client.post(URL, {"transfers": items}, format="json")


def ledger_of(account):
    return LedgerAccount.objects.get(owner_ref=account.id)


def test_each_transfer_is_accepted_or_refused_on_its_own_in_order(staff):
    rich, poor, other = open_account(balance=10_000), open_account(balance=50), open_account()
    items = [
        item(rich, other, 3_000, description="rent"),
        item(poor, other, 60),  # more than poor has
        {**item(rich, other), "to_account_id": str(uuid.uuid4())},  # no such account
        item(rich, rich),  # same account
        item(rich, poor, 2_000),
    ]
    response = post(staff, items)
    assert response.status_code == 207, response.content
    results = response.json()["results"]
    assert [r["id"] for r in results] == [i["id"] for i in items]
    assert [r["status"] for r in results] == [201, 422, 404, 400, 201]
    assert [r.get("problem", {}).get("code") for r in results] == [
        None,
        "insufficient_funds",
        "account_not_found",
        "same_account",
        None,
    ]
    assert results[0]["transfer"]["status"] == "completed"
    assert results[0]["transfer"]["description"] == "rent"
    assert results[1]["problem"]["status"] == 422
    # The refused wrote nothing; the accepted moved their money.
    assert set(Transfer.objects.values_list("id", flat=True)) == {uuid.UUID(items[0]["id"]), uuid.UUID(items[4]["id"])}
    assert Hold.objects.count() == 2
    assert (ledger_of(rich).balance, ledger_of(rich).held) == (5_000, 0)
    assert (ledger_of(poor).balance, ledger_of(other).balance) == (2_050, 3_000)


def test_holds_on_one_account_are_taken_in_order_against_what_is_left(staff):
    source, destination = open_account(balance=1_000), open_account()
    items = [item(source, destination, 400) for _ in range(4)]
    results = post(staff, items).json()["results"]
    assert [r["status"] for r in results] == [201, 201, 422, 422]
    assert (ledger_of(source).balance, ledger_of(destination).balance) == (200, 800)


def test_an_id_is_the_idempotency_key_of_its_transfer(staff):
    source, destination = open_account(balance=10_000), open_account()
    first = item(source, destination, 700)
    assert post(staff, [first]).json()["results"][0]["status"] == 201

    again = post(staff, [first, item(source, destination, 100)]).json()["results"]
    assert again[0]["status"] == 201
    assert again[0]["replayed"] is True
    assert again[0]["transfer"]["id"] == first["id"]
    assert again[1]["replayed"] is False
    reused = post(staff, [{**first, "amount": 701}]).json()["results"][0]
    assert (reused["status"], reused["problem"]["code"]) == (422, "idempotency_key_reuse")
    twice = post(staff, [(dup := item(source, destination)), dup]).json()["results"]
    assert [r["status"] for r in twice] == [201, 400]
    assert twice[1]["problem"]["code"] == "duplicate_item"
    assert JournalTransaction.objects.filter(kind="transfer").count() == 3
    assert ledger_of(source).balance == 10_000 - 700 - 100 - 100


def test_the_shape_of_the_batch_is_checked_whole(staff):
    source, destination = open_account(balance=10_000), open_account()
    bodies: list[dict[str, object]] = [
        {"transfers": []},
        {"transfers": [item(source, destination)] * 1001},
        {"transfers": [{**item(source, destination), "amount": "100"}]},
        {"transfers": [{**item(source, destination), "surprise": 1}]},
        {"transfers": [{**item(source, destination), "id": "not-a-uuid"}]},
    ]
    for body in bodies:
        response = staff.post(URL, body, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "validation_error"
    assert not Transfer.objects.exists()


def test_a_customer_moves_money_only_out_of_its_own_accounts(client_with):
    mine, theirs = open_account(balance=1_000), open_account(balance=1_000)
    customer = client_with("transfers:write", customer_id=mine.customer_id)
    results = post(customer, [item(mine, theirs, 100), item(theirs, mine, 100)]).json()["results"]
    assert [r["status"] for r in results] == [201, 404]
    assert (ledger_of(mine).balance, ledger_of(theirs).balance) == (900, 1_100)


def lift_velocity_limit() -> None:
    """Hundreds of transfers out of one account in a minute is what the velocity rule holds for
    review (more than 60 in 10 minutes); these tests measure batches, not the rule."""
    fraud.rule_change(name="velocity", parameters={"max_count": 1_000_000}, changed_by="t", changer_kind="system")


def test_a_batch_costs_the_same_statements_whatever_its_size(staff):
    """Set-based SQL: the statements of a batch do not grow with its transfers."""
    lift_velocity_limit()
    sources = [open_account(balance=1_000_000) for _ in range(3)]
    destination = open_account()

    def statements(size: int) -> int:
        items = [item(sources[n % 3], destination, 10) for n in range(size)]
        with CaptureQueriesContext(connection) as queries:
            results = post(staff, items).json()["results"]
        assert {r["status"] for r in results} == {201}
        return len(
            [q for q in queries.captured_queries if "transactions_transfer" in q["sql"] or "ledger_" in q["sql"]]
        )

    small, large = statements(5), statements(200)
    if connection.vendor == "postgresql":
        assert large == small
    else:
        assert large <= small + 15  # SQLite splits each bulk insert at 999 parameters
    assert Transfer.objects.filter(status="completed").count() == 205


def test_a_thousand_transfers_in_one_request(staff):
    lift_velocity_limit()
    sources = [open_account(balance=1_000_000) for _ in range(4)]
    destinations = [open_account() for _ in range(4)]
    items = [item(sources[n % 4], destinations[(n + 1) % 4], 1 + n % 7) for n in range(1000)]
    response = post(staff, items)
    assert response.status_code == 207
    assert {r["status"] for r in response.json()["results"]} == {201}
    assert Transfer.objects.filter(status="completed").count() == 1000
    moved = sum(1 + n % 7 for n in range(1000))
    assert sum(ledger_of(d).balance for d in destinations) == moved
