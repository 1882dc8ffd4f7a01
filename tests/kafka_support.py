"""Read what reached the real Kafka broker, from offsets captured before a scenario."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from django.conf import settings

Offsets = dict[tuple[str, int], int]


@dataclass(frozen=True)
class Shipped:
    topic: str
    partition: int
    offset: int
    key: str
    value: dict[str, Any] | None  # None for a record that is not JSON (other tests send poison)
    headers: dict[str, str]


def _headers(raw: Any) -> dict[str, str]:
    pairs = raw.items() if isinstance(raw, dict) else (raw or [])
    return {str(name): value.decode() if isinstance(value, bytes) else str(value) for name, value in pairs}


def _json_or_none(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw or b"")
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _consumer() -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": f"test-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


# A partition whose leader the broker is still electing (a topic created a moment ago, a broker
# slow to settle on a loaded machine) answers with these for a while: ask again.
_SETTLING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError._TIMED_OUT}


def _high_watermark(consumer: Consumer, partition: TopicPartition, *, within: float = 30.0) -> int:
    deadline = time.monotonic() + within
    while True:
        try:
            _, high = consumer.get_watermark_offsets(partition, timeout=10)
            return int(high)
        except KafkaException as error:
            if error.args[0].code() not in _SETTLING or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def end_offsets(topics: Iterable[str]) -> Offsets:
    consumer = _consumer()
    try:
        offsets: Offsets = {}
        metadata = consumer.list_topics(timeout=10)
        for topic in topics:
            for partition in metadata.topics[topic].partitions:
                offsets[(topic, partition)] = _high_watermark(consumer, TopicPartition(topic, partition))
        return offsets
    finally:
        consumer.close()


def read_since(start: Offsets, *, expect: int, timeout: float = 60.0) -> list[Shipped]:
    """Every record written after `start`, once at least `expect` arrived (or the time is up)."""
    consumer = _consumer()
    consumer.assign([TopicPartition(topic, partition, offset) for (topic, partition), offset in start.items()])
    shipped: list[Shipped] = []
    deadline = time.monotonic() + timeout
    quiet_until: float | None = None
    try:
        while time.monotonic() < deadline:
            messages = consumer.consume(num_messages=5000, timeout=0.5)
            for message in messages:
                if message.error():
                    continue
                shipped.append(
                    Shipped(
                        topic=str(message.topic()),
                        partition=int(message.partition() or 0),
                        offset=int(message.offset() or 0),
                        key=(message.key() or b"").decode(),
                        value=_json_or_none(message.value()),
                        headers=_headers(message.headers()),
                    )
                )
            if len(shipped) >= expect:
                # Keep reading briefly: duplicates beyond the expected count must be seen too.
                quiet_until = quiet_until or time.monotonic() + 1.0
                if not messages and time.monotonic() > quiet_until:
                    break
        return shipped
    finally:
        consumer.close()


def keys_since(start: Offsets, *, wanted: set[str], timeout: float = 60.0) -> set[str]:
    """The keys of the records written after `start`, read by one consumer until every key of
    `wanted` arrived or the time is up (records of other runs on a shared topic do not end it)."""
    consumer = _consumer()
    consumer.assign([TopicPartition(topic, partition, offset) for (topic, partition), offset in start.items()])
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not wanted <= seen:
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                if not message.error():
                    seen.add((message.key() or b"").decode())
        return seen
    finally:
        consumer.close()


def fresh_group(start: Offsets) -> str:
    """A consumer group of its own whose committed offsets are `start`, so it reads only what
    a scenario wrote after `start` was captured."""
    group_id = f"test.group.{uuid.uuid4().hex[:12]}"
    client = Consumer(
        {"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS, "group.id": group_id, "enable.auto.commit": False}
    )
    try:
        client.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in start.items()], asynchronous=False)
    finally:
        client.close()
    return group_id
