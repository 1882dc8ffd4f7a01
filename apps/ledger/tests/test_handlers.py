"""The ledger's steps of the transfer choreography, fed events as the bus hands them over.

The hold of a transfer is keyed by the ledger alone (`services.hold_key`): the handlers find it
from the transfer id in the event, and a hold that is not there fails the delivery loudly
instead of leaving the transfer waiting."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from apps.ledger import handlers, services
from apps.ledger.errors import HoldNotActive, HoldNotFound
from apps.ledger.models import Hold, JournalTransaction, LedgerAccount
from fintech.events import ReceivedEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _only_the_ledger_steps(settings):
    """The events the ledger publishes stay in the outbox: the other contexts' steps are theirs."""
    settings.FINTECH_EVENT_DISPATCH = "worker"


def funded_account(balance: int = 0) -> LedgerAccount:
    owner = uuid.uuid4()
    account = services.customer_ledger_account_open(owner_ref=owner, currency="BRL")
    if balance:
        services.deposit_post(
            owner_ref=owner, amount=balance, currency="BRL", posting_key=f"deposit:{uuid.uuid4()}", reference="seed"
        )
    account.refresh_from_db()
    return account


def transfer_event(
    event_type: str, transfer_id: uuid.UUID, source: LedgerAccount, destination: LedgerAccount, **data: Any
):
    return ReceivedEvent(
        id=uuid.uuid4(),
        type=event_type,
        version=1,
        source="/fintech/transactions",
        subject=str(transfer_id),
        time=datetime(2026, 11, 30, tzinfo=UTC),
        data={
            "transfer_id": str(transfer_id),
            "from_account_id": str(source.owner_ref),
            "to_account_id": str(destination.owner_ref),
            "amount": 2_500,
            "currency": "BRL",
            **data,
        },
    )


def held_for(transfer_id: uuid.UUID, source: LedgerAccount) -> Hold:
    assert source.owner_ref is not None
    return services.hold_place(
        owner_ref=source.owner_ref, amount=2_500, currency="BRL", hold_key=services.hold_key("transfer", transfer_id)
    )


def test_a_validated_transfer_posts_the_hold_the_ledger_keyed_for_it():
    source, destination = funded_account(10_000), funded_account()
    transfer_id = uuid.uuid4()
    held_for(transfer_id, source)

    handlers.post_validated_transfers([transfer_event("transaction.validated", transfer_id, source, destination)])

    hold = Hold.objects.get(hold_key=services.hold_key("transfer", transfer_id))
    assert hold.status == Hold.Status.POSTED
    journal = JournalTransaction.objects.get(hold=hold)
    assert (journal.kind, journal.reference) == ("transfer", str(transfer_id))
    source.refresh_from_db()
    destination.refresh_from_db()
    assert (source.balance, source.held, destination.balance) == (7_500, 0, 2_500)


def test_a_validated_transfer_without_a_hold_fails_loudly_and_moves_nothing():
    source, destination = funded_account(10_000), funded_account()
    other_transfer = uuid.uuid4()
    held_for(other_transfer, source)  # a hold exists, but not under this transfer's key

    with pytest.raises(HoldNotFound):
        handlers.post_validated_transfers([transfer_event("transaction.validated", uuid.uuid4(), source, destination)])

    assert not JournalTransaction.objects.filter(kind="transfer").exists()
    assert Hold.objects.get().status == Hold.Status.ACTIVE


def test_one_missing_hold_fails_the_whole_batch():
    source, destination = funded_account(10_000), funded_account()
    placed = uuid.uuid4()
    held_for(placed, source)
    events = [
        transfer_event("transaction.validated", placed, source, destination),
        transfer_event("transaction.validated", uuid.uuid4(), source, destination),
    ]

    with pytest.raises(HoldNotFound):
        handlers.post_validated_transfers(events)

    assert not JournalTransaction.objects.filter(kind="transfer").exists()


def test_a_validated_transfer_whose_hold_was_voided_moves_nothing():
    source, destination = funded_account(10_000), funded_account()
    transfer_id = uuid.uuid4()
    held_for(transfer_id, source)
    handlers.void_failed_transfer_hold(transfer_event("transaction.failed", transfer_id, source, destination))

    handlers.post_validated_transfers([transfer_event("transaction.validated", transfer_id, source, destination)])

    assert not JournalTransaction.objects.filter(kind="transfer").exists()
    source.refresh_from_db()
    assert (source.balance, source.held) == (10_000, 0)


def test_a_failed_transfer_frees_its_hold():
    source, destination = funded_account(10_000), funded_account()
    transfer_id = uuid.uuid4()
    held_for(transfer_id, source)

    handlers.void_failed_transfer_hold(transfer_event("transaction.failed", transfer_id, source, destination))

    assert Hold.objects.get().status == Hold.Status.VOIDED
    source.refresh_from_db()
    assert source.held == 0


def test_a_failure_after_the_posting_is_refused_for_a_person_to_reverse():
    source, destination = funded_account(10_000), funded_account()
    transfer_id = uuid.uuid4()
    held_for(transfer_id, source)
    handlers.post_validated_transfers([transfer_event("transaction.validated", transfer_id, source, destination)])

    with pytest.raises(HoldNotActive):
        handlers.void_failed_transfer_hold(transfer_event("transaction.failed", transfer_id, source, destination))
