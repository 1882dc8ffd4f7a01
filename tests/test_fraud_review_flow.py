"""The anti-fraud screening in the transfer choreography, end to end through the API: a transfer
held for review keeps its amount held while an analyst looks; approval completes it, rejection
and the time-out fail it and release the hold; the books reconcile after each. Redelivered
events change nothing, and concurrent transfers out of one account are each counted once."""

from __future__ import annotations

import io
import threading
import uuid
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connections

from apps.accounts import services as accounts
from apps.fraud import services as fraud
from apps.fraud.models import Alert, Screening
from apps.ledger.models import Hold, JournalTransaction
from apps.transactions import services as transactions
from apps.transactions.models import Transfer
from fintech import bus
from outbox import dispatcher
from outbox.models import InboxRecord, OutboxEvent
from outbox.unit_of_work import unit_of_work
from tests.factories import open_account
from tests.test_transfer_races import Request, assert_every_event_handled_once, post_all_at_once

pytestmark = pytest.mark.django_db(transaction=True)

FUNDS = 10_000_000  # 100,000.00
LARGE = 6_000_000  # 60,000.00: above the amount rule's 50,000.00


def send(client, source, destination, amount, key=None):
    return client.post(
        "/api/v1/transfers",
        {"from_account_id": str(source.id), "to_account_id": str(destination.id), "amount": amount, "currency": "BRL"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()),
    )


def balances(client, account) -> tuple[int, int]:
    body = client.get(f"/api/v1/accounts/{account.id}").json()
    return body["balance"], body["available_balance"]


def decide(client, transfer_id, verdict, reason=""):
    return client.post(f"/api/v1/fraud/reviews/{transfer_id}/{verdict}", {"reason": reason}, format="json")


def assert_books_reconcile() -> None:
    out = io.StringIO()
    call_command("reconcile", "--quiet", stdout=out)  # raises CommandError when they do not
    assert "the books reconcile" in out.getvalue()


def events_of(transfer_id) -> list[str]:
    return list(
        OutboxEvent.objects.filter(aggregate_id=str(transfer_id)).order_by("id").values_list("event_type", flat=True)
    )


@pytest.fixture
def analyst(client_with):
    return client_with("fraud:review", subject="analyst-ana")


@pytest.fixture
def held(staff):
    """A 60,000.00 transfer from an account holding 100,000.00, held for review."""
    source, destination = open_account(balance=FUNDS), open_account()
    response = send(staff, source, destination, LARGE)
    assert response.status_code == 202, response.content  # not final: it waits for an analyst
    body = response.json()
    assert (body["status"], body["failure_code"]) == ("review", "")
    return source, destination, uuid.UUID(body["id"])


def test_a_60_000_transfer_waits_in_review_with_its_amount_held(staff, held):
    source, destination, transfer_id = held
    assert balances(staff, source) == (FUNDS, FUNDS - LARGE)  # available reduced, balance unchanged
    assert balances(staff, destination) == (0, 0)
    assert staff.get(f"/api/v1/transfers/{transfer_id}").json()["status"] == "review"
    listed = staff.get("/api/v1/transfers", {"status": "review"}).json()["results"]
    assert [t["id"] for t in listed] == [str(transfer_id)]
    assert Hold.objects.get(hold_key=f"transfer:{transfer_id}").status == Hold.Status.ACTIVE
    assert events_of(transfer_id) == [
        "transaction.initiated",
        "fraud.screened",
        "fraud.alert",
        "transaction.held_for_review",
    ]
    alert = OutboxEvent.objects.get(event_type="fraud.alert").envelope
    assert alert["subject"] == str(transfer_id)
    assert {r["rule"] for r in alert["data"]["rules"]} == {"amount", "new_account", "new_beneficiary"}
    assert_books_reconcile()


def test_an_approved_review_completes_the_transfer(staff, analyst, held):
    source, destination, transfer_id = held
    response = decide(analyst, transfer_id, "approve", "the customer confirmed it")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "approved"
    transfer = Transfer.objects.get(pk=transfer_id)
    assert transfer.status == Transfer.Status.COMPLETED
    assert JournalTransaction.objects.get(posting_key=f"transfer:{transfer_id}").id == transfer.journal_transaction_id
    assert balances(staff, source) == (FUNDS - LARGE, FUNDS - LARGE)
    assert balances(staff, destination) == (LARGE, LARGE)
    assert events_of(transfer_id)[-3:] == ["fraud.review_decided", "transaction.validated", "transaction.completed"]
    assert_every_event_handled_once()
    assert_books_reconcile()


def test_a_rejected_review_fails_the_transfer_and_releases_the_hold(staff, analyst, held):
    source, destination, transfer_id = held
    assert decide(analyst, transfer_id, "reject", "mule account").status_code == 200
    transfer = Transfer.objects.get(pk=transfer_id)
    assert (transfer.status, transfer.failure_code) == (Transfer.Status.FAILED, "fraud_rejected")
    assert Hold.objects.get(hold_key=f"transfer:{transfer_id}").status == Hold.Status.VOIDED
    assert balances(staff, source) == (FUNDS, FUNDS)
    assert balances(staff, destination) == (0, 0)
    assert staff.get(f"/api/v1/transfers/{transfer_id}").json()["failure_code"] == "fraud_rejected"
    assert_books_reconcile()


def test_a_review_nobody_decides_times_out_and_releases_the_hold(staff, analyst, held, settings):
    source, _, transfer_id = held
    out = io.StringIO()
    call_command("expire_fraud_reviews", "--once", stdout=out)
    assert out.getvalue().strip() == "expired=0"  # not 24 hours old yet
    settings.FINTECH_FRAUD_REVIEW_TIMEOUT_HOURS = 0
    call_command("expire_fraud_reviews", "--once", stdout=out)
    assert "expired=1" in out.getvalue()
    transfer = Transfer.objects.get(pk=transfer_id)
    assert (transfer.status, transfer.failure_code) == (Transfer.Status.FAILED, "review_expired")
    assert balances(staff, source) == (FUNDS, FUNDS)
    late = decide(analyst, transfer_id, "approve")
    assert late.status_code == 409
    assert late.json()["code"] == "review_already_decided"
    assert_books_reconcile()


def test_the_celery_task_expires_the_reviews_too(staff, held, settings):
    from apps.fraud.tasks import expire_fraud_reviews

    settings.FINTECH_FRAUD_REVIEW_TIMEOUT_HOURS = 0
    assert expire_fraud_reviews() == 1
    assert Transfer.objects.get(pk=held[2]).failure_code == "review_expired"


def test_an_approval_after_an_account_was_blocked_fails_the_transfer(staff, analyst, held):
    source, destination, transfer_id = held
    accounts.account_block(account_id=destination.id, reason="court order", changed_by="ops")
    assert decide(analyst, transfer_id, "approve").status_code == 200
    transfer = Transfer.objects.get(pk=transfer_id)
    assert (transfer.status, transfer.failure_code) == (Transfer.Status.FAILED, "account_blocked")
    assert balances(staff, source) == (FUNDS, FUNDS)
    assert_books_reconcile()


def test_a_transfer_to_a_deny_listed_customer_is_rejected_at_once(staff):
    source, destination = open_account(balance=FUNDS), open_account()
    fraud.deny_list_add(
        kind="customer", value=str(destination.customer_id), reason="fraud ring", added_by="ops", adder_kind="staff"
    )
    response = send(staff, source, destination, 100)
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["failure_code"]) == ("failed", "fraud_rejected")
    transfer_id = response.json()["id"]
    assert Hold.objects.get(hold_key=f"transfer:{transfer_id}").status == Hold.Status.VOIDED
    assert balances(staff, source) == (FUNDS, FUNDS)
    assert "fraud.alert" in events_of(transfer_id)
    assert Alert.objects.get(subject_id=transfer_id).status == "rejected"
    assert_books_reconcile()


def test_at_night_a_customers_own_transfer_above_1_000_is_reviewed_and_staffs_is_not(staff, client_with):
    # "Night" is made to be now, whenever the suite runs.
    here = datetime.now(ZoneInfo("America/Sao_Paulo"))
    fraud.rule_change(
        name="night_time",
        parameters={"starts": f"{(here - timedelta(hours=1)):%H:%M}", "ends": f"{(here + timedelta(hours=1)):%H:%M}"},
        changed_by="ops",
        changer_kind="staff",
    )
    source, destination = open_account(balance=FUNDS), open_account()
    send(staff, source, destination, 100)  # the destination is known from now on
    customer = client_with("transfers:write transfers:read", customer_id=source.customer_id)
    assert send(customer, source, destination, 100_001).json()["status"] == "review"
    assert send(customer, source, destination, 100_000).json()["status"] == "completed"
    assert send(staff, source, destination, 100_001).json()["status"] == "completed"
    reviewed = Screening.objects.get(decision="review")
    assert reviewed.initiated_by_customer is True
    assert list(reviewed.fired_rules.values_list("rule", flat=True)) == ["night_time"]


def drain() -> None:
    """What the workers do: deliver until nothing is left (handlers and reactions publish too)."""
    for _ in range(20):
        if not dispatcher.dispatch(limit=1000).events:
            return
    raise AssertionError("events kept coming")


def test_with_workers_the_screening_and_the_decision_run_in_the_dispatcher(staff, analyst, settings):
    settings.FINTECH_EVENT_DISPATCH = "worker"
    source, destination = open_account(balance=FUNDS), open_account()
    response = send(staff, source, destination, LARGE)
    assert response.json()["status"] == "initiated"
    transfer_id = response.json()["id"]
    drain()
    assert Transfer.objects.get(pk=transfer_id).status == Transfer.Status.REVIEW
    assert decide(analyst, transfer_id, "approve").json()["status"] == "approved"
    assert Transfer.objects.get(pk=transfer_id).status == Transfer.Status.REVIEW  # the worker has not run yet
    drain()
    assert Transfer.objects.get(pk=transfer_id).status == Transfer.Status.COMPLETED
    assert_every_event_handled_once()
    assert_books_reconcile()


def test_a_review_whose_transfer_failed_while_it_waited_is_withdrawn_not_left_in_the_queue(staff, analyst, settings):
    """The account is blocked before the worker screens: the rules hold the transfer for review
    and, in the same unit of work, the transfer fails for the block. Nothing is left to decide."""
    settings.FINTECH_EVENT_DISPATCH = "worker"
    source, destination = open_account(balance=FUNDS), open_account()
    transfer_id = send(staff, source, destination, LARGE).json()["id"]
    accounts.account_block(account_id=destination.id, reason="court order", changed_by="ops")
    drain()
    transfer = Transfer.objects.get(pk=transfer_id)
    assert (transfer.status, transfer.failure_code) == (Transfer.Status.FAILED, "account_blocked")
    alert = Alert.objects.get(subject_id=transfer_id)
    assert (alert.status, alert.decided_by) == ("withdrawn", fraud.OPERATION_ENDED_ACTOR)
    assert alert.decision_reason == "the operation failed while in review: account_blocked"
    open_reviews = analyst.get("/api/v1/fraud/alerts", {"status": "review"}).json()["results"]
    assert transfer_id not in {review["subject_id"] for review in open_reviews}
    refused = decide(analyst, transfer_id, "approve")
    assert (refused.status_code, refused.json()["code"]) == (409, "review_already_decided")
    assert balances(staff, source) == (FUNDS, FUNDS)
    assert_every_event_handled_once()
    assert_books_reconcile()


def test_a_decided_review_is_not_withdrawn_by_the_failure_it_caused(staff, analyst, held):
    _, _, transfer_id = held
    assert decide(analyst, transfer_id, "reject").status_code == 200
    assert Transfer.objects.get(pk=transfer_id).status == Transfer.Status.FAILED
    assert Alert.objects.get(subject_id=transfer_id).status == "rejected"


def test_a_redelivered_transaction_initiated_changes_nothing(staff, held):
    _, _, transfer_id = held
    row = OutboxEvent.objects.get(event_type="transaction.initiated", aggregate_id=str(transfer_id))
    before = (OutboxEvent.objects.count(), InboxRecord.objects.count(), Screening.objects.count())

    # The same event again: the inbox knows every handler applied it.
    event = dispatcher.received_from_envelope(row.envelope, row.headers)
    assert dispatcher.deliver_batch([dispatcher.Delivery(row_id=row.pk, event=event)]).handled == 0
    # The same fact under another event id (a replay from Kafka, say) to the choreography's steps:
    # the screening is there already.
    again = dispatcher.received_from_envelope({**row.envelope, "id": str(uuid.uuid4())}, row.headers)
    with unit_of_work(continue_steps=True):
        for subscription in bus.steps_for("transaction.initiated"):
            subscription.apply([again])

    assert (OutboxEvent.objects.count(), InboxRecord.objects.count(), Screening.objects.count()) == before
    transfer = Transfer.objects.get(pk=transfer_id)
    assert transfer.status == Transfer.Status.REVIEW
    assert Alert.objects.get(subject_id=transfer_id).status == "review"
    assert_books_reconcile()


# -- each transfer counted once, however many come at once -----------------------------------------


def burst(client_with, *, transfers: int, limit: int) -> list[Transfer]:
    """`transfers` concurrent POSTs out of one account, velocity limited to `limit` in 10 minutes:
    exactly `limit` complete and the others wait in review."""
    fraud.rule_change(name="velocity", parameters={"max_count": limit}, changed_by="ops", changer_kind="staff")
    source, destination = open_account(balance=FUNDS), open_account()
    requests = [
        Request(
            client_with("transfers:write"),
            {"from_account_id": str(source.id), "to_account_id": str(destination.id), "amount": 100, "currency": "BRL"},
            str(uuid.uuid4()),
        )
        for _ in range(transfers)
    ]
    responses = post_all_at_once(requests)
    assert Counter(r.status_code for r in responses) == {201: limit, 202: transfers - limit}
    return list(Transfer.objects.all())


def assert_counted_once(transfers: list[Transfer], limit: int) -> None:
    statuses = Counter(t.status for t in transfers)
    assert statuses == {Transfer.Status.COMPLETED: limit, Transfer.Status.REVIEW: len(transfers) - limit}
    # Each screening saw every one before it and none twice: the counts are 0, 1, ..., n - 1.
    seen = sorted(Screening.objects.values_list("inputs__recent_count", flat=True))
    assert seen == list(range(len(transfers)))
    reviewed = Screening.objects.filter(decision="review")
    assert all(list(s.fired_rules.values_list("rule", flat=True)) == ["velocity"] for s in reviewed)
    assert_books_reconcile()


@pytest.mark.postgres
def test_twenty_concurrent_transfers_out_of_one_account_are_each_counted_once(client_with):
    transfers = burst(client_with, transfers=20, limit=10)
    assert_counted_once(transfers, 10)


def test_concurrent_transfers_queue_and_are_each_counted_once_on_sqlite_too(client_with):
    transfers = burst(client_with, transfers=8, limit=5)
    assert_counted_once(transfers, 5)


@pytest.mark.postgres
def test_several_dispatchers_screening_one_accounts_transfers_count_each_once(settings):
    """Four dispatchers at once, each with its own five of one account's twenty transfers: their
    screenings take turns on the account, so each counts the ones committed before it."""
    fraud.rule_change(name="velocity", parameters={"max_count": 10}, changed_by="ops", changer_kind="staff")
    source, destination = open_account(balance=FUNDS), open_account()
    settings.FINTECH_EVENT_DISPATCH = "worker"
    for _ in range(20):
        transactions.transfer_initiate(
            from_account_id=source.id, to_account_id=destination.id, amount=100, currency="BRL", initiated_by="t"
        )
    initiated = list(
        OutboxEvent.objects.filter(event_type="transaction.initiated", dispatched_at__isnull=True)
        .order_by("id")
        .values_list("event_id", flat=True)
    )
    assert len(initiated) == 20
    shares = [initiated[i::4] for i in range(4)]
    barrier = threading.Barrier(len(shares))
    errors: list[BaseException] = []

    def work(share: list[uuid.UUID]) -> None:
        try:
            connections["default"].ensure_connection()
            barrier.wait(timeout=60)
            dispatcher.dispatch(event_ids=share, limit=len(share))
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=work, args=(share,), daemon=True) for share in shares]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers), "a dispatcher did not finish"
    assert not errors, errors
    drain()  # the reactions, and what a failed batch left to the slow path, if anything
    assert_counted_once(list(Transfer.objects.all()), 10)
    assert_every_event_handled_once()


# -- Kafka -------------------------------------------------------------------------------------------


@pytest.mark.kafka
def test_the_alert_and_the_review_reach_kafka_keyed_by_the_transfer(staff, analyst):
    from outbox.relay import relay_pending
    from outbox.sinks import build_sink
    from tests.kafka_support import end_offsets, read_since

    call_command("kafka_topics")
    topics = ["fraud.screened", "fraud.alert", "transaction.held_for_review", "fraud.review_decided"]
    start = end_offsets(topics)
    source, destination = open_account(balance=FUNDS), open_account()
    transfer_id = send(staff, source, destination, LARGE).json()["id"]
    decide(analyst, transfer_id, "reject", "mule")
    relay_pending(build_sink("kafka"))

    ours = [r for r in read_since(start, expect=len(topics)) if r.key == transfer_id]
    assert sorted(r.topic for r in ours) == sorted(topics)
    alert = next(r for r in ours if r.topic == "fraud.alert")
    assert alert.value is not None
    assert alert.value["dataschema"] == "fraud.alert/v1"
    assert alert.value["subject"] == transfer_id
    assert alert.value["data"]["decision"] == "review"
    assert alert.headers["ce_type"] == "fraud.alert"
    decided = next(r for r in ours if r.topic == "fraud.review_decided")
    assert decided.value is not None
    assert decided.value["data"]["decision"] == "rejected"
