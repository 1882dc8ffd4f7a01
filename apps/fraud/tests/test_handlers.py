from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apps.fraud import handlers
from apps.fraud.models import MonitoredAccount, Screening
from fintech import bus
from fintech.events import ReceivedEvent, validate
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

AT = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def received(event_type: str, data: dict[str, Any]) -> ReceivedEvent:
    validate(event_type, 1, data)  # what the spine checks before a handler sees it
    return ReceivedEvent(
        id=uuid.uuid4(), type=event_type, version=1, source="/fintech/test", subject="s", time=AT, data=data
    )


def initiated(**changes) -> dict[str, Any]:
    return {
        "transfer_id": str(uuid.uuid4()),
        "from_account_id": str(uuid.uuid4()),
        "to_account_id": str(uuid.uuid4()),
        "amount": 100,
        "currency": "BRL",
        "customer_id": str(uuid.uuid4()),
        "description": "rent",
        "initiated_at": "2026-11-30T15:00:00Z",
        "to_customer_id": str(uuid.uuid4()),
        "initiated_by_customer": True,
        **changes,
    }


def test_the_screenings_are_steps_of_the_choreography_applied_in_batches():
    for event_type, name in (
        ("transaction.initiated", "fraud.screen_transfer"),
        ("payment.initiated", "fraud.screen_payment"),
        ("account.created", "fraud.note_opened_account"),
        ("transaction.failed", "fraud.withdraw_reviews_of_failed_transfers"),
        ("payment.failed", "fraud.withdraw_reviews_of_failed_payments"),
    ):
        subscription = bus.subscription_named(name)
        assert subscription is not None
        assert (subscription.event_type, subscription.same_unit_of_work, subscription.batch) == (event_type, True, True)


def test_a_transfer_is_screened_as_transaction_initiated_tells_it():
    data = initiated()
    handlers.screen_transfers([received("transaction.initiated", data)])
    screening = Screening.objects.get()
    assert str(screening.subject_id) == data["transfer_id"]
    assert str(screening.account_id) == data["from_account_id"]
    assert screening.counterparty == f"account:{data['to_account_id']}"
    assert screening.initiated_by_customer is True
    assert screening.occurred_at == AT
    assert OutboxEvent.objects.get(event_type="fraud.screened").aggregate_id == data["transfer_id"]


def test_an_older_transaction_initiated_without_the_new_fields_is_screened_as_staffs():
    data = initiated()
    del data["to_customer_id"], data["initiated_by_customer"]
    handlers.screen_transfers([received("transaction.initiated", data)])
    assert Screening.objects.get().initiated_by_customer is False


def test_the_same_transfer_in_two_events_is_screened_once():
    data = initiated()
    handlers.screen_transfers([received("transaction.initiated", data)])
    handlers.screen_transfers([received("transaction.initiated", data), received("transaction.initiated", data)])
    assert Screening.objects.count() == 1
    assert OutboxEvent.objects.filter(event_type="fraud.screened").count() == 1


def test_a_payment_is_screened_with_its_beneficiary():
    data = {
        "payment_id": str(uuid.uuid4()),
        "account_id": str(uuid.uuid4()),
        "customer_id": str(uuid.uuid4()),
        "amount": 250,
        "currency": "BRL",
        "beneficiary_ref": "bnf_9c1f",
        "initiated_by_customer": False,
        "initiated_at": "2026-11-30T15:00:00Z",
    }
    handlers.screen_payments([received("payment.initiated", data)])
    screening = Screening.objects.get()
    assert (screening.subject_type, screening.counterparty) == ("payment", "beneficiary:bnf_9c1f")
    assert screening.counterparty_account_id is None
    event = OutboxEvent.objects.get(event_type="fraud.screened")
    assert event.envelope["data"]["subject_type"] == "payment"


def test_an_opened_account_is_remembered_with_its_opening_time_once():
    account_id = str(uuid.uuid4())
    data = {
        "account_id": account_id,
        "customer_id": str(uuid.uuid4()),
        "currency": "BRL",
        "created_at": "2026-11-01T10:00:00Z",
    }
    handlers.note_opened_accounts([received("account.created", data)])
    handlers.note_opened_accounts([received("account.created", data)])
    account = MonitoredAccount.objects.get()
    assert str(account.account_id) == account_id
    assert account.opened_at == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def test_an_account_screened_before_its_opening_was_told_learns_its_age():
    source = str(uuid.uuid4())
    handlers.screen_transfers([received("transaction.initiated", initiated(from_account_id=source))])
    opened_at = AT - timedelta(days=30)
    data = {
        "account_id": source,
        "customer_id": str(uuid.uuid4()),
        "currency": "BRL",
        "created_at": "2026-10-31T15:00:00Z",
    }
    handlers.note_opened_accounts([received("account.created", data)])
    assert MonitoredAccount.objects.get(pk=source).opened_at == opened_at
