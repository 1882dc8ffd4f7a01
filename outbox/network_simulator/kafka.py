"""The simulated payment network over real Kafka, until SIGTERM (`manage.py simulate_payment_network`).

It is an outside party with a consumer group of its own (`payment-network-simulator` by default).
It reads what the bank sends the network, `payment.requested` and `payment.credit_returned`, in
batches; waits `delay` seconds (the network's time to clear); answers each request on
`payment.processed` and records the bank's returns of credits; and only once the broker has
acknowledged its answers commits its offsets, so a simulator killed mid-batch answers that batch
again when it comes back (at least once, like a real network: the bank books each answer once).
Credits for our customers go out on `payment.received` when it starts.

A record that is not a valid event of its topic is logged and passed over: the network does not
answer what it cannot read.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message
from django.utils import timezone

from fintech.kafka.config import consumer_config
from fintech.kafka.producer import BatchProducer
from outbox.consumer import PoisonRecord, read_event
from outbox.kafka_group import (
    Membership,
    decoded_headers,
    interruptible_sleep,
    next_offsets,
    on_client_error,
    raw_headers,
)
from outbox.loop import StopSignal
from outbox.network_simulator.network import PaymentNetwork
from outbox.sinks import KafkaSink, OutgoingEvent

logger = logging.getLogger("fintech.payment_network_simulator")

DEFAULT_GROUP_ID = "payment-network-simulator"
REQUESTS = "payment.requested"
CREDIT_RETURNS = "payment.credit_returned"
BATCH_RECORDS = 500


@dataclass(frozen=True, slots=True)
class CreditOrder:
    """`--credit <account number> <amount>`: a credit the network brings for one of our accounts."""

    account_number: str
    amount: int
    currency: str
    branch: str = "0001"


@dataclass
class SimulatorReport:
    requests: int = 0  # payment requests answered
    answers: int = 0  # payment.processed messages sent (duplicates included)
    credits: int = 0  # payment.received messages sent (duplicates included)
    credit_returns: int = 0  # the bank's returns of credits recorded
    unreadable: int = 0  # records passed over


def record_of(envelope: dict[str, Any]) -> Any:
    """The Kafka record of a network message: the same shape as the relay's records."""
    return KafkaSink.record(
        OutgoingEvent(
            id=0,
            event_id=uuid.UUID(envelope["id"]),
            event_type=envelope["type"],
            aggregate_id=envelope["subject"],
            envelope_json=json.dumps(envelope, separators=(",", ":")),
            headers={},
        )
    )


class KafkaNetworkSimulator:
    def __init__(
        self,
        network: PaymentNetwork,
        *,
        delay: float = 1.0,
        group_id: str = DEFAULT_GROUP_ID,
        stop: StopSignal | None = None,
        poll_timeout: float = 0.5,
    ) -> None:
        self.network = network
        self.delay = max(0.0, delay)
        self.group_id = group_id
        self.stop = stop or StopSignal()
        self.poll_timeout = poll_timeout
        self._producer: BatchProducer | None = None

    def _send(self, envelopes: Sequence[dict[str, Any]]) -> None:
        if not envelopes:
            return
        if self._producer is None:
            self._producer = BatchProducer()
        self._producer.send([record_of(envelope) for envelope in envelopes])

    def send_credits(self, orders: Sequence[CreditOrder], report: SimulatorReport) -> None:
        envelopes = []
        for order in orders:
            envelopes += self.network.credit(
                account_number=order.account_number,
                amount=order.amount,
                currency=order.currency,
                branch=order.branch,
                now=timezone.now(),
            )
        self._send(envelopes)
        report.credits += len(envelopes)
        for envelope in envelopes:
            logger.info(
                "credit sent", extra={"end_to_end_id": envelope["subject"], "amount": envelope["data"]["amount"]}
            )

    def _handle(self, messages: list[Message], report: SimulatorReport) -> None:
        answers: list[dict[str, Any]] = []
        for message in messages:
            topic = message.topic() or ""
            try:
                event = read_event(topic, message.value(), decoded_headers(raw_headers(message)))
            except PoisonRecord as error:
                report.unreadable += 1
                where = {"topic": topic, "offset": message.offset(), "error": str(error)}
                logger.warning("record passed over", extra=where)
                continue
            if event.type == REQUESTS:
                answers += self.network.answer(event.data, now=timezone.now())
                report.requests += 1
            else:
                self.network.credit_returned(event.data)
                report.credit_returns += 1
        self._send(answers)
        report.answers += len(answers)
        for answer in answers:
            logger.info(
                "payment answered",
                extra={"payment_id": answer["subject"], "status": answer["data"]["status"]},
            )

    def run(self, *, credits: Sequence[CreditOrder] = (), idle_timeout: float | None = None) -> SimulatorReport:
        """Play the network until stopped (or until nothing arrived for `idle_timeout` seconds)."""
        report = SimulatorReport()
        consumer = Consumer(consumer_config(self.group_id, error_cb=on_client_error, **{"enable.auto.commit": False}))
        membership = Membership(self.group_id)
        membership.subscribe(consumer, [REQUESTS, CREDIT_RETURNS])
        logger.info("payment network simulator started", extra={"group": self.group_id, "delay": self.delay})
        try:
            self.send_credits(credits, report)
            while not self.stop.stopped:
                if idle_timeout is not None and membership.idle_for() >= idle_timeout:
                    break
                batch = []
                for message in consumer.consume(num_messages=BATCH_RECORDS, timeout=self.poll_timeout):
                    error = message.error()
                    if error is None:
                        batch.append(message)
                    elif error.fatal():
                        raise KafkaException(error)
                    else:
                        logger.warning("simulator consumer error", extra={"error": str(error)})
                if not batch:
                    continue
                membership.touch()
                if not interruptible_sleep(self.stop, self.delay):
                    break  # stopped while clearing: the batch is answered by the next run
                self._handle(batch, report)
                consumer.commit(offsets=next_offsets(batch), asynchronous=False)
                membership.touch()
        finally:
            consumer.close()
            if self._producer is not None:
                self._producer.close(timeout=10)
        logger.info("payment network simulator stopped", extra={"report": report.__dict__})
        return report
