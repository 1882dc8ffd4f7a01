"""Fifty clients send one request at once, on every endpoint that moves money (transfers,
deposits, batches of transfers, payments to other banks): one effect.

A client that times out retries under the same Idempotency-Key, and a busy one may retry from
many connections at once. Whatever the interleaving, the money moves once, and every answer is
the original response (replayed: same status, same body) or 409 `idempotency_request_in_progress`
with `Retry-After`. `POST /transfers/batch` has no header: each item's `id` is its key, so the
same batch sent fifty times creates each transfer once, and every other answer names it
`replayed`.

Through the real HTTP stack (authentication, Idempotency-Key, the view, the services and the
handlers that run after the commit), one thread and one database connection per client, all
released together by a barrier, on PostgreSQL (the system of record: its locks are what is
proved here).
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.ledger.models import Hold, JournalTransaction, LedgerAccount
from apps.payments.models import Payment
from apps.transactions.models import Deposit, Transfer
from fintech.api.models import IdempotencyRecord
from tests.factories import open_account
from tests.payments_support import ACCOUNT_BENEFICIARY
from tests.test_transfer_races import (
    Request,
    assert_books_reconcile,
    assert_problem,
    assert_transfers_posted_once,
    post_all_at_once,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CLIENTS = 50
FUNDS = 1_000_000


def post_at_once(clients: list[APIClient], path: str, bodies: list[dict[str, Any]], key: str | None) -> list[Any]:
    """Each client POSTs its body to `path`, all at once; no 5xx, no request left hanging."""
    return post_all_at_once([Request(c, b, key) for c, b in zip(clients, bodies, strict=True)], path)


def assert_one_original_and_replays(responses: list[Any], statuses: set[int]) -> Any:
    """Exactly one response did the work; every other is its replay or 409 in progress."""
    counted = Counter(r.status_code for r in responses)
    assert set(counted) <= statuses | {409}, counted
    answered = [r for r in responses if r.status_code != 409]
    originals = [r for r in answered if r.get("Idempotent-Replayed") != "true"]
    assert len(originals) == 1, counted
    original = originals[0]
    for response in answered:
        assert (response.status_code, response.json()) == (original.status_code, original.json())
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "idempotency_request_in_progress")
            assert int(response["Retry-After"]) >= 1
    assert IdempotencyRecord.objects.count() == 1
    return original


def staff_clients(client_with, scopes: str) -> list[APIClient]:
    """One client per thread, all with the same subject: one caller retrying from many connections."""
    return [client_with(scopes) for _ in range(CLIENTS)]


def test_fifty_clients_with_one_key_on_post_transfers_move_the_money_once(client_with):
    source, destination = open_account(balance=FUNDS), open_account()
    body = {"from_account_id": str(source.id), "to_account_id": str(destination.id), "amount": 700, "currency": "BRL"}

    clients = staff_clients(client_with, "transfers:read transfers:write")

    responses = post_at_once(clients, "/api/v1/transfers", [body] * CLIENTS, str(uuid.uuid4()))

    original = assert_one_original_and_replays(responses, {201, 202})
    transfer = Transfer.objects.get()
    assert str(transfer.id) == original.json()["id"]
    assert_transfers_posted_once([transfer])
    assert LedgerAccount.objects.get(owner_ref=destination.id).balance == 700
    assert_books_reconcile()


def test_fifty_clients_with_one_key_on_post_deposits_credit_the_account_once(client_with):
    account = open_account()
    deposits_before = Deposit.objects.count()
    body = {"account_id": str(account.id), "amount": 12_345, "currency": "BRL", "reference": f"cash-{uuid.uuid4()}"}

    clients = staff_clients(client_with, "deposits:write")

    responses = post_at_once(clients, "/api/v1/deposits", [body] * CLIENTS, str(uuid.uuid4()))

    original = assert_one_original_and_replays(responses, {201})
    assert Deposit.objects.count() == deposits_before + 1
    deposit = Deposit.objects.get(reference=body["reference"])
    assert str(deposit.id) == original.json()["id"]
    assert JournalTransaction.objects.filter(posting_key=f"deposit:{deposit.id}").count() == 1
    assert LedgerAccount.objects.get(owner_ref=account.id).balance == 12_345
    assert_books_reconcile()


def test_fifty_clients_with_one_key_on_post_payments_pay_once(client_with):
    account = open_account(balance=FUNDS)
    body = {"account_id": str(account.id), "amount": 2_500, "currency": "BRL", "beneficiary": ACCOUNT_BENEFICIARY}

    clients = staff_clients(client_with, "payments:write")

    responses = post_at_once(clients, "/api/v1/payments", [body] * CLIENTS, str(uuid.uuid4()))

    original = assert_one_original_and_replays(responses, {202})
    payment = Payment.objects.get()
    assert str(payment.id) == original.json()["id"]
    holds = Hold.objects.filter(account__owner_ref=account.id)
    assert [(hold.hold_key, hold.amount) for hold in holds] == [(f"payment:{payment.id}", 2_500)]
    assert_books_reconcile()


def test_the_same_batch_sent_by_fifty_clients_at_once_creates_each_transfer_once(client_with):
    sources = [open_account(balance=FUNDS) for _ in range(3)]
    destination = open_account()
    items: list[dict[str, Any]] = [
        {
            "id": str(uuid.uuid4()),
            "from_account_id": str(sources[n % len(sources)].id),
            "to_account_id": str(destination.id),
            "amount": 100 + n,
            "currency": "BRL",
        }
        for n in range(20)
    ]

    clients = staff_clients(client_with, "transfers:read transfers:write")

    responses = post_at_once(clients, "/api/v1/transfers/batch", [{"transfers": items}] * CLIENTS, None)

    assert Counter(r.status_code for r in responses) == {207: CLIENTS}
    created: Counter[str] = Counter()
    for response in responses:
        results = response.json()["results"]
        assert [result["id"] for result in results] == [item["id"] for item in items]
        for item, result in zip(items, results, strict=True):
            assert "problem" not in result, result
            assert result["status"] in (201, 202), result
            assert result["transfer"]["id"] == item["id"]
            assert result["transfer"]["amount"] == item["amount"]
            if not result["replayed"]:
                created[item["id"]] += 1
    # Each transfer was created by exactly one of the fifty; the others were told it was a replay.
    assert created == Counter({item["id"]: 1 for item in items})
    transfers = list(Transfer.objects.filter(pk__in=[item["id"] for item in items]))
    assert len(transfers) == len(items) == Transfer.objects.count()
    assert_transfers_posted_once(transfers)
    moved = sum(item["amount"] for item in items)
    assert LedgerAccount.objects.get(owner_ref=destination.id).balance == moved
    assert_books_reconcile()


def test_one_id_sent_at_once_for_two_different_transfers_creates_one_and_refuses_the_other(client_with):
    """Two batches reuse the same ids for transfers between different accounts, so their locks
    do not queue them: a batch that loses the race to insert an id reads it again and refuses
    its transfer as `idempotency_key_reuse`, never a 500."""
    routes = [(open_account(balance=FUNDS), open_account()) for _ in range(2)]
    ids = [str(uuid.uuid4()) for _ in range(5)]
    batches = [
        {
            "transfers": [
                {"id": i, "from_account_id": str(source.id), "to_account_id": str(destination.id), "amount": 300}
                | {"currency": "BRL"}
                for i in ids
            ]
        }
        for source, destination in routes
    ]
    clients = staff_clients(client_with, "transfers:read transfers:write")

    responses = post_at_once(clients, "/api/v1/transfers/batch", [batches[n % 2] for n in range(CLIENTS)], None)

    assert Counter(r.status_code for r in responses) == {207: CLIENTS}
    transfers = {str(t.id): t for t in Transfer.objects.all()}
    assert set(transfers) == set(ids)  # each id once, whichever batch won it
    for index, response in enumerate(responses):
        source, _ = routes[index % 2]
        for result in response.json()["results"]:
            if transfers[result["id"]].from_account_id == source.id:
                assert result["status"] in (201, 202), result
            else:
                assert result["status"] == 422, result
                assert result["problem"]["code"] == "idempotency_key_reuse"
    assert_transfers_posted_once(list(transfers.values()))
    assert_books_reconcile()
