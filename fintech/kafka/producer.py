"""Produce a batch and wait until the broker acknowledged every record of it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from fintech.kafka.config import producer_config

# topic, key, value, headers (values str or bytes): a plain tuple, built cheaply per record. A
# dead letter keeps its original record's key and value, which Kafka allows to be null.
Record = tuple[str, bytes | None, bytes | None, list[tuple[str, str | bytes | None]]]


class DeliveryFailed(RuntimeError):
    """At least one record of the batch was not acknowledged; none may be marked sent."""


class BatchProducer:
    def __init__(self, **overrides: object) -> None:
        self._producer = Producer(producer_config(**overrides))

    def send(
        self, records: Iterable[Record], *, timeout: float = 30.0, handed_over: Callable[[], None] | None = None
    ) -> None:
        """Produce every record, then wait for the broker to acknowledge them all. `handed_over`
        runs in between, while the records are on their way: work that may overlap with the
        wait, as long as it only takes effect once `send` has returned."""
        errors: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                errors.append(error)

        produce = self._producer.produce
        for count, (topic, key, value, headers) in enumerate(records, 1):
            while True:
                try:
                    produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.05)  # the local queue is full: let deliveries drain
                except KafkaException as error:
                    raise DeliveryFailed(str(error)) from error
            if count % 1000 == 0:
                self._producer.poll(0)  # serve delivery reports as they come, not all at the end
        if handed_over is not None:
            handed_over()
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryFailed(f"{remaining} record(s) not acknowledged within {timeout:.0f}s")
        if errors:
            raise DeliveryFailed(f"{len(errors)} record(s) refused, first: {errors[0]}")

    def close(self, timeout: float = 1.0) -> None:
        # Whatever is still queued was never acknowledged, so its rows stay unsent and will be
        # shipped again: no point waiting long for a broker that may be away.
        self._producer.flush(timeout)
