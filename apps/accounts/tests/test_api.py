import uuid

import pytest

from apps.accounts.models import BankAccount
from apps.accounts.numbers import is_valid_account_number
from outbox.models import OutboxEvent
from tests.factories import deposit, open_account, pending_customer, verified_customer

pytestmark = pytest.mark.django_db


def assert_problem(response, status, code):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    return response.json()


class TestOpen:
    def test_opens_an_account_for_a_verified_customer(self, staff):
        customer = verified_customer()
        response = staff.post("/api/v1/accounts", {"customer_id": str(customer.id)}, format="json")
        assert response.status_code == 201
        body = response.json()
        assert body["status"] == "active"
        assert body["currency"] == "BRL"
        assert body["balance"] == 0
        assert body["available_balance"] == 0
        assert is_valid_account_number(body["number"])
        assert OutboxEvent.objects.filter(event_type="account.created", aggregate_id=body["id"]).exists()

    def test_a_pending_customer_cannot_have_an_account(self, staff):
        pending = pending_customer()
        response = staff.post("/api/v1/accounts", {"customer_id": str(pending.id)}, format="json")
        assert_problem(response, 409, "customer_not_verified")
        assert not BankAccount.objects.exists()

    def test_an_unknown_customer_is_not_found(self, staff):
        assert_problem(
            staff.post("/api/v1/accounts", {"customer_id": str(uuid.uuid4())}, format="json"), 404, "customer_not_found"
        )

    def test_an_unsupported_currency_is_refused(self, staff):
        customer = verified_customer()
        response = staff.post("/api/v1/accounts", {"customer_id": str(customer.id), "currency": "XYZ"}, format="json")
        assert_problem(response, 400, "unsupported_currency")

    @pytest.mark.parametrize("field", ["balance", "status", "number"])
    def test_server_owned_fields_cannot_be_set(self, staff, field):
        customer = verified_customer()
        body = {"customer_id": str(customer.id), field: 1_000_000}
        assert "errors" in assert_problem(staff.post("/api/v1/accounts", body, format="json"), 400, "validation_error")
        assert not BankAccount.objects.exists()

    def test_a_customer_opens_only_for_itself(self, client_with):
        customer = verified_customer()
        own = client_with("accounts:write", customer_id=customer.id)
        assert own.post("/api/v1/accounts", {"customer_id": str(customer.id)}, format="json").status_code == 201
        other = client_with("accounts:write", customer_id=uuid.uuid4())
        assert_problem(
            other.post("/api/v1/accounts", {"customer_id": str(customer.id)}, format="json"), 404, "not_found"
        )


class TestReadAndStatus:
    def test_balances_come_from_the_ledger(self, staff):
        account = open_account(balance=12_345)
        body = staff.get(f"/api/v1/accounts/{account.id}").json()
        assert body["balance"] == 12_345
        assert body["available_balance"] == 12_345

    def test_another_customers_account_is_not_found(self, client_with):
        account = open_account()
        intruder = client_with("accounts:read", customer_id=uuid.uuid4())
        assert_problem(intruder.get(f"/api/v1/accounts/{account.id}"), 404, "not_found")
        owner = client_with("accounts:read", customer_id=account.customer_id)
        assert owner.get(f"/api/v1/accounts/{account.id}").status_code == 200

    def test_a_customer_lists_only_its_accounts(self, client_with):
        mine = open_account()
        open_account()
        listing = client_with("accounts:read", customer_id=mine.customer_id).get("/api/v1/accounts").json()
        assert [a["id"] for a in listing["results"]] == [str(mine.id)]

    def test_block_unblock_and_the_events(self, staff):
        account = open_account()
        blocked = staff.post(f"/api/v1/accounts/{account.id}/block", {"reason": "court order"}, format="json")
        assert blocked.json()["status"] == "blocked"
        assert_problem(staff.post(f"/api/v1/accounts/{account.id}/block"), 409, "invalid_account_status")
        assert staff.post(f"/api/v1/accounts/{account.id}/unblock").json()["status"] == "active"
        types = list(OutboxEvent.objects.filter(aggregate_id=str(account.id)).values_list("event_type", flat=True))
        assert types == ["account.created", "account.blocked", "account.unblocked"]

    def test_customers_cannot_block(self, client_with):
        account = open_account()
        client = client_with("accounts:write", customer_id=account.customer_id)
        assert_problem(client.post(f"/api/v1/accounts/{account.id}/block"), 403, "staff_only")

    def test_closing_needs_a_zero_balance(self, staff):
        account = open_account(balance=100)
        assert_problem(staff.post(f"/api/v1/accounts/{account.id}/close"), 409, "account_not_empty")
        empty = open_account()
        assert staff.post(f"/api/v1/accounts/{empty.id}/close").json()["status"] == "closed"
        assert_problem(staff.post(f"/api/v1/accounts/{empty.id}/unblock"), 409, "invalid_account_status")

    def test_a_customer_may_close_its_own_empty_account(self, client_with):
        account = open_account()
        client = client_with("accounts:write", customer_id=account.customer_id)
        assert client.post(f"/api/v1/accounts/{account.id}/close").json()["status"] == "closed"


class TestStatement:
    def test_entries_newest_first_with_balance_after(self, staff):
        account = open_account()
        for amount in (100, 250, 400):
            deposit(account, amount)
        body = staff.get(f"/api/v1/accounts/{account.id}/statement").json()
        lines = body["results"]
        assert [line["amount"] for line in lines] == [400, 250, 100]
        assert [line["balance_after"] for line in lines] == [750, 350, 100]
        assert {line["direction"] for line in lines} == {"credit"}
        assert body["next"] is None
        assert set(lines[0]) >= {"entry_id", "transaction_id", "description", "posted_at"}

    def test_pages_follow_the_cursor(self, staff):
        account = open_account()
        for amount in range(1, 6):
            deposit(account, amount)
        first = staff.get(f"/api/v1/accounts/{account.id}/statement?page_size=2").json()
        second = staff.get(first["next"]).json()
        third = staff.get(second["next"]).json()
        amounts = [line["amount"] for page in (first, second, third) for line in page["results"]]
        assert amounts == [5, 4, 3, 2, 1]
        assert third["next"] is None

    def test_a_window_in_the_future_is_empty(self, staff):
        account = open_account(balance=100)
        body = staff.get(f"/api/v1/accounts/{account.id}/statement?from=2999-01-01").json()
        assert body["results"] == []

    def test_a_bad_window_is_a_validation_error(self, staff):
        account = open_account()
        assert_problem(staff.get(f"/api/v1/accounts/{account.id}/statement?from=yesterday"), 400, "validation_error")
        assert_problem(
            staff.get(f"/api/v1/accounts/{account.id}/statement?from=2026-02-01&to=2026-01-01"), 400, "validation_error"
        )
