"""A Kafka consumer's place in its group, shared by the consumer runner and the dead-letter
replay: what the group assigned and since when there was nothing to do, the offsets to commit,
and the headers of the records read."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from outbox.loop import StopSignal

logger = logging.getLogger("fintech.consumer")

# A consumer that has not been given partitions after this long is idle, too.
JOIN_GRACE_SECONDS = 30.0
SLEEP_STEP_SECONDS = 0.1

Headers = list[tuple[str, bytes]]


def raw_headers(message: Message) -> Headers:
    """The record's headers as (name, bytes), in order; a null header value becomes b""."""
    headers = message.headers() or []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(name, value.encode() if isinstance(value, str) else (value or b"")) for name, value in items]


def decoded_headers(headers: Headers) -> dict[str, str]:
    return {name: value.decode("utf-8", errors="replace") for name, value in headers}


class Membership:
    """What the group gave this consumer, and since when it has had nothing to do.

    The rebalance callbacks run inside `poll()`, on the consuming thread, so between two
    polls the assignment cannot change under a record being handled.
    """

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.started_at = time.monotonic()
        self.joined_at: float | None = None
        self.active_at: float | None = None
        self.partitions: set[tuple[str, int]] = set()

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.joined_at = time.monotonic()
        self.partitions |= {(tp.topic, tp.partition) for tp in partitions}
        logger.info("partitions assigned", extra={"group": self.group_id, "partitions": partition_names(partitions)})

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # With auto-commit on, librdkafka commits the stored offsets of these partitions
        # before it gives them up; nothing is stored past a record that is not finished.
        self.partitions -= {(tp.topic, tp.partition) for tp in partitions}
        logger.info("partitions revoked", extra={"group": self.group_id, "partitions": partition_names(partitions)})

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.partitions -= {(tp.topic, tp.partition) for tp in partitions}
        logger.warning("partitions lost", extra={"group": self.group_id, "partitions": partition_names(partitions)})

    def touch(self) -> None:
        self.active_at = time.monotonic()

    def idle_for(self) -> float:
        """Seconds with nothing to do since the group assigned partitions (or since the
        join grace ran out, for a consumer that was never given any)."""
        now = time.monotonic()
        if self.joined_at is None:
            return max(0.0, now - self.started_at - JOIN_GRACE_SECONDS)
        return now - max(self.joined_at, self.active_at or 0.0)

    def subscribe(self, consumer: Consumer, topics: list[str]) -> None:
        consumer.subscribe(topics, on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost)


def position(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset) of a record."""
    return message.topic() or "", message.partition() or 0, message.offset() or 0


def next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """Per partition, the offset after the last of `messages`: what a commit records."""
    after: dict[tuple[str, int], int] = {}
    for message in messages:
        topic, partition, offset = position(message)
        after[(topic, partition)] = max(after.get((topic, partition), 0), offset + 1)
    return [TopicPartition(topic, partition, offset) for (topic, partition), offset in after.items()]


def partition_names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]


def on_client_error(error: KafkaError) -> None:
    # Mostly transient (broker away, coordinator moving): librdkafka keeps retrying.
    logger.warning("kafka client error", extra={"error": str(error), "fatal": error.fatal()})


def interruptible_sleep(stop: StopSignal, seconds: float) -> bool:
    """Sleep in small steps; False when a stop was requested meanwhile."""
    deadline = time.monotonic() + seconds
    while not stop.stopped:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        stop.event.wait(min(SLEEP_STEP_SECONDS, remaining))
    return False
