"""Payments round trip through the payment network simulator over the real Kafka broker, with
the bank's own processes: the relay ships `payment.requested`, `manage.py simulate_payment_network`
answers, `manage.py consume --group payments` books what the network sends. Settled, returned,
duplicated answers, an answer for an unknown payment and one with another amount, credits (one
duplicated, one re-sent, one for a closed account): each booked once or not at all, and then the
books and the network's settlement file reconcile. And a payments consumer killed mid-stream
books each answer once after its restart.

Topics are shared with every other test and run, so each scenario reads and consumes with
consumer groups of its own, placed at the end offsets captured before it starts.
"""

from __future__ import annotations

import io
import json
import signal
import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Producer
from django.conf import settings as django_settings
from django.core.management import call_command
from django.utils import timezone

from apps.accounts import services as accounts
from apps.ledger import public as ledger
from apps.ledger.models import JournalTransaction
from apps.payments.models import IgnoredNetworkMessage, InboundCredit, Payment
from outbox.models import InboxRecord, OutboxEvent
from outbox.network_simulator.network import network_message
from outbox.relay import relay_pending
from outbox.sinks import build_sink
from tests.factories import open_account
from tests.kafka_support import end_offsets, fresh_group, keys_since, read_since
from tests.payments_support import CLOSED_BENEFICIARY, sent_payment
from tests.spine.support import ManagedProcess, start_manage

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("payments_answered_by_the_test"),
]

BANK_READS = ["payment.processed", "payment.received"]
NETWORK_READS = ["payment.requested", "payment.credit_returned"]
# A loaded machine runs this beside other suites: every wait is generous, none is a speed target.
WAIT = 180.0


@pytest.fixture(scope="module", autouse=True)
def topics(django_db_blocker):
    with django_db_blocker.unblock():
        call_command("kafka_topics")


def kafka_env(**extra: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": django_settings.KAFKA_BOOTSTRAP_SERVERS,
        "FINTECH_PAYMENT_NETWORK": "kafka",
        "KAFKA_CONSUMER_RETRY_BASE_SECONDS": "0.05",
        **extra,
    }


def only(offsets, topics):
    return {(t, p): o for (t, p), o in offsets.items() if t in topics}


def name_of(process: ManagedProcess) -> str:
    """The bank command a child process runs (`python manage.py <command> ...`)."""
    return str(list(process.args)[2])  # type: ignore[arg-type]


def wait_for(condition, what: str, processes: list[ManagedProcess], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for process in processes:
            if process.poll() is not None:
                exited = f"{name_of(process)} exited ({process.returncode})"
                pytest.fail(f"{exited} before {what}:\n{process.output()[-4000:]}")
        time.sleep(0.1)
    outputs = "\n".join(f"--- {name_of(p)}:\n{p.output()[-3000:]}" for p in processes)
    pytest.fail(f"timed out waiting for {what}\n{outputs}")


def stop(process: ManagedProcess) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except Exception:
            process.kill()
            process.wait()


def produce(*envelopes: dict[str, Any]) -> None:
    """Messages of the network that the simulator would not send, straight onto its topics."""
    producer = Producer({"bootstrap.servers": django_settings.KAFKA_BOOTSTRAP_SERVERS, "enable.idempotence": True})
    failures = []
    for envelope in envelopes:
        producer.produce(
            envelope["type"],
            key=envelope["subject"].encode(),
            value=json.dumps(envelope).encode(),
            headers=[("ce_type", envelope["type"]), ("ce_id", envelope["id"])],
            on_delivery=lambda error, _message: failures.append(error) if error else None,
        )
    assert producer.flush(30) == 0
    assert not failures, failures


def answer_for(payment_id: uuid.UUID, *, amount: int, end_to_end_id: str) -> dict[str, Any]:
    return network_message(
        "payment.processed",
        subject=str(payment_id),
        data={
            "payment_id": str(payment_id),
            "status": "settled",
            "network_reference": "NET-TEST",
            "return_reason": None,
            "processed_at": "2026-11-30T10:00:00Z",
            "amount": amount,
            "currency": "BRL",
            "end_to_end_id": end_to_end_id,
        },
        now=timezone.now(),
    )


def balance(account) -> int:
    return ledger.balances_of([account.id])[account.id].balance


def booked(posting_key: str) -> int:
    return JournalTransaction.objects.filter(posting_key=posting_key).count()


def test_payments_round_trip_through_the_simulator_over_kafka(tmp_path):
    start = end_offsets(BANK_READS + NETWORK_READS)
    bank_group, network_group = fresh_group(only(start, BANK_READS)), fresh_group(only(start, NETWORK_READS))
    payer, receiver, closed = open_account(balance=100_000), open_account(), open_account()
    accounts.account_close(account_id=closed.id, reason="left the bank", changed_by="ops")
    settles = sent_payment(payer, 1_000)
    comes_back = sent_payment(payer, 2_000, CLOSED_BENEFICIARY)
    other_amount = sent_payment(payer, 3_000)
    settlement_file = tmp_path / "settlement-{date}.csv"

    relay = start_manage("relay_outbox", "--sink", "kafka", "--idle", "0.2", env=kafka_env())
    consumer = start_manage(
        "consume", "--group", "payments", "--topics", ",".join(BANK_READS), "--group-id", bank_group, env=kafka_env()
    )
    processes = [relay, consumer]
    simulator = None
    try:
        # Before the network answers: an answer for a payment nobody sent, and one with another amount.
        stranger = uuid.uuid4()
        produce(
            answer_for(stranger, amount=500, end_to_end_id="E88888888202611301000AAAAAAAAAAA"),
            answer_for(other_amount.id, amount=2_999, end_to_end_id=other_amount.end_to_end_id),
        )
        wait_for(
            lambda: (
                IgnoredNetworkMessage.objects.filter(reason__in=["unknown_payment", "amount_mismatch"]).count() == 2
            ),
            "the bank to keep the two answers it must not book",
            processes,
        )
        assert Payment.objects.get(pk=other_amount.id).status == Payment.Status.PENDING

        simulator = start_manage(
            "simulate_payment_network",
            "--group-id",
            network_group,
            "--delay",
            "0.2",
            "--duplicate-rate",
            "1",
            "--seed",
            "7",
            "--settlement-file",
            str(settlement_file),
            "--credit",
            receiver.number,
            "700",
            "--credit",
            closed.number,
            "300",
            env=kafka_env(),
        )
        processes.append(simulator)
        wait_for(
            lambda: (
                Payment.objects.filter(
                    pk__in=[settles.id, comes_back.id, other_amount.id], status__in=["settled", "returned"]
                ).count()
                == 3
                and InboundCredit.objects.count() == 2
            ),
            "the network's answers and credits to be booked",
            processes,
        )
        credited = InboundCredit.objects.get(creditor_account_number=receiver.number)
        # The network says the same credit again, as a new message.
        produce(
            network_message(
                "payment.received",
                subject=credited.end_to_end_id,
                data={
                    "end_to_end_id": credited.end_to_end_id,
                    "amount": 700,
                    "currency": "BRL",
                    "creditor_ispb": django_settings.FINTECH_BANK_ISPB,
                    "creditor_branch": receiver.branch,
                    "creditor_account_number": receiver.number,
                    "debtor_ispb": "88888888",
                    "network_reference": credited.network_reference,
                    "sent_at": "2026-11-30T10:00:00Z",
                },
                now=timezone.now(),
            )
        )
        today = timezone.now().date().isoformat()
        day_file = tmp_path / f"settlement-{today}.csv"
        wait_for(
            lambda: day_file.exists() and ",inbound,returned," in day_file.read_text(),
            "the network to take back the credit for the closed account",
            processes,
        )
        wait_for(
            lambda: InboxRecord.objects.filter(handler="payments.book_inbound_credit").count() == 3,
            "the re-sent credit to be read",
            processes,
        )
    finally:
        for process in (simulator, consumer, relay):
            if process is not None:
                stop(process)

    for payment in (settles, comes_back, other_amount):
        payment.refresh_from_db()
    assert settles.status == Payment.Status.SETTLED
    assert (comes_back.status, comes_back.return_reason) == ("returned", "AC04 closed account number")
    assert other_amount.status == Payment.Status.SETTLED  # the simulator's own answer, with the right amount
    for payment in (settles, other_amount):
        assert booked(f"payment-settlement:{payment.id}") == 1
    assert booked(f"payment-return:{comes_back.id}") == 1
    assert balance(payer) == 100_000 - 1_000 - 3_000

    # Every answer of the simulator arrived twice (the same message): each was applied once.
    ours = {str(p.id) for p in (settles, comes_back, other_amount)}
    answers = [r for r in read_since(only(start, ["payment.processed"]), expect=7) if r.key in ours]
    simulated = [r for r in answers if r.value and r.value["data"]["network_reference"] != "NET-TEST"]
    assert len(simulated) == 6
    assert len({r.headers["ce_id"] for r in simulated}) == 3
    applied = InboxRecord.objects.filter(handler="payments.record_network_answer")
    assert {str(e) for e in applied.values_list("event_id", flat=True)} >= {r.headers["ce_id"] for r in simulated}
    assert [(m.reason, m.subject) for m in IgnoredNetworkMessage.objects.order_by("reason")] == [
        ("amount_mismatch", str(other_amount.id)),
        ("unknown_payment", str(stranger)),
    ]
    assert "payment network message already booked" in consumer.output()

    # Credits: one booked once (sent twice, then said again), one returned to the network.
    assert balance(receiver) == 700
    assert balance(closed) == 0
    returned = InboundCredit.objects.get(creditor_account_number=closed.number)
    assert (returned.status, returned.return_reason) == ("returned", "account_closed")
    sent_back = read_since(only(start, ["payment.credit_returned"]), expect=1)
    assert [r.value["data"]["return_reason"] for r in sent_back if r.value and r.key == returned.end_to_end_id] == [
        "account_closed"
    ]

    out = io.StringIO()
    call_command("reconcile", "--quiet", stdout=out)
    call_command("reconcile_settlement", str(day_file), "--quiet", stdout=out)
    assert "the books reconcile" in out.getvalue()
    assert "read 5 rows" in out.getvalue()
    assert "the settlement file reconciles" in out.getvalue()


def test_a_payments_consumer_killed_mid_stream_books_each_answer_once_after_its_restart(tmp_path):
    count = 60
    start = end_offsets(BANK_READS + NETWORK_READS)
    bank_group, network_group = fresh_group(only(start, BANK_READS)), fresh_group(only(start, NETWORK_READS))
    payer = open_account(balance=100_000)
    payments = [sent_payment(payer, 100) for _ in range(count)]
    ids = [p.id for p in payments]
    relay_pending(build_sink("kafka"))

    # The network answers them all first, so the consumer below meets a stream of answers.
    simulator = start_manage(
        "simulate_payment_network", "--group-id", network_group, "--delay", "0", "--seed", "3", env=kafka_env()
    )
    try:
        wanted = {str(payment_id) for payment_id in ids}
        answered = keys_since(only(start, ["payment.processed"]), wanted=wanted, timeout=WAIT)
        assert wanted <= answered, simulator.output()[-3000:]
    finally:
        stop(simulator)

    def settled() -> int:
        return Payment.objects.filter(pk__in=ids, status=Payment.Status.SETTLED).count()

    command = ("consume", "--group", "payments", "--topics", ",".join(BANK_READS), "--group-id", bank_group)
    first = start_manage(*command, env=kafka_env())
    try:
        wait_for(lambda: settled() >= 1, "the first consumer to book an answer", [first], timeout=WAIT)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    at_kill = settled()
    assert 0 < at_kill < count, f"the consumer was not killed mid-stream: {at_kill} of {count} were booked"

    second = start_manage(*command, env=kafka_env())
    try:
        wait_for(lambda: settled() == count, "the restarted consumer to book the rest", [second])
    finally:
        stop(second)
    assert second.returncode == 0, second.output()

    for payment_id in ids:
        assert booked(f"payment-settlement:{payment_id}") == 1
    steps = Payment.objects.filter(pk__in=ids).values_list("history__step", flat=True)
    assert list(steps).count("settled") == count
    assert OutboxEvent.objects.filter(event_type="payment.settled").count() == count
    assert balance(payer) == 100_000 - 100 * count
    out = io.StringIO()
    call_command("reconcile", "--quiet", stdout=out)
    assert "the books reconcile" in out.getvalue()
