"""What reached the broker: end offsets before a scenario, every record written after them, and
how far each consumer group has come."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from django.conf import settings

from fintech.kafka.topics import DLQ_PREFIX, all_topics

Offsets = dict[tuple[str, int], int]
# What the payment network (outside the bank) writes: its answers and its credits. They are no
# event of the bank's outbox, so they stay out of the comparison of what the bank wrote and shipped.
NETWORK_TOPICS = frozenset({"payment.processed", "payment.received"})
# A partition whose leader is still being elected (just after a broker restart) answers with
# these for a while: ask again.
_SETTLING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError._TIMED_OUT}


def _consumer(group_id: str | None = None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": group_id or f"chaos-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def _partitions(consumer: Consumer, topics: list[str]) -> list[TopicPartition]:
    metadata = consumer.list_topics(timeout=30)
    return [TopicPartition(topic, p) for topic in topics for p in metadata.topics[topic].partitions]


def _high(consumer: Consumer, partition: TopicPartition, *, within: float = 60.0) -> int:
    deadline = time.monotonic() + within
    while True:
        try:
            return int(consumer.get_watermark_offsets(partition, timeout=10)[1])
        except KafkaException as error:
            if error.args[0].code() not in _SETTLING or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def end_offsets(topics: list[str] | None = None) -> Offsets:
    """Where each partition of `topics` (every topic of the bank and its DLQ twin) ends now."""
    consumer = _consumer()
    try:
        return {(p.topic, p.partition): _high(consumer, p) for p in _partitions(consumer, topics or all_topics())}
    finally:
        consumer.close()


@dataclass
class Shipped:
    """The records written between two sets of offsets."""

    ids: Counter[str] = field(default_factory=Counter)  # records per event id (ce_id), event topics
    dead_letters: int = 0  # records on dlq.* topics

    @property
    def records(self) -> int:
        return sum(self.ids.values())

    @property
    def duplicates(self) -> int:
        return self.records - len(self.ids)


def read_between(start: Offsets, end: Offsets, *, timeout: float = 180.0) -> Shipped:
    """Every record after `start` up to `end`: event ids counted, dead letters counted."""
    shipped = Shipped()
    wanted = {tp: (start.get(tp, 0), last) for tp, last in end.items() if last > start.get(tp, 0)}
    if not wanted:
        return shipped
    consumer = _consumer()
    consumer.assign([TopicPartition(topic, p, first) for (topic, p), (first, _) in wanted.items()])
    remaining = set(wanted)
    deadline = time.monotonic() + timeout
    try:
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(remaining)} partitions not read to their end in {timeout:.0f}s")
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error():
                    continue
                topic, partition, offset = str(message.topic()), int(message.partition() or 0), message.offset()
                if offset is None or (topic, partition) not in wanted or offset >= wanted[(topic, partition)][1]:
                    continue
                if offset == wanted[(topic, partition)][1] - 1:
                    remaining.discard((topic, partition))
                if topic in NETWORK_TOPICS:
                    continue
                if topic.startswith(DLQ_PREFIX):
                    shipped.dead_letters += 1
                    continue
                headers = dict(message.headers() or [])
                raw = headers.get("ce_id", b"")
                shipped.ids[raw.decode() if isinstance(raw, bytes) else str(raw)] += 1
    finally:
        consumer.close()
    return shipped


def group_lag(group_id: str, topics: list[str]) -> int:
    """Records of `topics` that consumer group `group_id` has not committed yet."""
    consumer = _consumer(group_id)  # reads the group's offsets without joining it
    try:
        partitions = _partitions(consumer, topics)
        committed = consumer.committed(partitions, timeout=30)
        lag = 0
        for partition in committed:
            high = _high(consumer, partition)
            low = int(consumer.get_watermark_offsets(partition, timeout=10)[0])
            done = partition.offset if partition.offset >= 0 else low
            lag += max(0, high - done)
        return lag
    finally:
        consumer.close()
