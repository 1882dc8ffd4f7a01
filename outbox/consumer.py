"""The Kafka consumer runner: a context's handlers applied to the records of its topics.

`ConsumerRunner("ledger")` joins the consumer group `fintech.ledger` and runs every bus
subscription named `ledger.*` on the topics those subscriptions read: a record that is not a
valid event of its topic is poison and goes straight to `dlq.<topic>`; each handler runs
through the inbox, with retries, and a record whose handler keeps failing goes to
`dlq.<topic>` too (`outbox.kafka_dead_letters`); the offset is stored only once the record is
finished with. A database or DLQ outage puts the record back instead. docs/events.md ("Kafka
consumers") tells the whole story.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from fintech import backoff, bus
from fintech.events import ReceivedEvent
from fintech.kafka.config import consumer_config
from fintech.kafka.producer import BatchProducer, DeliveryFailed
from fintech.kafka.topics import DLQ_PREFIX
from fintech.observability import context
from outbox.dispatcher import received_from_envelope, run_handler
from outbox.kafka_dead_letters import DEAD_LETTER_TIMEOUT_SECONDS, dead_letter, error_text
from outbox.kafka_group import (
    Membership,
    decoded_headers,
    interruptible_sleep,
    on_client_error,
    position,
    raw_headers,
)
from outbox.loop import StopSignal
from outbox.metrics import (
    EVENTS_HANDLED,
    HANDLER_FAILURES,
    KAFKA_RECORDS_CONSUMED,
    KAFKA_RECORDS_DEAD_LETTERED,
    KAFKA_RECORDS_DEFERRED,
)

logger = logging.getLogger("fintech.consumer")

MAX_PAUSE_SECONDS = 30.0
MIN_DEFER_PAUSE_SECONDS = 0.5
# Errors of the infrastructure, not of the record or the handler's logic.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


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
            raise ValueError("Dead letters are re-published with replay_kafka_dlq, not consumed")
        self.max_attempts = max(1, settings.KAFKA_CONSUMER_MAX_ATTEMPTS if max_attempts is None else max_attempts)
        self.retry_base_seconds = float(
            settings.KAFKA_CONSUMER_RETRY_BASE_SECONDS if retry_base_seconds is None else retry_base_seconds
        )
        self.stop = stop or StopSignal()
        self.poll_timeout = poll_timeout
        self._dlq: BatchProducer | None = None

    # -- the loop -------------------------------------------------------------------------

    def run(self, max_records: int | None = None, idle_timeout: float | None = None) -> ConsumeReport:
        """Consume until stopped, or after `max_records` records were finished with, or once
        nothing arrived for `idle_timeout` seconds. Always closes the consumer (final commit)."""
        report = ConsumeReport()
        consumer = Consumer(consumer_config(self.group_id, error_cb=on_client_error))
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
                    consumer.seek(TopicPartition(*position(message)))
                    base = max(self.retry_base_seconds, MIN_DEFER_PAUSE_SECONDS)
                    pause = min(MAX_PAUSE_SECONDS, base * 2.0 ** (pauses - 1))
                    interruptible_sleep(self.stop, pause)
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
            self._dlq.close(timeout=10)
            self._dlq = None

    # -- one record -----------------------------------------------------------------------

    def process(self, message: Message, report: ConsumeReport) -> Outcome:
        """Apply one record with every matching handler, or dead-letter it."""
        topic = message.topic() or ""
        text_headers = decoded_headers(raw_headers(message))
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
                return self._dead_letter(message, report, reason="poison", error=error, attempts=1, failed=[])
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
                if attempt < self.max_attempts and not interruptible_sleep(self.stop, self._backoff(attempt)):
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
        return backoff.backoff_seconds(attempt, base=self.retry_base_seconds, cap=MAX_PAUSE_SECONDS)

    def _dead_letter(
        self,
        message: Message,
        report: ConsumeReport,
        *,
        reason: str,
        error: BaseException,
        attempts: int,
        failed: list[str],
    ) -> Outcome:
        topic = message.topic() or ""
        letter = dead_letter(
            message, group_id=self.group_id, reason=reason, error=error, attempts=attempts, failed=failed
        )
        try:
            if self._dlq is None:
                self._dlq = BatchProducer()
            self._dlq.send([letter], timeout=DEAD_LETTER_TIMEOUT_SECONDS)
        except (DeliveryFailed, KafkaException) as failure:
            logger.error("dead letter not acknowledged", extra={"topic": letter[0], "error": str(failure)})
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
                "dlq_topic": letter[0],
                "reason": reason,
                "handlers": failed,
                "attempts": attempts,
                "error": error_text(error),
            },
        )
        return Outcome.DEAD_LETTERED
