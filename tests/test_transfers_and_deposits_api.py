import uuid

import pytest

from apps.accounts import services as accounts
from apps.ledger.models import Hold, JournalEntry, JournalTransaction
from apps.transactions.models import Deposit, Transfer
from outbox.models import OutboxEvent
from tests.factories import open_account

pytestmark = pytest.mark.django_db(transaction=True)


def assert_problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    return response.json()


def send(client, body, key=None):
    return client.post("/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()))


def balance(client, account):
    body = client.get(f"/api/v1/accounts/{account.id}").json()
    return body["balance"], body["available_balance"]


@pytest.fixture
def pair():
    return open_account(balance=10_000), open_account()


def transfer_body(source, destination, amount=2_500, **extra):
    return {
        "from_account_id": str(source.id),
        "to_account_id": str(destination.id),
        "amount": amount,
        "currency": "BRL",
        **extra,
    }


def nothing_moved(source, destination):
    return (
        not Transfer.objects.exists()
        and not Hold.objects.exists()
        and not JournalTransaction.objects.filter(kind="transfer").exists()
        and not OutboxEvent.objects.filter(event_type__startswith="transaction.").exists()
    )


class TestTransfer:
    def test_the_embedded_choreography_completes_before_the_response(self, staff, pair):
        source, destination = pair
        response = send(staff, transfer_body(source, destination, description="rent"))
        assert response.status_code == 201
        body = response.json()
        assert body["status"] == "completed"
        assert body["failure_code"] == ""
        assert body["description"] == "rent"
        assert balance(staff, source) == (7_500, 7_500)
        assert balance(staff, destination) == (2_500, 2_500)
        journal = JournalTransaction.objects.get(pk=body["journal_transaction_id"])
        assert journal.kind == "transfer"
        assert sorted(JournalEntry.objects.filter(transaction=journal).values_list("side", "amount")) == [
            ("credit", 2_500),
            ("debit", 2_500),
        ]
        chain = list(
            OutboxEvent.objects.filter(event_type__startswith="transaction.").values_list("event_type", flat=True)
        )
        assert chain == ["transaction.initiated", "transaction.validated", "transaction.completed"]
        assert OutboxEvent.objects.filter(event_type="account.balance.updated").count() == 3  # deposit + two legs

    def test_with_workers_the_transfer_is_accepted_and_the_amount_held(self, staff, pair, settings):
        settings.FINTECH_EVENT_DISPATCH = "worker"
        source, destination = pair
        response = send(staff, transfer_body(source, destination))
        assert response.status_code == 202
        assert response.json()["status"] == "initiated"
        assert balance(staff, source) == (10_000, 7_500)  # held, not posted
        from outbox import dispatcher

        dispatcher.sweep(grace_seconds=0)
        dispatcher.sweep(grace_seconds=0)
        dispatcher.sweep(grace_seconds=0)
        assert staff.get(f"/api/v1/transfers/{response.json()['id']}").json()["status"] == "completed"
        assert balance(staff, source) == (7_500, 7_500)

    def test_a_replay_returns_the_final_response(self, staff, pair):
        source, destination = pair
        first = send(staff, transfer_body(source, destination), key="pay-rent")
        again = send(staff, transfer_body(source, destination), key="pay-rent")
        assert again.status_code == first.status_code == 201
        assert again.json() == first.json()
        assert again["Idempotent-Replayed"] == "true"
        assert Transfer.objects.count() == 1
        assert balance(staff, source) == (7_500, 7_500)

    def test_a_reused_key_with_another_body_is_refused(self, staff, pair):
        source, destination = pair
        send(staff, transfer_body(source, destination), key="k")
        assert_problem(send(staff, transfer_body(source, destination, amount=1), key="k"), 422, "idempotency_key_reuse")
        assert Transfer.objects.count() == 1

    def test_the_idempotency_key_is_required(self, staff, pair):
        source, destination = pair
        response = staff.post("/api/v1/transfers", transfer_body(source, destination), format="json")
        assert_problem(response, 400, "idempotency_key_missing")
        assert nothing_moved(source, destination)

    def test_insufficient_funds_is_refused_and_nothing_is_written(self, staff, pair):
        source, destination = pair
        assert_problem(send(staff, transfer_body(source, destination, amount=10_001)), 422, "insufficient_funds")
        assert nothing_moved(source, destination)
        assert balance(staff, source) == (10_000, 10_000)

    @pytest.mark.parametrize(
        ("amount", "code"),
        [
            (0, "invalid_amount"),
            (-5, "invalid_amount"),
            (10.5, "validation_error"),
            (100.0, "validation_error"),
            ("100", "validation_error"),
            (True, "validation_error"),
            (None, "validation_error"),
            (100_000_001, "amount_too_large"),
        ],
    )
    def test_bad_amounts_are_refused(self, staff, pair, amount, code):
        source, destination = pair
        assert_problem(send(staff, transfer_body(source, destination, amount=amount)), 400, code)
        assert nothing_moved(source, destination)

    def test_unknown_accounts_are_not_found(self, staff, pair):
        source, destination = pair
        unknown = {
            "from_account_id": str(uuid.uuid4()),
            "to_account_id": str(destination.id),
            "amount": 1,
            "currency": "BRL",
        }
        assert_problem(send(staff, unknown), 404, "account_not_found")
        unknown_to = {**transfer_body(source, destination), "to_account_id": str(uuid.uuid4())}
        assert_problem(send(staff, unknown_to), 404, "account_not_found")
        assert nothing_moved(source, destination)

    def test_a_customer_cannot_move_money_out_of_another_customers_account(self, client_with, pair):
        source, destination = pair
        thief = client_with("transfers:write", customer_id=destination.customer_id)
        assert_problem(send(thief, transfer_body(source, destination)), 404, "account_not_found")
        owner = client_with("transfers:write transfers:read", customer_id=source.customer_id)
        assert send(owner, transfer_body(source, destination)).json()["status"] == "completed"

    def test_same_account_is_refused(self, staff, pair):
        source, _ = pair
        assert_problem(send(staff, transfer_body(source, source)), 400, "same_account")

    def test_currency_mismatch_is_refused(self, staff, pair):
        source, destination = pair
        assert_problem(send(staff, transfer_body(source, destination, currency="USD")), 422, "currency_mismatch")
        dollars = open_account(currency="USD", balance=100)
        assert_problem(send(staff, transfer_body(source, dollars)), 422, "currency_mismatch")
        assert not Transfer.objects.exists()

    def test_blocked_and_closed_accounts_are_refused(self, staff, pair):
        source, destination = pair
        accounts.account_block(account_id=destination.id, reason="fraud", changed_by="ops")
        assert_problem(send(staff, transfer_body(source, destination)), 409, "account_blocked")
        accounts.account_block(account_id=source.id, reason="fraud", changed_by="ops")
        assert_problem(send(staff, transfer_body(destination, source)), 409, "account_blocked")
        empty = open_account()
        accounts.account_close(account_id=empty.id, reason="customer asked", changed_by="ops")
        accounts.account_unblock(account_id=source.id, reason="cleared", changed_by="ops")
        assert_problem(send(staff, transfer_body(source, empty)), 409, "account_closed")
        assert nothing_moved(source, destination)

    def test_malformed_json_is_a_problem(self, staff):
        response = staff.generic(
            "POST", "/api/v1/transfers", "{amount: 1", content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
        )
        assert_problem(response, 400, "malformed_request")

    def test_unknown_fields_are_refused(self, staff, pair):
        source, destination = pair
        assert_problem(send(staff, transfer_body(source, destination, status="completed")), 400, "validation_error")

    def test_an_account_blocked_after_initiation_fails_the_transfer_and_frees_the_hold(self, staff, pair, settings):
        settings.FINTECH_EVENT_DISPATCH = "worker"
        source, destination = pair
        transfer_id = send(staff, transfer_body(source, destination)).json()["id"]
        accounts.account_block(account_id=destination.id, reason="fraud", changed_by="ops")
        from outbox import dispatcher

        for _ in range(3):
            dispatcher.sweep(grace_seconds=0)
        body = staff.get(f"/api/v1/transfers/{transfer_id}").json()
        assert body["status"] == "failed"
        assert body["failure_code"] == "account_blocked"
        assert balance(staff, source) == (10_000, 10_000)
        assert Hold.objects.get().status == "voided"

    def test_read_and_list_respect_ownership(self, client_with, staff, pair):
        source, destination = pair
        transfer = send(staff, transfer_body(source, destination)).json()
        stranger = client_with("transfers:read", customer_id=uuid.uuid4())
        assert_problem(stranger.get(f"/api/v1/transfers/{transfer['id']}"), 404, "transfer_not_found")
        receiver = client_with("transfers:read", customer_id=destination.customer_id)
        assert receiver.get(f"/api/v1/transfers/{transfer['id']}").status_code == 200
        assert [t["id"] for t in receiver.get("/api/v1/transfers").json()["results"]] == [transfer["id"]]
        assert stranger.get("/api/v1/transfers").json()["results"] == []
        listed = staff.get(f"/api/v1/transfers?account_id={source.id}&status=completed").json()["results"]
        assert [t["id"] for t in listed] == [transfer["id"]]


class TestDeposit:
    def deposit(self, client, account, amount=5_000, reference="cash-001", key=None):
        return client.post(
            "/api/v1/deposits",
            {"account_id": str(account.id), "amount": amount, "currency": account.currency, "reference": reference},
            format="json",
            HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()),
        )

    def test_credits_the_account_against_settlement(self, staff):
        account = open_account()
        response = self.deposit(staff, account)
        assert response.status_code == 201
        body = response.json()
        assert body["status"] == "completed"
        assert balance(staff, account) == (5_000, 5_000)
        journal = staff.get(f"/api/v1/ledger/transactions/{body['journal_transaction_id']}").json()
        codes = {entry["ledger_account_code"]: entry["side"] for entry in journal["entries"]}
        assert codes == {"system:settlement:BRL": "debit", f"customer:{account.id}": "credit"}

    def test_a_duplicate_reference_is_a_conflict(self, staff):
        account = open_account()
        self.deposit(staff, account, reference="cash-1")
        assert_problem(self.deposit(staff, account, reference="cash-1"), 409, "duplicate_reference")
        assert Deposit.objects.count() == 1
        assert balance(staff, account) == (5_000, 5_000)

    def test_the_same_key_replays_without_a_second_credit(self, staff):
        account = open_account()
        first = self.deposit(staff, account, key="teller-7")
        again = self.deposit(staff, account, key="teller-7")
        assert again.json() == first.json()
        assert balance(staff, account) == (5_000, 5_000)

    def test_customers_cannot_deposit(self, client_with):
        account = open_account()
        client = client_with("deposits:write", customer_id=account.customer_id)
        assert_problem(self.deposit(client, account), 403, "staff_only")
        assert not Deposit.objects.exists()

    def test_a_closed_account_takes_no_deposit(self, staff):
        account = open_account()
        accounts.account_close(account_id=account.id, reason="done", changed_by="ops")
        assert_problem(self.deposit(staff, account), 409, "account_closed")

    def test_bad_deposits_are_refused(self, staff):
        account = open_account()
        assert_problem(self.deposit(staff, account, amount=-1), 400, "invalid_amount")
        assert_problem(self.deposit(staff, account, reference=""), 400, "validation_error")
        response = staff.post(
            "/api/v1/deposits",
            {"account_id": str(account.id), "amount": 1, "currency": "USD", "reference": "r"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k",
        )
        assert_problem(response, 422, "currency_mismatch")
        assert not Deposit.objects.exists()


def test_the_journal_is_for_staff(client_with, staff, pair):
    source, destination = pair
    journal_id = send(staff, transfer_body(source, destination)).json()["journal_transaction_id"]
    customer = client_with("ledger:read", customer_id=source.customer_id)
    assert_problem(customer.get(f"/api/v1/ledger/transactions/{journal_id}"), 403, "staff_only")
    assert_problem(staff.get(f"/api/v1/ledger/transactions/{uuid.uuid4()}"), 404, "journal_transaction_not_found")
