"""The consumer runner on the real Kafka broker: each handler applies each event once however
often it is delivered, poison and hopeless records go to `dlq.<topic>` without holding the
partition up, dead letters are replayed after the fix, and SIGTERM stops a consumer cleanly.

Topics are shared with every other test and run, so each test reads only its own records: it
consumes with a fresh consumer group placed at the end offsets captured before its scenario,
and looks for its own keys and event ids.
"""

import json
import signal
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from django.conf import settings as django_settings
from django.core.management import call_command
from django.db import OperationalError
from prometheus_client import REGISTRY

from apps.customers import services as customers
from fintech import bus
from fintech.observability import context
from outbox.consumer import ConsumerRunner
from outbox.models import InboxRecord, OutboxEvent
from outbox.relay import relay_pending
from outbox.sinks import build_sink
from tests.factories import new_cpf
from tests.kafka_support import end_offsets, read_since
from tests.spine.models import FailureSwitch, Tally
from tests.spine.support import start_manage

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]

IDLE = 2.0  # seconds without records after which a test consumer has seen everything


@pytest.fixture(scope="module", autouse=True)
def topics(django_db_blocker):
    with django_db_blocker.unblock():
        call_command("kafka_topics")


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.KAFKA_CONSUMER_MAX_ATTEMPTS = 3
    settings.KAFKA_CONSUMER_RETRY_BASE_SECONDS = 0.05


# -- helpers -------------------------------------------------------------------------------


def _client(group_id=None):
    return Consumer(
        {
            "bootstrap.servers": django_settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": group_id or f"test-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def fresh_group(start):
    """A consumer group of its own, starting at `start` (offsets captured before the scenario)."""
    group_id = f"test.consumers.{uuid.uuid4().hex[:12]}"
    move_group(group_id, start)
    return group_id


def only(offsets, topic):
    return {(t, p): o for (t, p), o in offsets.items() if t == topic}


def move_group(group_id, offsets):
    client = _client(group_id)
    try:
        client.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    finally:
        client.close()


def committed(group_id, topic, partition):
    client = _client(group_id)
    try:
        [position] = client.committed([TopicPartition(topic, partition)], timeout=10)
        return position.offset
    finally:
        client.close()


def produce(*records):
    """Produce (topic, key, value) records in order; returns their (partition, offset)."""
    producer = Producer(
        {
            "bootstrap.servers": django_settings.KAFKA_BOOTSTRAP_SERVERS,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    delivered = {}
    for index, (topic, key, value) in enumerate(records):

        def on_delivery(error, message, index=index):
            assert error is None, error
            delivered[index] = (message.partition(), message.offset())

        producer.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
    assert producer.flush(15) == 0
    return [delivered[index] for index in range(len(records))]


def read_raw(start, *, key, expect, group=None, timeout=20.0):
    """The records with `key` written after `start` (raw bytes), once `expect` arrived and a
    second passed without more (so a duplicate would be seen too). With `group`: only the dead
    letters that group wrote (a test run in parallel may dead-letter the same record too)."""
    client = _client()
    client.assign([TopicPartition(t, p, o) for (t, p), o in start.items()])
    found = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            message = client.poll(0.2)
            if (
                message is not None
                and not message.error()
                and message.key() == key.encode()
                and (group is None or headers_of(message).get("dlq_consumer_group") == group)
            ):
                found.append(message)
                continue
            if len(found) >= expect:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
        return found
    finally:
        client.close()


def headers_of(message):
    return {name: (value or b"").decode() for name, value in message.headers() or []}


def envelope(event_type, data, *, subject, event_id=None):
    return json.dumps(
        {
            "specversion": "1.0",
            "id": str(event_id or uuid.uuid4()),
            "type": event_type,
            "source": "/payment-network" if event_type == "payment.processed" else "/fintech/customers",
            "subject": subject,
            "time": "2026-11-29T10:00:00Z",
            "dataschema": f"{event_type}/v1",
            "datacontenttype": "application/json",
            "data": data,
        }
    ).encode()


def customer_created(customer_id, **changes):
    data = {
        "customer_id": customer_id,
        "document_type": "cpf",
        "status": "pending",
        "created_at": "2026-11-29T10:00:00Z",
    }
    return {**data, **changes}


def payment_processed(payment_id, **changes):
    data = {
        "payment_id": payment_id,
        "status": "settled",
        "network_reference": "NET-000123",
        "return_reason": None,
        "processed_at": "2026-11-29T10:00:05Z",
    }
    return {**data, **changes}


def consume(group_id, topics=("customer.created",), **options):
    runner = ConsumerRunner("probe", list(topics), group_id=group_id, **options)
    return runner.run(idle_timeout=IDLE)


def applied(handler, event_id):
    tally = Tally.objects.filter(handler=handler, event_id=event_id).first()
    return tally.applied if tally else 0


def onboard_and_relay(count):
    """`count` customers onboarded without in-process dispatch, their events shipped to Kafka."""
    for index in range(count):
        customers.customer_create(name=f"Customer {index}", email=f"c{index}@example.com", document=new_cpf())
    event_ids = list(OutboxEvent.objects.filter(event_type="customer.created").values_list("event_id", flat=True))
    assert len(event_ids) == count
    assert relay_pending(build_sink("kafka")) == count
    return event_ids


# -- a. exactly once per handler -----------------------------------------------------------


def test_each_probe_handler_applies_each_event_once_even_when_every_record_is_delivered_twice(settings):
    settings.FINTECH_EVENT_DISPATCH = "worker"  # only the Kafka consumer applies the events
    start = end_offsets(["customer.created"])
    event_ids = onboard_and_relay(3)
    traces = {str(row.event_id): row.headers["traceparent"].split("-")[1] for row in OutboxEvent.objects.all()}
    assert not Tally.objects.exists()
    group = fresh_group(start)

    seen = {}

    @bus.subscribe("customer.created", name="probe.trace")
    def trace(event):
        seen[str(event.id)] = (event.headers.get("traceparent", "").split("-")[1], context.current().trace.trace_id)

    try:
        first = consume(group)
    finally:
        bus.unsubscribe("probe.trace")
    assert first.applied >= 9
    # Handlers run inside the trace the event was published in.
    assert {event_id: seen[event_id] for event_id in traces} == {e: (t, t) for e, t in traces.items()}
    consumed = REGISTRY.get_sample_value(
        "fintech_kafka_records_consumed_total", {"group": group, "topic": "customer.created"}
    )
    assert (consumed or 0) >= 3
    for event_id in event_ids:
        assert applied("probe.count", event_id) == 1
        assert applied("probe.fragile", event_id) == 1

    # The same records again, twice over: the relay ships the batch a second time and the
    # group is rewound to where it started.
    OutboxEvent.objects.update(sent_at=None)
    assert relay_pending(build_sink("kafka")) == 3
    move_group(group, start)
    second = consume(group)
    assert second.duplicates >= 12  # 2 handlers x 3 events x 2 copies
    for event_id in event_ids:
        assert applied("probe.count", event_id) == 1
        assert applied("probe.fragile", event_id) == 1
    assert InboxRecord.objects.filter(event_id__in=event_ids, handler__in=["probe.count", "probe.fragile"]).count() == 6


# -- b. poison and hopeless records --------------------------------------------------------


POISON = {
    "invalid JSON": ("customer.created", lambda key, event_id: f'{{"specversion": "1.0", "id": "{event_id}'.encode()),
    "schema-invalid customer.created": (
        "customer.created",
        lambda key, event_id: envelope(
            "customer.created", customer_created(key, document_type="passport"), subject=key, event_id=event_id
        ),
    ),
    "schema-invalid payment.processed": (
        "payment.processed",
        lambda key, event_id: envelope(
            "payment.processed", payment_processed(key, status="lost"), subject=key, event_id=event_id
        ),
    ),
}


@pytest.mark.parametrize("kind", list(POISON))
def test_a_poison_record_goes_straight_to_the_dlq_and_the_partition_keeps_flowing(kind):
    topic, make_poison = POISON[kind]
    key = str(uuid.uuid4())  # one aggregate: the poison and the valid record share a partition
    valid_id = uuid.uuid4()
    valid_data = customer_created(key) if topic == "customer.created" else payment_processed(key)
    start = end_offsets([topic, f"dlq.{topic}"])
    group = fresh_group(only(start, topic))

    poison_id = uuid.uuid4()
    poison_value = make_poison(key, poison_id)
    (poison_partition, poison_offset), (valid_partition, valid_offset) = produce(
        (topic, key, poison_value), (topic, key, envelope(topic, valid_data, subject=key, event_id=valid_id))
    )
    assert poison_partition == valid_partition
    report = consume(group, [topic])

    [letter] = read_raw(only(start, f"dlq.{topic}"), key=key, expect=1, group=group)
    assert letter.topic() == f"dlq.{topic}"
    assert letter.value() == poison_value
    marks = headers_of(letter)
    assert marks["dlq_original_topic"] == topic
    assert marks["dlq_original_partition"] == str(poison_partition)
    assert marks["dlq_original_offset"] == str(poison_offset)
    assert marks["dlq_consumer_group"] == group
    assert marks["dlq_attempts"] == "1"  # poison is not retried
    assert marks["dlq_failed_handler"] == ""
    assert marks["dlq_error"]
    assert marks["dlq_reason"] == "poison"
    assert report.dead_lettered >= 1
    labels = {"group": group, "topic": topic, "reason": "poison"}
    assert (REGISTRY.get_sample_value("fintech_kafka_records_dead_lettered_total", labels) or 0) >= 1

    # Nothing of the poison reached the database; the record after it was handled.
    assert not Tally.objects.filter(event_id=poison_id).exists()
    assert not InboxRecord.objects.filter(event_id=poison_id).exists()
    if topic == "customer.created":
        assert applied("probe.count", valid_id) == 1
        assert applied("probe.fragile", valid_id) == 1
    assert committed(group, topic, valid_partition) > valid_offset > poison_offset


def test_a_handler_that_keeps_failing_is_dead_lettered_after_the_configured_attempts(settings):
    FailureSwitch.objects.create(handler="probe.fragile")
    key = str(uuid.uuid4())
    failing_id, next_id = uuid.uuid4(), uuid.uuid4()
    start = end_offsets(["customer.created", "dlq.customer.created"])
    group = fresh_group(only(start, "customer.created"))

    [(partition, failing_offset)] = produce(
        ("customer.created", key, envelope("customer.created", customer_created(key), subject=key, event_id=failing_id))
    )
    consume(group)
    [letter] = read_raw(only(start, "dlq.customer.created"), key=key, expect=1, group=group)
    marks = headers_of(letter)
    assert marks["dlq_attempts"] == str(settings.KAFKA_CONSUMER_MAX_ATTEMPTS)
    assert marks["dlq_failed_handler"] == "probe.fragile"
    assert marks["dlq_original_offset"] == str(failing_offset)
    assert "switched to fail" in marks["dlq_error"]
    assert applied("probe.count", failing_id) == 1  # the healthy handler was not held back
    assert applied("probe.fragile", failing_id) == 0

    # The partition keeps flowing past the dead letter.
    FailureSwitch.objects.all().delete()
    [(next_partition, next_offset)] = produce(
        ("customer.created", key, envelope("customer.created", customer_created(key), subject=key, event_id=next_id))
    )
    assert next_partition == partition
    consume(group)
    assert applied("probe.count", next_id) == 1
    assert applied("probe.fragile", next_id) == 1
    assert applied("probe.fragile", failing_id) == 0  # the dead letter waits for its replay
    assert committed(group, "customer.created", partition) > next_offset > failing_offset


def test_a_database_outage_puts_the_record_back_instead_of_dead_lettering_it():
    outage = {"failures_left": 2}

    @bus.subscribe("customer.created", name="probe.database_outage")
    def database_outage(event):
        if outage["failures_left"]:
            outage["failures_left"] -= 1
            raise OperationalError("the database went away")
        Tally.objects.create(handler="probe.database_outage", event_id=event.id, applied=1)

    try:
        key = str(uuid.uuid4())
        event_id = uuid.uuid4()
        start = end_offsets(["customer.created", "dlq.customer.created"])
        group = fresh_group(only(start, "customer.created"))
        [(partition, offset)] = produce(
            (
                "customer.created",
                key,
                envelope("customer.created", customer_created(key), subject=key, event_id=event_id),
            )
        )
        report = consume(group)
    finally:
        bus.unsubscribe("probe.database_outage")
    assert report.deferred == 2
    assert applied("probe.database_outage", event_id) == 1
    assert applied("probe.count", event_id) == 1  # applied on the first offer; a no-op on the next two
    assert not read_raw(only(start, "dlq.customer.created"), key=key, expect=0, group=group)
    assert committed(group, "customer.created", partition) > offset


# -- c. replay after the fix ---------------------------------------------------------------


def test_replay_kafka_dlq_republishes_a_dead_letter_and_the_fixed_handler_applies_it_once():
    FailureSwitch.objects.create(handler="probe.fragile")
    key = str(uuid.uuid4())
    event_id = uuid.uuid4()
    value = envelope("customer.created", customer_created(key), subject=key, event_id=event_id)
    start = end_offsets(["customer.created", "dlq.customer.created"])
    topic_start = only(start, "customer.created")
    dlq_start = only(start, "dlq.customer.created")
    group = fresh_group(topic_start)
    produce(("customer.created", key, value))
    consume(group)
    [letter] = read_raw(dlq_start, key=key, expect=1, group=group)
    assert applied("probe.fragile", event_id) == 0

    FailureSwitch.objects.all().delete()  # the fix is deployed
    replay_group = fresh_group(dlq_start)
    call_command("replay_kafka_dlq", "customer.created", "--group-id", replay_group, "--idle-timeout", str(IDLE))
    republished = [
        message
        for message in read_raw(topic_start, key=key, expect=2)
        if headers_of(message).get("dlq_replayed_from_offset") == str(letter.offset())
    ]
    assert republished  # back on customer.created, beside the original record
    assert republished[0].value() == value
    assert republished[0].partition() == letter.partition()  # same key, same partition
    marks = headers_of(republished[0])
    assert marks["dlq_replayed_from_partition"] == str(letter.partition())
    assert not {name for name in marks if name.startswith("dlq_original") or name == "dlq_error"}
    assert committed(replay_group, "dlq.customer.created", letter.partition()) == letter.offset() + 1

    consume(group)
    assert applied("probe.fragile", event_id) == 1
    assert applied("probe.count", event_id) == 1  # applied before the failure; the replay was a no-op for it
    consume(group)  # and nothing more to do
    assert applied("probe.fragile", event_id) == 1


# -- d. graceful shutdown ------------------------------------------------------------------


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_sigterm_stops_a_consumer_promptly_with_what_it_handled_committed(settings):
    settings.FINTECH_EVENT_DISPATCH = "worker"
    start = end_offsets(["customer.created"])
    group = fresh_group(start)
    event_ids = onboard_and_relay(3)
    env = {"KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS}
    consumer = start_manage("consume", "--group", "probe", "--topics", "customer.created", "--group-id", group, env=env)
    try:
        handled = wait_for(lambda: all(applied("probe.fragile", event_id) == 1 for event_id in event_ids))
        assert handled, consumer.output() if consumer.poll() is not None else "the consumer handled nothing"
        signalled = time.monotonic()
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(timeout=15)
        assert time.monotonic() - signalled < 15
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, consumer.output()

    # Committed on the way out: the next consumer of the group starts after those records.
    ours = {
        record.headers["ce_id"]: record
        for record in read_since(start, expect=3)
        if record.headers["ce_id"] in {str(event_id) for event_id in event_ids}
    }
    assert len(ours) == 3
    for record in ours.values():
        assert committed(group, "customer.created", record.partition) > record.offset
    consume(group)
    for event_id in event_ids:
        assert applied("probe.count", event_id) == 1
        assert applied("probe.fragile", event_id) == 1


def test_sigterm_during_retries_exits_at_once_and_leaves_the_record_to_the_next_consumer(settings):
    FailureSwitch.objects.create(handler="probe.fragile")
    key = str(uuid.uuid4())
    event_id = uuid.uuid4()
    start = end_offsets(["customer.created"])
    group = fresh_group(start)
    [(partition, offset)] = produce(
        ("customer.created", key, envelope("customer.created", customer_created(key), subject=key, event_id=event_id))
    )
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.KAFKA_BOOTSTRAP_SERVERS,
        "KAFKA_CONSUMER_MAX_ATTEMPTS": "5",
        "KAFKA_CONSUMER_RETRY_BASE_SECONDS": "20",  # the consumer sits in a long backoff
    }
    consumer = start_manage("consume", "--group", "probe", "--topics", "customer.created", "--group-id", group, env=env)
    try:
        assert wait_for(lambda: applied("probe.count", event_id) == 1)
        time.sleep(0.5)  # probe.fragile has failed its first attempt and waits to retry
        signalled = time.monotonic()
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(timeout=15)
        assert time.monotonic() - signalled < 5
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    assert consumer.returncode == 0, consumer.output()
    assert committed(group, "customer.created", partition) <= offset  # not past the unfinished record

    FailureSwitch.objects.all().delete()
    consume(group)
    assert applied("probe.fragile", event_id) == 1
    assert applied("probe.count", event_id) == 1
