"""The relay ships the outbox to the real Kafka broker: the contract's topics, keys, envelope
and headers; nothing rolled back; nothing lost when the relay is killed or the broker is away."""

import signal
import subprocess
import time
import uuid
from collections import Counter

import pytest
from django.core.management import call_command
from django.db import transaction

from apps.customers import services as customers
from apps.customers.events import CustomerCreated
from outbox.consumer import ConsumerRunner
from outbox.models import OutboxEvent
from outbox.publisher import publish
from outbox.relay import relay_pending
from outbox.sinks import build_sink
from tests.factories import deposit, new_cpf, open_account
from tests.kafka_support import end_offsets, fresh_group, read_since
from tests.spine.models import Tally
from tests.spine.support import ROOT, manage, start_manage

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module", autouse=True)
def topics(django_db_blocker):
    with django_db_blocker.unblock():
        call_command("kafka_topics")


def test_every_committed_event_arrives_on_its_topic_with_key_envelope_and_headers(client_with, settings):
    from fintech.kafka.topics import event_topics

    start = end_offsets(event_topics())
    source, destination = open_account(balance=50_000), open_account()
    staff = client_with("transfers:write transfers:read")
    response = staff.post(
        "/api/v1/transfers",
        {"from_account_id": str(source.id), "to_account_id": str(destination.id), "amount": 1_000, "currency": "BRL"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        HTTP_TRACEPARENT="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    assert response.json()["status"] == "completed"
    deposit(destination, 700)
    rolled_back: list[uuid.UUID] = []
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012 - the rollback is the point
        customers.customer_create(name="Rolled Back", email="r@example.com", document=new_cpf())
        rolled_back.append(OutboxEvent.objects.order_by("-id").values_list("event_id", flat=True)[0])
        raise RuntimeError("rolled back")

    committed = list(OutboxEvent.objects.order_by("id"))
    assert relay_pending(build_sink("kafka")) == len(committed)
    ours = {str(row.event_id) for row in committed}
    everything = read_since(start, expect=len(committed))
    assert str(rolled_back[0]) not in {r.headers.get("ce_id") for r in everything}
    shipped = [r for r in everything if r.headers.get("ce_id") in ours]
    by_id = {record.headers["ce_id"]: record for record in shipped}
    assert set(by_id) == {str(row.event_id) for row in committed}
    assert len(shipped) == len(committed)
    for row in committed:
        record = by_id[str(row.event_id)]
        assert record.topic == row.event_type
        assert record.key == row.aggregate_id
        assert record.value == row.envelope
        assert record.value["specversion"] == "1.0"
        assert record.value["subject"] == row.aggregate_id
        assert record.headers["ce_type"] == row.event_type
        assert record.headers["traceparent"] == row.headers["traceparent"]
        assert record.headers["correlation_id"] == row.headers["correlation_id"]
    transfer_events = [r for r in shipped if r.topic.startswith("transaction.")]
    assert {r.headers["traceparent"].split("-")[1] for r in transfer_events} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    assert all("causation_id" in r.headers for r in transfer_events if r.topic != "transaction.initiated")
    # One aggregate's events share a partition number on every topic. (Kafka orders records within one
    # topic's partition; offsets of different topics say nothing of each other, so the chain is put
    # in the order the outbox wrote it.)
    transfer_id = response.json()["id"]
    chain = [r for r in shipped if r.key == transfer_id]
    assert len({r.partition for r in chain}) == 1
    written = {str(row.event_id): index for index, row in enumerate(committed)}
    assert [r.topic for r in sorted(chain, key=lambda r: written[r.headers["ce_id"]])] == [
        "transaction.initiated",
        "fraud.screened",
        "transaction.validated",
        "transaction.completed",
    ]


def publish_customer_events(count):
    """`count` customer.created events, written in transactions of 500, without dispatch."""
    written = 0
    while written < count:
        with transaction.atomic():
            for _ in range(min(500, count - written)):
                customer_id = str(uuid.uuid4())
                publish(
                    CustomerCreated(
                        customer_id=customer_id,
                        document_type="cpf",
                        status="pending",
                        created_at="2026-11-29T10:00:00Z",
                    )
                )
                written += 1


# 10,000 events shipped, then consumed by two handlers one transaction each: about three minutes
# on two shared cores. The ceiling is a safety net against a hang, not a speed target.
@pytest.mark.timeout(900)
def test_relay_killed_mid_batch_loses_nothing(settings):
    settings.FINTECH_EVENT_DISPATCH = "worker"
    start = end_offsets(["customer.created"])
    publish_customer_events(10_000)
    env = {"KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS}
    relay = start_manage("relay_outbox", "--sink", "kafka", "--batch-size", "500", env=env)
    deadline = time.monotonic() + 60
    while OutboxEvent.objects.filter(sent_at__isnull=False).count() < 2_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    relay.send_signal(signal.SIGKILL)
    relay.wait(timeout=10)
    assert relay.returncode == -signal.SIGKILL
    unsent = OutboxEvent.objects.filter(sent_at__isnull=True).count()
    assert 0 < unsent < 10_000, "the kill must land in the middle of the work"

    restarted = manage("relay_outbox", "--once", "--sink", "kafka", env=env)
    assert restarted.returncode == 0, restarted.stderr
    assert not OutboxEvent.objects.filter(sent_at__isnull=True).exists()

    shipped = read_since(start, expect=10_000, timeout=120)
    expected = {str(e) for e in OutboxEvent.objects.values_list("event_id", flat=True)}
    counts = Counter(record.headers.get("ce_id") for record in shipped)
    assert set(counts) >= expected  # every event at least once; duplicates are allowed
    assert sum(counts[event_id] for event_id in expected) >= 10_000

    # The consumers' effects happen exactly once, duplicates on the topic notwithstanding.
    report = ConsumerRunner("probe", ["customer.created"], group_id=fresh_group(start)).run(idle_timeout=5)
    assert report.records >= 10_000
    for handler in ("probe.count", "probe.fragile"):
        tallies = Tally.objects.filter(handler=handler, event_id__in=list(expected))
        assert tallies.count() == 10_000
        assert set(tallies.values_list("applied", flat=True)) == {1}


def kafka_script(action):
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "local" / "kafka.sh"), action],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_broker_away_for_30_seconds_the_api_keeps_working_and_the_outbox_drains(client_with, settings):
    settings.FINTECH_EVENT_DISPATCH = "worker"  # rows stay after shipping (not dispatched), to be counted
    start = end_offsets(["customer.created"])
    staff = client_with("customers:write")
    # Records not acknowledged within 5 s fail the batch, so the relay notices the outage quickly.
    env = {"KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS, "KAFKA_DELIVERY_TIMEOUT_MS": "5000"}
    relay = start_manage("relay_outbox", "--sink", "kafka", "--idle", "0.2", env=env)
    unsent = OutboxEvent.objects.filter(sent_at__isnull=True)

    def onboard(n):
        return [
            staff.post(
                "/api/v1/customers", {"name": "Ana", "email": "a@example.com", "document": new_cpf()}, format="json"
            ).status_code
            for _ in range(n)
        ]

    try:
        assert set(onboard(5)) == {201}
        kafka_script("stop")
        try:
            outage_started = time.monotonic()
            statuses, backlog = [], []
            while time.monotonic() - outage_started < 30:
                statuses += onboard(3)
                backlog.append(unsent.count())
                time.sleep(1)
            assert set(statuses) == {201}, "the API must keep accepting requests while the broker is away"
            assert backlog[-1] >= len(statuses) > 0, "the outbox backs up while the broker is away"
            assert relay.poll() is None, relay.output()[-3000:]
        finally:
            kafka_script("start")
        deadline = time.monotonic() + 90
        while unsent.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not unsent.exists(), f"the outbox drains after the outage; relay output:\n{relay.output()[-5000:]}"
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(timeout=30)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait()
            raise AssertionError(f"the relay ignored SIGTERM; its output:\n{relay.output()[-5000:]}") from None
    assert relay.returncode == 0, relay.output()[-3000:]
    created = OutboxEvent.objects.filter(event_type="customer.created")
    expected = {str(e) for e in created.values_list("event_id", flat=True)}
    assert len(expected) == 5 + len(statuses)  # one customer.created per accepted request
    shipped = read_since(start, expect=len(expected), timeout=60)
    assert {record.headers.get("ce_id") for record in shipped} >= expected, "nothing is lost"
