"""The hold of a transfer has one owner, the ledger (`apps.ledger.services.hold_key`), and a
`transaction.validated` whose hold the ledger cannot find fails loudly: its delivery raises
`HoldNotFound`, is retried and dead-lettered where the back office sees it, and no money moves.
Before the key had one owner, a key spelled two ways left such a transfer `validated` forever
with no error anywhere."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from apps.ledger import services as ledger_services
from apps.ledger.models import Hold, JournalTransaction
from apps.transactions import services as transfers
from apps.transactions.events import TransferValidated
from apps.transactions.models import Transfer
from fintech.events import rfc3339
from outbox import dispatcher
from outbox.models import DeadLetter, DeliveryAttempt, OutboxEvent
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work
from tests.factories import open_account

pytestmark = pytest.mark.django_db(transaction=True)

POSTING_STEP = "ledger.post_validated_transfer"


def swept_until_dead_lettered(event_id: uuid.UUID) -> DeadLetter:
    """Let the dispatcher retry the failing delivery until it gives up (retries are due at once
    under test: FINTECH_HANDLER_RETRY_BASE_SECONDS=0)."""
    for _ in range(10):
        letter = DeadLetter.objects.filter(event_id=event_id, handler=POSTING_STEP).first()
        if letter is not None:
            return letter
        dispatcher.sweep(grace_seconds=0)
    raise AssertionError(f"the posting step of {event_id} was never dead-lettered")


def validated_event(transfer: Transfer) -> OutboxEvent:
    return OutboxEvent.objects.get(event_type="transaction.validated", aggregate_id=str(transfer.id))


def test_a_validated_transfer_without_a_hold_is_dead_lettered_not_left_waiting():
    source, destination = open_account(balance=10_000), open_account()
    now = timezone.now()
    # A transfer that reached `validated` while the ledger holds nothing under its key: what a
    # hold key spelled another way by the transfers context would have produced.
    transfer = Transfer.objects.create(
        from_account_id=source.id,
        to_account_id=destination.id,
        from_customer_id=source.customer_id,
        to_customer_id=destination.customer_id,
        amount=2_500,
        currency="BRL",
        status=Transfer.Status.VALIDATED,
        initiated_by="tester",
    )
    with unit_of_work():
        publish(
            TransferValidated(
                transfer_id=str(transfer.id),
                from_account_id=str(source.id),
                to_account_id=str(destination.id),
                amount=2_500,
                currency="BRL",
                description="",
                validated_at=rfc3339(now),
            )
        )

    event = validated_event(transfer)
    # The step raised inside the unit (rolled back to its savepoint; the event still committed),
    # and the dispatcher's first delivery after the commit failed too: an attempt is recorded.
    assert event.dispatched_at is None
    attempt = DeliveryAttempt.objects.get(event_id=event.event_id, handler=POSTING_STEP)
    assert "HoldNotFound" in attempt.last_error

    letter = swept_until_dead_lettered(event.event_id)
    assert "HoldNotFound" in letter.error
    assert f"transfer:{transfer.id}" in letter.error  # the key the ledger looked for
    assert not JournalTransaction.objects.filter(kind=JournalTransaction.Kind.TRANSFER).exists()


def test_a_hold_key_spelled_two_ways_fails_the_posting_step_loudly(settings, monkeypatch):
    settings.FINTECH_EVENT_DISPATCH = "worker"  # the dispatcher below runs each step
    source, destination = open_account(balance=10_000), open_account()
    transfer = transfers.transfer_initiate(
        from_account_id=source.id, to_account_id=destination.id, amount=2_500, currency="BRL", initiated_by="tester"
    )
    assert Hold.objects.get(hold_key=ledger_services.hold_key("transfer", transfer.id)).status == Hold.Status.ACTIVE

    # The posting step looks the hold up under a key spelled another way than the one it was
    # placed under (the drift the single owner rules out).
    monkeypatch.setattr(ledger_services, "hold_key", lambda operation, operation_id: f"{operation}-{operation_id}")
    # transaction.initiated: screened, validated. The posting step fails within the same unit,
    # which rolls the steps back; delivered one handler at a time, the validation then commits.
    for _ in range(10):
        dispatcher.sweep(grace_seconds=0)
        transfer.refresh_from_db()
        if transfer.status != Transfer.Status.INITIATED:
            break
    assert transfer.status == Transfer.Status.VALIDATED
    letter = swept_until_dead_lettered(validated_event(transfer).event_id)
    assert "HoldNotFound" in letter.error
    assert not JournalTransaction.objects.filter(kind=JournalTransaction.Kind.TRANSFER).exists()
    assert Hold.objects.get().status == Hold.Status.ACTIVE  # the money is still set aside, not lost

    # With the key's single spelling back, replaying the dead letter completes the transfer.
    monkeypatch.undo()
    dispatcher.replay_dead_letters(event_id=letter.event_id)
    assert Hold.objects.get().status == Hold.Status.POSTED
    dispatcher.sweep(grace_seconds=0)  # ledger.entry_written: the transfer completes
    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.COMPLETED
