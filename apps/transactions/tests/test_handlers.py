"""The transfers context's steps of the choreography, fed events as the bus hands them over."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from apps.transactions import handlers, services
from apps.transactions.models import Transfer
from fintech.events import ReceivedEvent
from tests.factories import open_account

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _one_step_at_a_time(settings):
    settings.FINTECH_EVENT_DISPATCH = "worker"


def received(event_type: str, **data: Any) -> ReceivedEvent:
    return ReceivedEvent(
        id=uuid.uuid4(),
        type=event_type,
        version=1,
        source="/fintech/tests",
        subject=str(uuid.uuid4()),
        time=datetime(2026, 11, 30, tzinfo=UTC),
        data=data,
    )


def initiated() -> Transfer:
    source, destination = open_account(balance=10_000), open_account()
    return services.transfer_initiate(
        from_account_id=source.id, to_account_id=destination.id, amount=2_500, currency="BRL", initiated_by="tester"
    )


def entry_written(kind: str, reference: uuid.UUID, journal_id: uuid.UUID) -> ReceivedEvent:
    return received(
        "ledger.entry_written",
        transaction_id=str(journal_id),
        posting_key=f"{kind}:{reference}",
        kind=kind,
        reference=str(reference),
        reverses=None,
        posted_at="2026-11-30T00:00:00Z",
        entries=[],
    )


def fraud_said(event_type: str, transfer: Transfer, decision: str, subject_type: str = "transfer") -> ReceivedEvent:
    return received(event_type, subject_type=subject_type, subject_id=str(transfer.id), decision=decision)


def test_screened_transfers_go_on_as_the_fraud_context_decided():
    approved, held, rejected = initiated(), initiated(), initiated()
    handlers.continue_screened_transfers(
        [
            fraud_said("fraud.screened", approved, "approve"),
            fraud_said("fraud.screened", held, "review"),
            fraud_said("fraud.screened", rejected, "reject"),
        ]
    )
    statuses = [Transfer.objects.get(pk=t.pk).status for t in (approved, held, rejected)]
    assert statuses == [Transfer.Status.VALIDATED, Transfer.Status.REVIEW, Transfer.Status.FAILED]


def test_a_payment_s_screening_is_not_a_transfer_s():
    transfer = initiated()
    handlers.continue_screened_transfers([fraud_said("fraud.screened", transfer, "reject", subject_type="payment")])
    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.INITIATED


def test_a_decided_review_moves_the_transfer_on():
    transfer = initiated()
    handlers.continue_screened_transfers([fraud_said("fraud.screened", transfer, "review")])
    handlers.continue_reviewed_transfers([fraud_said("fraud.review_decided", transfer, "approved")])
    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.VALIDATED


def test_a_posted_transfer_is_completed_with_the_journal_transaction_that_moved_it():
    transfer = initiated()
    journal_id = uuid.uuid4()
    handlers.complete_posted_transfers([entry_written("transfer", transfer.id, journal_id)])
    transfer.refresh_from_db()
    assert (transfer.status, transfer.journal_transaction_id) == (Transfer.Status.COMPLETED, journal_id)


def test_postings_of_other_kinds_are_not_transfers():
    transfer = initiated()
    handlers.complete_posted_transfers([entry_written("deposit", transfer.id, uuid.uuid4())])
    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.INITIATED
