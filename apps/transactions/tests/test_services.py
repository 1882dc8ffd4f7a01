"""A transfer's states, one command at a time: initiated -> validated (or review, then
validated) -> completed, or failed.

Each test lets the choreography stop where the command under test leaves it
(`FINTECH_EVENT_DISPATCH=worker`: nothing continues the events it publishes), so every
transition is seen on its own; tests/ runs the whole chain."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.public import AccountBlocked
from apps.transactions import services
from apps.transactions.errors import TransferNotFound, TransferStateError
from apps.transactions.models import Transfer
from fintech.errors import DomainError
from outbox.models import OutboxEvent
from tests.factories import block, open_account

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _one_step_at_a_time(settings):
    settings.FINTECH_EVENT_DISPATCH = "worker"


@pytest.fixture
def pair():
    return open_account(balance=10_000), open_account()


def initiated(source, destination, amount: int = 2_500) -> Transfer:
    return services.transfer_initiate(
        from_account_id=source.id,
        to_account_id=destination.id,
        amount=amount,
        currency="BRL",
        initiated_by="tester",
        description="rent",
    )


def events_of(transfer: Transfer, event_type: str) -> list[dict[str, Any]]:
    rows = OutboxEvent.objects.filter(event_type=event_type, aggregate_id=str(transfer.id)).order_by("id")
    return [row.envelope["data"] for row in rows]


def stored(transfer: Transfer) -> Transfer:
    return Transfer.objects.get(pk=transfer.pk)


class TestInitiate:
    def test_an_accepted_transfer_is_initiated_and_says_so(self, pair):
        source, destination = pair
        now = timezone.now()
        transfer = services.transfer_initiate(
            from_account_id=source.id,
            to_account_id=destination.id,
            amount=2_500,
            currency="BRL",
            initiated_by="tester",
            on_behalf_of=source.customer_id,
            now=now,
        )
        assert stored(transfer).status == Transfer.Status.INITIATED
        assert (transfer.from_customer_id, transfer.to_customer_id) == (source.customer_id, destination.customer_id)
        [data] = events_of(transfer, "transaction.initiated")
        assert data["amount"] == 2_500
        assert data["to_customer_id"] == str(destination.customer_id)
        assert data["initiated_by_customer"] is True

    @pytest.mark.parametrize(
        ("change", "code"),
        [
            ({"amount": 0}, "invalid_amount"),
            ({"amount": True}, "validation_error"),
            ({"amount": 10**12}, "amount_too_large"),
            ({"currency": "XYZ"}, "unsupported_currency"),
            ({"currency": "USD"}, "currency_mismatch"),
            ({"to_account_id": "source"}, "same_account"),
            ({"to_account_id": "unknown"}, "account_not_found"),
            ({"on_behalf_of": "stranger"}, "account_not_found"),
        ],
    )
    def test_a_refused_transfer_writes_nothing(self, pair, change, code):
        source, destination = pair
        ids = {"source": source.id, "unknown": uuid.uuid4(), "stranger": uuid.uuid4()}
        request = {
            "from_account_id": source.id,
            "to_account_id": destination.id,
            "amount": 2_500,
            "currency": "BRL",
            "initiated_by": "tester",
            **{name: ids.get(value, value) if isinstance(value, str) else value for name, value in change.items()},
        }
        with pytest.raises(DomainError) as refusal:
            services.transfer_initiate(**request)
        assert refusal.value.code == code
        assert not Transfer.objects.exists()
        assert not OutboxEvent.objects.filter(event_type__startswith="transaction.").exists()

    def test_a_blocked_destination_refuses_the_transfer(self, pair):
        source, destination = pair
        block(destination)
        with pytest.raises(AccountBlocked):
            initiated(source, destination)
        assert not Transfer.objects.exists()


def screened(transfer: Transfer, decision: str = "approve") -> None:
    services.transfers_screened(decisions={transfer.id: decision})


class TestScreened:
    def test_an_approved_transfer_with_open_accounts_is_validated(self, pair):
        transfer = initiated(*pair)
        screened(transfer)
        assert stored(transfer).status == Transfer.Status.VALIDATED
        [data] = events_of(transfer, "transaction.validated")
        assert data["description"] == "rent"

    def test_screening_again_changes_nothing(self, pair):
        transfer = initiated(*pair)
        screened(transfer)
        screened(transfer, "reject")
        assert stored(transfer).status == Transfer.Status.VALIDATED
        assert len(events_of(transfer, "transaction.validated")) == 1

    def test_an_account_blocked_since_initiation_fails_the_approved_transfer(self, pair):
        source, destination = pair
        transfer = initiated(source, destination)
        block(destination)
        screened(transfer)
        failed = stored(transfer)
        assert (failed.status, failed.failure_code) == (Transfer.Status.FAILED, "account_blocked")
        assert [data["failure_code"] for data in events_of(transfer, "transaction.failed")] == ["account_blocked"]
        assert events_of(transfer, "transaction.validated") == []

    def test_a_rejected_transfer_fails(self, pair):
        transfer = initiated(*pair)
        screened(transfer, "reject")
        assert (stored(transfer).status, stored(transfer).failure_code) == (Transfer.Status.FAILED, "fraud_rejected")

    def test_a_transfer_held_for_review_waits_then_goes_the_analyst_s_way(self, pair):
        source, destination = pair
        approved, rejected, expired = (initiated(source, destination, amount=1_000) for _ in range(3))
        for transfer in (approved, rejected, expired):
            screened(transfer, "review")
            assert stored(transfer).status == Transfer.Status.REVIEW
            [data] = events_of(transfer, "transaction.held_for_review")
            assert data["customer_id"] == str(source.customer_id)
        services.transfers_reviewed(decisions={approved.id: "approved", rejected.id: "rejected", expired.id: "expired"})
        assert stored(approved).status == Transfer.Status.VALIDATED
        assert (stored(rejected).status, stored(rejected).failure_code) == ("failed", "fraud_rejected")
        assert (stored(expired).status, stored(expired).failure_code) == ("failed", "review_expired")

    def test_a_review_of_a_transfer_not_in_review_changes_nothing(self, pair):
        transfer = initiated(*pair)
        services.transfers_reviewed(decisions={transfer.id: "rejected"})
        assert stored(transfer).status == Transfer.Status.INITIATED

    def test_a_batch_is_judged_transfer_by_transfer(self, pair):
        source, destination = pair
        passing = initiated(source, destination)
        other_source = open_account(balance=5_000)
        failing = initiated(other_source, destination)
        block(other_source)
        services.transfers_screened(decisions={passing.id: "approve", failing.id: "approve"})
        assert stored(passing).status == Transfer.Status.VALIDATED
        assert stored(failing).status == Transfer.Status.FAILED

    def test_an_unknown_transfer_is_not_found(self):
        with pytest.raises(TransferNotFound):
            services.transfers_screened(decisions={uuid.uuid4(): "approve"})


class TestComplete:
    def test_a_posted_transfer_is_completed_with_its_journal_transaction(self, pair):
        transfer = initiated(*pair)
        screened(transfer)
        journal_id = uuid.uuid4()
        services.transfer_complete(transfer_id=transfer.id, journal_transaction_id=journal_id)
        completed = stored(transfer)
        assert completed.status == Transfer.Status.COMPLETED
        assert completed.journal_transaction_id == journal_id
        assert completed.completed_at is not None
        [data] = events_of(transfer, "transaction.completed")
        assert data["journal_transaction_id"] == str(journal_id)

    def test_completing_again_changes_nothing(self, pair):
        transfer = initiated(*pair)
        first = uuid.uuid4()
        services.transfer_complete(transfer_id=transfer.id, journal_transaction_id=first)
        services.transfer_complete(transfer_id=transfer.id, journal_transaction_id=uuid.uuid4())
        assert stored(transfer).journal_transaction_id == first
        assert len(events_of(transfer, "transaction.completed")) == 1

    def test_a_failed_transfer_the_ledger_posted_is_a_conflict_for_a_person(self, pair):
        transfer = initiated(*pair)
        services.transfer_fail(transfer_id=transfer.id, code="fraud_rejected")
        with pytest.raises(TransferStateError):
            services.transfer_complete(transfer_id=transfer.id, journal_transaction_id=uuid.uuid4())
        assert stored(transfer).status == Transfer.Status.FAILED


class TestFail:
    def test_a_transfer_in_flight_fails_with_its_code(self, pair):
        transfer = initiated(*pair)
        services.transfer_fail(transfer_id=transfer.id, code="fraud_rejected", detail="score 0.99")
        failed = stored(transfer)
        assert (failed.status, failed.failure_code, failed.failure_detail) == (
            Transfer.Status.FAILED,
            "fraud_rejected",
            "score 0.99",
        )
        assert [data["failure_code"] for data in events_of(transfer, "transaction.failed")] == ["fraud_rejected"]

    def test_a_finished_transfer_does_not_fail_afterwards(self, pair):
        transfer = initiated(*pair)
        services.transfer_complete(transfer_id=transfer.id, journal_transaction_id=uuid.uuid4())
        services.transfer_fail(transfer_id=transfer.id, code="fraud_rejected")
        assert stored(transfer).status == Transfer.Status.COMPLETED
        assert events_of(transfer, "transaction.failed") == []
