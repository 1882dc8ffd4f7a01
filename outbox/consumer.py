"""The Kafka consumer runner: a context's handlers applied to the records of its topics.

`ConsumerRunner("ledger")` joins the consumer group `fintech.ledger` and runs every bus
subscription named `ledger.*` on the topics those subscriptions read. Per record:

1. The value must be a CloudEvent of the topic's type whose data matches its JSON Schema
   (then upcast to the newest version). A record that is not is poison: no retry can fix
   it, so it goes straight to `dlq.<topic>` and never reaches the database.
2. Each handler runs through the inbox (`run_handler`): one transaction that records
   (handler, event id) with the effect, so a redelivered record is a no-op.
3. A handler that raises is retried with exponential backoff; when the attempts run out the
   record goes to `dlq.<topic>` (original key, value and headers plus `dlq_*` headers) and
   the partition moves on.
4. The offset is stored only once the record is finished with: every handler committed, or
   the dead letter was acknowledged by the broker. librdkafka commits stored offsets in the
   background, on a revocation and on close, so a crash redelivers at most the records after
   the last commit (at least once; the inbox makes that harmless).

Two failures are not the record's fault and dead-lettering would empty the topic into the
DLQ: the database being unavailable (`OperationalError`, `InterfaceError`) and the DLQ
produce failing. Then the record is put back (seek to its offset, nothing stored) and
offered again after a pause, while the consumer keeps polling so it stays in the group.

SIGTERM or SIGINT (see `StopSignal`) lets the current record finish; a record still being
retried is left unstored and goes to whoever consumes the partition next. Then `close()`
commits the stored offsets and leaves the group, so the partitions move over at once.
"""

from __future__ import annotations

import json
import logging
import random
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from fintech import bus
from fintech.events import ReceivedEvent
from fintech.kafka.config import consumer_config, producer_config
from fintech.kafka.producer import DeliveryFailed
from fintech.kafka.topics import DLQ_PREFIX, dlq_topic
from fintech.observability import context
from outbox.dispatcher import received_from_envelope, run_handler
from outbox.loop import StopSignal
from outbox.metrics import (
    EVENTS_HANDLED,
    HANDLER_FAILURES,
    KAFKA_DEAD_LETTERS_REPLAYED,
    KAFKA_RECORDS_CONSUMED,
    KAFKA_RECORDS_DEAD_LETTERED,
    KAFKA_RECORDS_DEFERRED,
)

logger = logging.getLogger("fintech.consumer")

DLQ_HEADER_PREFIX = "dlq_"
ERROR_HEADER_LIMIT = 2000
# A consumer that has not been given partitions after this long is idle, too.
JOIN_GRACE_SECONDS = 30.0
MAX_PAUSE_SECONDS = 30.0
MIN_DEFER_PAUSE_SECONDS = 0.5
SLEEP_STEP_SECONDS = 0.1
# Errors of the infrastructure, not of the record or the handler's logic.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)

Headers = list[tuple[str, bytes]]


class PoisonRecord(ValueError):
    """The record is not a valid event of its topic: retrying cannot make it one."""


class _Deferred(Exception):
    """The record cannot be finished now for reasons outside it; offer it again later."""


class _Interrupted(Exception):
    """A stop was requested while the record was being retried."""


class Outcome(Enum):
    HANDLED = "handled"
    DEAD_LETTERED = "dead_lettered"
    DEFERRED = "deferred"
    INTERRUPTED = "interrupted"


@dataclass
class ConsumeReport:
    records: int = 0  # records finished with: offset stored
    applied: int = 0  # handler applications committed
    duplicates: int = 0  # handler deliveries the inbox had already seen
    dead_lettered: int = 0
    deferred: int = 0


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers


def raw_headers(message: Message) -> Headers:
    """The record's headers as (name, bytes), in order; a null header value becomes b""."""
    headers = message.headers() or []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(name, value.encode() if isinstance(value, str) else (value or b"")) for name, value in items]


def decoded_headers(headers: Headers) -> dict[str, str]:
    return {name: value.decode("utf-8", errors="replace") for name, value in headers}


def read_event(topic: str, value: bytes | None, headers: dict[str, str]) -> ReceivedEvent:
    """The record as a validated, upcast event of `topic`, or `PoisonRecord`."""
    try:
        envelope = json.loads(value or b"")
    except ValueError as error:
        raise PoisonRecord(f"the value is not JSON: {error}") from error
    if not isinstance(envelope, dict):
        raise PoisonRecord("the value is not a JSON object")
    if envelope.get("specversion") != "1.0":
        raise PoisonRecord(f"specversion {envelope.get('specversion')!r} is not 1.0")
    if envelope.get("type") != topic:
        raise PoisonRecord(f"an event of type {envelope.get('type')!r} on topic {topic!r}")
    if not str(envelope.get("dataschema", "")).startswith(f"{topic}/v"):
        raise PoisonRecord(f"dataschema {envelope.get('dataschema')!r} is not a version of {topic}")
    try:
        return received_from_envelope(envelope, headers)
    except Exception as error:  # whatever the envelope makes it raise, the record is at fault
        raise PoisonRecord(f"{type(error).__name__}: {error}") from error


def error_text(error: BaseException) -> str:
    """One line for the `dlq_error` header: the exception and where it was raised."""
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})"
    return text[:ERROR_HEADER_LIMIT]


class AcknowledgedProducer:
    """Produces records and returns once the broker acknowledged all of them (acks=all,
    idempotent); raises `DeliveryFailed` otherwise. Keys and values may be null."""

    def __init__(self) -> None:
        self._producer = Producer(producer_config())

    def send(self, records: Sequence[OutgoingRecord], *, timeout: float = 30.0) -> None:
        errors: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                errors.append(error)

        try:
            for record in records:
                headers: list[tuple[str, str | bytes | None]] = list(record.headers)
                self._producer.produce(
                    record.topic, value=record.value, key=record.key, headers=headers, on_delivery=on_delivery
                )
        except (BufferError, KafkaException) as error:
            raise DeliveryFailed(str(error)) from error
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryFailed(f"{remaining} record(s) not acknowledged within {timeout:.0f}s")
        if errors:
            raise DeliveryFailed(f"{len(errors)} record(s) refused, first: {errors[0]}")

    def close(self) -> None:
        self._producer.flush(10)


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
        logger.info("partitions assigned", extra={"group": self.group_id, "partitions": _names(partitions)})

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # With auto-commit on, librdkafka commits the stored offsets of these partitions
        # before it gives them up; nothing is stored past a record that is not finished.
        self.partitions -= {(tp.topic, tp.partition) for tp in partitions}
        logger.info("partitions revoked", extra={"group": self.group_id, "partitions": _names(partitions)})

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.partitions -= {(tp.topic, tp.partition) for tp in partitions}
        logger.warning("partitions lost", extra={"group": self.group_id, "partitions": _names(partitions)})

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


def _position(message: Message) -> tuple[str, int, int]:
    return message.topic() or "", message.partition() or 0, message.offset() or 0


def _next_offsets(messages: Sequence[Message]) -> list[TopicPartition]:
    """Per partition, the offset after the last of `messages`: what a commit records."""
    after: dict[tuple[str, int], int] = {}
    for message in messages:
        topic, partition, offset = _position(message)
        after[(topic, partition)] = max(after.get((topic, partition), 0), offset + 1)
    return [TopicPartition(topic, partition, offset) for (topic, partition), offset in after.items()]


def _names(partitions: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in partitions]


def _on_client_error(error: KafkaError) -> None:
    # Mostly transient (broker away, coordinator moving): librdkafka keeps retrying.
    logger.warning("kafka client error", extra={"error": str(error), "fatal": error.fatal()})


def _interruptible_sleep(stop: StopSignal, seconds: float) -> bool:
    """Sleep in small steps; False when a stop was requested meanwhile."""
    deadline = time.monotonic() + seconds
    while not stop.stopped:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return True
        stop.event.wait(min(SLEEP_STEP_SECONDS, remaining))
    return False


class ConsumerRunner:
    """Consumes `topics` (default: what the group's handlers subscribe to) as the Kafka group
    `fintech.<group>` and applies each record with the handlers named `<group>.*`."""

    def __init__(
        self,
        group: str,
        topics: list[str] | None = None,
        *,
        max_attempts: int | None = None,
        retry_base_seconds: float | None = None,
        stop: StopSignal | None = None,
        group_id: str | None = None,
        poll_timeout: float = 0.5,
    ) -> None:
        self.group = group
        self.group_id = group_id or f"fintech.{group}"
        self.handlers: dict[str, list[bus.Subscription]] = {}
        for sub in bus.all_subscriptions():
            if sub.name.startswith(f"{group}."):
                self.handlers.setdefault(sub.event_type, []).append(sub)
        self.topics = sorted(set(topics)) if topics else sorted(self.handlers)
        if not self.topics:
            raise ValueError(f"No handler is named {group}.*: name the topics to consume")
        if any(topic.startswith(DLQ_PREFIX) for topic in self.topics):
            raise ValueError("Dead letters are re-published with replay_dlq, not consumed")
        self.max_attempts = max(1, settings.KAFKA_CONSUMER_MAX_ATTEMPTS if max_attempts is None else max_attempts)
        self.retry_base_seconds = float(
            settings.KAFKA_CONSUMER_RETRY_BASE_SECONDS if retry_base_seconds is None else retry_base_seconds
        )
        self.stop = stop or StopSignal()
        self.poll_timeout = poll_timeout
        self._dlq: AcknowledgedProducer | None = None

    # -- the loop -------------------------------------------------------------------------

    def run(self, max_records: int | None = None, idle_timeout: float | None = None) -> ConsumeReport:
        """Consume until stopped, or after `max_records` records were finished with, or once
        nothing arrived for `idle_timeout` seconds. Always closes the consumer (final commit)."""
        report = ConsumeReport()
        consumer = Consumer(consumer_config(self.group_id, error_cb=_on_client_error))
        membership = Membership(self.group_id)
        membership.subscribe(consumer, self.topics)
        pauses = 0
        logger.info("consumer started", extra={"group": self.group_id, "topics": self.topics})
        try:
            while not self.stop.stopped:
                if max_records is not None and report.records >= max_records:
                    break
                if idle_timeout is not None and membership.idle_for() >= idle_timeout:
                    break
                message = consumer.poll(self.poll_timeout)
                if message is None:
                    close_old_connections()  # while idle: honour CONN_MAX_AGE, drop a broken connection
                    continue
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise KafkaException(error)
                    logger.warning("consumer error", extra={"group": self.group_id, "error": str(error)})
                    continue
                membership.touch()
                outcome = self.process(message, report)
                membership.touch()  # retries took time, but the consumer was busy, not idle
                if outcome in (Outcome.HANDLED, Outcome.DEAD_LETTERED):
                    self._store_offset(consumer, message)
                    report.records += 1
                    pauses = 0
                elif outcome is Outcome.DEFERRED:
                    pauses += 1
                    report.deferred += 1
                    close_old_connections()  # a connection the outage broke is replaced
                    # Back to this record: the next poll offers it again (nothing was stored).
                    consumer.seek(TopicPartition(*_position(message)))
                    base = max(self.retry_base_seconds, MIN_DEFER_PAUSE_SECONDS)
                    pause = min(MAX_PAUSE_SECONDS, base * 2.0 ** (pauses - 1))
                    _interruptible_sleep(self.stop, pause)
                else:
                    break
        finally:
            self._close(consumer)
            logger.info("consumer stopped", extra={"group": self.group_id, "records": report.records})
        return report

    def _store_offset(self, consumer: Consumer, message: Message) -> None:
        try:
            consumer.store_offsets(message=message)  # stores offset + 1: the next record to read
        except KafkaException as error:
            # librdkafka refuses (_STATE) for a partition no longer assigned; its new owner
            # gets the record again and the inbox makes that a no-op.
            logger.warning(
                "offset not stored: partition no longer assigned",
                extra={"topic": message.topic(), "partition": message.partition(), "error": str(error)},
            )

    def _close(self, consumer: Consumer) -> None:
        try:
            consumer.close()  # commits the stored offsets, then leaves the group
        except (KafkaException, RuntimeError):
            logger.exception("consumer close failed; uncommitted records will be redelivered")
        if self._dlq is not None:
            self._dlq.close()
            self._dlq = None

    # -- one record -----------------------------------------------------------------------

    def process(self, message: Message, report: ConsumeReport) -> Outcome:
        """Apply one record with every matching handler, or dead-letter it."""
        topic = message.topic() or ""
        headers = raw_headers(message)
        text_headers = decoded_headers(headers)
        where = {"group": self.group_id, "topic": topic, "partition": message.partition(), "offset": message.offset()}
        work = context.from_incoming(
            traceparent=text_headers.get("traceparent"),
            correlation_id=text_headers.get("correlation_id"),
            causation_id=text_headers.get("ce_id"),
        )
        with context.bind(work):
            try:
                event = read_event(topic, message.value(), text_headers)
            except PoisonRecord as error:
                logger.error("poison record", extra={**where, "error": str(error)})
                return self._dead_letter(message, headers, report, reason="poison", error=error, attempts=1, failed=[])
            failed: list[str] = []
            last_error: BaseException | None = None
            try:
                for sub in self.handlers.get(event.type, []):
                    failure = self._apply(sub, event, report, where)
                    if failure is not None:
                        failed.append(sub.name)
                        last_error = failure
            except _Deferred as deferred:
                logger.warning("record deferred", extra={**where, "event_id": str(event.id), "error": str(deferred)})
                KAFKA_RECORDS_DEFERRED.labels(self.group_id, topic).inc()
                return Outcome.DEFERRED
            except _Interrupted:
                logger.info("stopping with a record unfinished", extra={**where, "event_id": str(event.id)})
                return Outcome.INTERRUPTED
            if last_error is not None:
                return self._dead_letter(
                    message,
                    headers,
                    report,
                    reason="handler",
                    error=last_error,
                    attempts=self.max_attempts,
                    failed=failed,
                )
        KAFKA_RECORDS_CONSUMED.labels(self.group_id, topic).inc()
        return Outcome.HANDLED

    def _apply(
        self, sub: bus.Subscription, event: ReceivedEvent, report: ConsumeReport, where: dict[str, Any]
    ) -> BaseException | None:
        """Run one handler with retries. None when it committed (or already had); the last
        error when the attempts ran out."""
        last_error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                applied = run_handler(sub, event, after_commit=False)
            except TRANSIENT_ERRORS as error:
                raise _Deferred(f"{sub.name}: {error!r}") from error
            except Exception as error:  # any handler error is retried, then dead-lettered
                HANDLER_FAILURES.labels(sub.name).inc()
                logger.warning(
                    "handler failed",
                    extra={
                        **where,
                        "handler": sub.name,
                        "event_id": str(event.id),
                        "attempt": attempt,
                        "error": repr(error),
                    },
                )
                last_error = error
                if attempt < self.max_attempts and not _interruptible_sleep(self.stop, self._backoff(attempt)):
                    raise _Interrupted from error
                continue
            if applied:
                report.applied += 1
                EVENTS_HANDLED.labels(sub.name).inc()
            else:
                report.duplicates += 1
            return None
        return last_error

    def _backoff(self, attempt: int) -> float:
        delay = min(MAX_PAUSE_SECONDS, self.retry_base_seconds * 2.0 ** (attempt - 1))
        return delay * random.uniform(0.8, 1.2)  # jitter keeps the retries of a burst apart

    def _dead_letter(
        self,
        message: Message,
        headers: Headers,
        report: ConsumeReport,
        *,
        reason: str,
        error: BaseException,
        attempts: int,
        failed: list[str],
    ) -> Outcome:
        topic = message.topic() or ""
        marks = [
            ("dlq_original_topic", topic),
            ("dlq_original_partition", str(message.partition())),
            ("dlq_original_offset", str(message.offset())),
            ("dlq_consumer_group", self.group_id),
            ("dlq_error", error_text(error)),
            ("dlq_attempts", str(attempts)),
            ("dlq_failed_handler", ",".join(failed)),
            ("dlq_reason", reason),
        ]
        replaced = {name for name, _ in marks}
        letter = OutgoingRecord(
            topic=dlq_topic(topic),
            key=message.key(),
            value=message.value(),
            headers=[(name, value) for name, value in headers if name not in replaced]
            + [(name, value.encode()) for name, value in marks],
        )
        try:
            if self._dlq is None:
                self._dlq = AcknowledgedProducer()
            self._dlq.send([letter])
        except (DeliveryFailed, KafkaException) as failure:
            logger.error("dead letter not acknowledged", extra={"topic": letter.topic, "error": str(failure)})
            KAFKA_RECORDS_DEFERRED.labels(self.group_id, topic).inc()
            return Outcome.DEFERRED
        report.dead_lettered += 1
        KAFKA_RECORDS_DEAD_LETTERED.labels(self.group_id, topic, reason).inc()
        logger.error(
            "record dead-lettered",
            extra={
                "group": self.group_id,
                "topic": topic,
                "partition": message.partition(),
                "offset": message.offset(),
                "dlq_topic": letter.topic,
                "reason": reason,
                "handlers": failed,
                "attempts": attempts,
                "error": error_text(error),
            },
        )
        return Outcome.DEAD_LETTERED


# -- replaying dead letters -----------------------------------------------------------------


def replayed_record(message: Message) -> OutgoingRecord:
    """A dead letter on its way back: original topic, key and value, its headers without the
    `dlq_*` ones, and where in the DLQ it came from."""
    headers = raw_headers(message)
    marks = decoded_headers(headers)
    source = message.topic() or ""
    original = marks.get("dlq_original_topic") or source.removeprefix(DLQ_PREFIX)
    kept = [(name, value) for name, value in headers if not name.startswith(DLQ_HEADER_PREFIX)]
    return OutgoingRecord(
        topic=original,
        key=message.key(),
        value=message.value(),
        headers=[
            *kept,
            ("dlq_replayed_from_offset", str(message.offset()).encode()),
            ("dlq_replayed_from_partition", str(message.partition()).encode()),
        ],
    )


def replay_dlq(
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
    consumer = Consumer(consumer_config(group_id, error_cb=_on_client_error, **{"enable.auto.commit": False}))
    membership = Membership(group_id)
    membership.subscribe(consumer, [dlq_topic(topic)])
    producer = AcknowledgedProducer()
    replayed = 0
    try:
        while not stop.stopped and (max_records is None or replayed < max_records):
            if membership.idle_for() >= idle_timeout:
                break
            limit = batch_size if max_records is None else min(batch_size, max_records - replayed)
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
            producer.send([replayed_record(message) for message in batch])
            consumer.commit(offsets=_next_offsets(batch), asynchronous=False)
            replayed += len(batch)
            KAFKA_DEAD_LETTERS_REPLAYED.labels(topic).inc(len(batch))
            logger.info("dead letters replayed", extra={"topic": topic, "records": len(batch)})
    finally:
        consumer.close()
        producer.close()
    return replayed
