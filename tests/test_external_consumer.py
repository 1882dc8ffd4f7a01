"""examples/external_consumer/consumer.py, the program an outside team copies, against the real
broker: it accepts each of our events once although the topic holds it twice, and reports a
schema-invalid record on stderr instead of printing it.

Topics are shared with every other test and run, so each test gives the consumer a group of its
own whose offsets are placed at the end of the topics before the scenario (the same "reset your
group's offsets" an external team does), and looks only at its own event ids.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from django.conf import settings as django_settings
from django.core.management import call_command

from outbox.models import OutboxEvent
from outbox.relay import relay_pending
from outbox.sinks import KafkaSink, OutgoingEvent, build_sink
from tests.factories import open_account, verified_customer
from tests.kafka_support import end_offsets, read_since
from tests.spine.support import ROOT

CONSUMER = ROOT / "examples" / "external_consumer" / "consumer.py"
TOPICS = ("customer.created", "customer.verified", "account.created")


@pytest.fixture(scope="module")
def topics(django_db_blocker):
    with django_db_blocker.unblock():
        call_command("kafka_topics")


def group_at_end_of(topics, bootstrap):
    """A fresh consumer group whose committed offsets are the topics' current ends."""
    group_id = f"test.external-consumer.{uuid.uuid4().hex[:12]}"
    client = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    try:
        offsets = [TopicPartition(t, p, o) for (t, p), o in end_offsets(topics).items()]
        client.commit(offsets=offsets, asynchronous=False)
    finally:
        client.close()
    return group_id


def run_consumer(bootstrap, group_id, topics, tmp_path):
    """The example as an outside team runs it: its own process, outside the repository, with
    nothing of the bank's environment (no Django settings, no PYTHONPATH)."""
    env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"}
    result = subprocess.run(
        [
            sys.executable,
            str(CONSUMER),
            "--bootstrap-servers",
            bootstrap,
            "--group",
            group_id,
            "--topics",
            ",".join(topics),
            "--idle-timeout",
            "5",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accepted = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    reports = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return accepted, reports, result.stderr


@pytest.mark.usefixtures("topics")
@pytest.mark.kafka
@pytest.mark.django_db(transaction=True)
def test_each_of_our_events_is_accepted_once_although_the_topic_holds_it_twice(settings, tmp_path):
    settings.FINTECH_EVENT_DISPATCH = "worker"  # nothing dispatched, so the relay keeps the rows
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    start = end_offsets(TOPICS)
    group_id = group_at_end_of(TOPICS, bootstrap)

    customer = verified_customer()
    account = open_account(customer=customer)
    rows = list(OutboxEvent.objects.filter(event_type__in=TOPICS).order_by("id"))
    assert [row.event_type for row in rows] == ["customer.created", "customer.verified", "account.created"]
    outgoing = [OutgoingEvent.of(row) for row in rows]
    ours = {str(row.event_id): row for row in rows}

    pending = OutboxEvent.objects.filter(sent_at__isnull=True).count()
    sink = build_sink("kafka")
    try:
        assert relay_pending(sink) == pending
    finally:
        sink.close()
    # At least once made visible: the same records shipped a second time (as a relay killed
    # after the broker's acknowledgement but before its commit would).
    again = KafkaSink()
    try:
        again.send(outgoing)
    finally:
        again.close()
    on_topic = Counter(r.headers.get("ce_id") for r in read_since(start, expect=2 * len(ours)))
    assert all(on_topic[event_id] == 2 for event_id in ours), on_topic

    accepted, reports, stderr = run_consumer(bootstrap, group_id, TOPICS, tmp_path)

    mine = [line for line in accepted if line["id"] in ours]
    assert Counter(line["id"] for line in mine) == Counter(dict.fromkeys(ours, 1))
    for line in mine:
        row = ours[line["id"]]
        assert set(line) == {"type", "id", "subject", "data"}
        assert line["type"] == row.event_type
        assert line["subject"] == row.aggregate_id
        assert line["data"] == row.envelope["data"]
    assert {line["subject"] for line in mine} == {str(customer.id), str(account.id)}
    assert not [event_id for event_id in ours if event_id in stderr], "an event of ours was reported invalid"
    closed = next(report for report in reports if report["message"] == "consumer closed")
    assert closed["duplicates"] >= len(ours)


@pytest.mark.usefixtures("topics")
@pytest.mark.kafka
@pytest.mark.django_db(transaction=True)
def test_a_schema_invalid_record_is_reported_on_stderr_and_skipped(settings, tmp_path):
    bootstrap = settings.KAFKA_BOOTSTRAP_SERVERS
    group_id = group_at_end_of(["customer.created"], bootstrap)
    customer_id = str(uuid.uuid4())

    def envelope(event_id, data):
        return {
            "specversion": "1.0",
            "id": event_id,
            "type": "customer.created",
            "source": "/fintech/customers",
            "subject": customer_id,
            "time": "2026-11-29T10:00:00.000000Z",
            "dataschema": "customer.created/v1",
            "datacontenttype": "application/json",
            "data": data,
        }

    invalid_id, valid_id = str(uuid.uuid4()), str(uuid.uuid4())
    valid_data = {
        "customer_id": customer_id,
        "document_type": "cpf",
        "status": "pending",
        "created_at": "2026-11-29T10:00:00Z",
    }
    invalid_data = {key: value for key, value in valid_data.items() if key != "status"}  # a required field
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    # Same key, so the same partition: the valid record after the invalid one shows the
    # partition was not held up.
    for event_id, data in ((invalid_id, invalid_data), (valid_id, valid_data)):
        producer.produce(
            "customer.created",
            key=customer_id.encode(),
            value=json.dumps(envelope(event_id, data)).encode(),
            headers=[("ce_type", "customer.created"), ("ce_id", event_id)],
        )
    assert producer.flush(30) == 0

    accepted, reports, _ = run_consumer(bootstrap, group_id, ["customer.created"], tmp_path)

    assert invalid_id not in {line["id"] for line in accepted}
    assert [line["id"] for line in accepted if line["id"] == valid_id] == [valid_id]
    complaints = [report for report in reports if report.get("id") == invalid_id]
    assert len(complaints) == 1, reports
    assert complaints[0]["message"] == "invalid record skipped"
    assert complaints[0]["topic"] == "customer.created"
    assert "'status' is a required property" in complaints[0]["error"]
    assert not [report for report in reports if report.get("id") == valid_id]


@pytest.mark.usefixtures("topics")
@pytest.mark.kafka
def test_sigterm_closes_the_consumer_and_it_exits_cleanly(tmp_path):
    bootstrap = django_settings.KAFKA_BOOTSTRAP_SERVERS
    group_id = group_at_end_of(["customer.created"], bootstrap)
    process = subprocess.Popen(
        [
            sys.executable,
            str(CONSUMER),
            "--bootstrap-servers",
            bootstrap,
            "--group",
            group_id,
            "--topics",
            "customer.created",
        ],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # no --idle-timeout: it runs until told to stop
            if '"partitions assigned"' in line:
                break
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, rest
    closed = [json.loads(line) for line in rest.splitlines() if '"consumer closed"' in line]
    assert closed
    assert closed[0]["group"] == group_id


def test_the_example_imports_only_confluent_kafka_jsonschema_and_the_standard_library():
    tree = ast.parse(CONSUMER.read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    top_level = {name.split(".")[0] for name in modules}
    assert top_level - set(sys.stdlib_module_names) == {"confluent_kafka", "jsonschema"}
    lines = (CONSUMER.parent / "requirements.txt").read_text().splitlines()
    requirements = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    assert sorted(requirements) == ["confluent-kafka==2.16.1", "jsonschema==4.26.0"]
