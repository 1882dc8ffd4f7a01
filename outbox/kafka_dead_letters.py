"""Kafka's dead letters: the record a consumer group gives up on goes to `dlq.<topic>` as it was
(key, value, headers) plus `dlq_*` headers saying where it came from and why; after the fix,
`manage.py replay_kafka_dlq <topic>` re-publishes them to the topic.

These are the dead letters of Kafka consumers. The in-process dispatcher's are rows of the
`DeadLetter` table (`outbox.dispatcher`, `manage.py replay_handler_dead_letters`).
"""

from __future__ import annotations

import logging
import traceback

from confluent_kafka import Consumer, KafkaException, Message

from fintech.kafka.config import consumer_config
from fintech.kafka.producer import BatchProducer, Record
from fintech.kafka.topics import DLQ_PREFIX, dlq_topic
from outbox.kafka_group import Membership, decoded_headers, next_offsets, on_client_error, raw_headers
from outbox.loop import StopSignal
from outbox.metrics import KAFKA_DEAD_LETTERS_REPLAYED

logger = logging.getLogger("fintech.consumer")

DLQ_HEADER_PREFIX = "dlq_"
ERROR_HEADER_LIMIT = 2000
# The broker must acknowledge a dead letter before the record's offset is stored.
DEAD_LETTER_TIMEOUT_SECONDS = 30.0


def error_text(error: BaseException) -> str:
    """One line for the `dlq_error` header: the exception and where it was raised."""
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})"
    return text[:ERROR_HEADER_LIMIT]


def dead_letter(
    message: Message, *, group_id: str, reason: str, error: BaseException, attempts: int, failed: list[str]
) -> Record:
    """The record for `dlq.<topic>`: the original key, value and headers, and the `dlq_*` marks
    (where it was, which group and handlers gave up, after how many attempts, and why)."""
    topic = message.topic() or ""
    marks = [
        ("dlq_original_topic", topic),
        ("dlq_original_partition", str(message.partition())),
        ("dlq_original_offset", str(message.offset())),
        ("dlq_consumer_group", group_id),
        ("dlq_error", error_text(error)),
        ("dlq_attempts", str(attempts)),
        ("dlq_failed_handler", ",".join(failed)),
        ("dlq_reason", reason),
    ]
    replaced = {name for name, _ in marks}
    headers: list[tuple[str, str | bytes | None]] = [
        (name, value) for name, value in raw_headers(message) if name not in replaced
    ]
    headers += [(name, value.encode()) for name, value in marks]
    return dlq_topic(topic), message.key(), message.value(), headers


def replayed(message: Message) -> Record:
    """A dead letter on its way back: original topic, key and value, its headers without the
    `dlq_*` ones, and where in the DLQ it came from."""
    headers = raw_headers(message)
    source = message.topic() or ""
    original = decoded_headers(headers).get("dlq_original_topic") or source.removeprefix(DLQ_PREFIX)
    kept: list[tuple[str, str | bytes | None]] = [
        (name, value) for name, value in headers if not name.startswith(DLQ_HEADER_PREFIX)
    ]
    kept += [
        ("dlq_replayed_from_offset", str(message.offset()).encode()),
        ("dlq_replayed_from_partition", str(message.partition()).encode()),
    ]
    return original, message.key(), message.value(), kept


def replay_kafka_dlq(
    topic: str,
    *,
    max_records: int | None = None,
    idle_timeout: float = 5.0,
    stop: StopSignal | None = None,
    group_id: str | None = None,
    batch_size: int = 500,
) -> int:
    """Re-publish the records of `dlq.<topic>` to their original topic; returns how many.

    Offsets of the replay group `fintech.dlq-replay.<topic>` are committed only after the
    broker acknowledged the re-published batch: a crash replays a batch twice at worst (the
    consumers' inbox makes that harmless), never skips one.
    """
    topic = topic.removeprefix(DLQ_PREFIX)
    stop = stop or StopSignal()
    group_id = group_id or f"fintech.dlq-replay.{topic}"
    consumer = Consumer(consumer_config(group_id, error_cb=on_client_error, **{"enable.auto.commit": False}))
    membership = Membership(group_id)
    membership.subscribe(consumer, [dlq_topic(topic)])
    producer = BatchProducer()
    count = 0
    try:
        while not stop.stopped and (max_records is None or count < max_records):
            if membership.idle_for() >= idle_timeout:
                break
            limit = batch_size if max_records is None else min(batch_size, max_records - count)
            batch = []
            for message in consumer.consume(num_messages=limit, timeout=0.5):
                error = message.error()
                if error is None:
                    batch.append(message)
                elif error.fatal():
                    raise KafkaException(error)
                else:
                    logger.warning("dlq replay consumer error", extra={"group": group_id, "error": str(error)})
            if not batch:
                continue
            membership.touch()
            producer.send([replayed(message) for message in batch])
            consumer.commit(offsets=next_offsets(batch), asynchronous=False)
            count += len(batch)
            KAFKA_DEAD_LETTERS_REPLAYED.labels(topic).inc(len(batch))
            logger.info("dead letters replayed", extra={"topic": topic, "records": len(batch)})
    finally:
        consumer.close()
        producer.close(timeout=10)
    return count
