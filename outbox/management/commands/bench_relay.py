"""Benchmark: events/s shipped from the database to Kafka by one relay, against the raw
confluent-kafka producer rate for the same records. Bounded in count; loopback broker only."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.utils import timezone

from fintech.kafka.admin import ensure_topics
from fintech.kafka.producer import BatchProducer
from outbox.models import OutboxEvent
from outbox.relay import relay_batch
from outbox.sinks import KafkaSink, OutgoingEvent

BENCH_TYPE = "bench.relay"
WARM_UP_EVENTS = 10_000


class Command(BaseCommand):
    help = "Measure the relay's events/s to Kafka and the raw producer's rate for the same records."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=50_000)
        parser.add_argument("--size", type=int, default=1024, help="Approximate bytes per event.")
        parser.add_argument("--batch-size", type=int, default=2_000)
        parser.add_argument("--rounds", type=int, default=3, help="Runs; the median of each rate is reported.")
        parser.add_argument("--json", action="store_true", help="Print the result as one JSON object.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.KAFKA_BOOTSTRAP_SERVERS:
            raise CommandError("KAFKA_BOOTSTRAP_SERVERS must name the broker to measure against")
        events = min(options["events"], 1_000_000)
        if OutboxEvent.objects.filter(sent_at__isnull=True).exists():
            raise CommandError("The outbox has unsent events; run the benchmark on a drained outbox")
        ensure_topics([BENCH_TYPE], partitions=settings.KAFKA_TOPIC_PARTITIONS, replication=1)
        # A warm-up round, not counted: the first connections, topic metadata and cold caches
        # would otherwise weigh on whichever side runs first.
        self._round(min(events, WARM_UP_EVENTS), options["size"], options["batch_size"])
        rounds = [self._round(events, options["size"], options["batch_size"]) for _ in range(max(options["rounds"], 1))]
        relay_rates = sorted(r[0] for r in rounds)
        raw_rates = sorted(r[1] for r in rounds)
        result = {
            "database": connection.vendor,
            "events": events,
            "event_bytes": rounds[0][2],
            "batch_size": options["batch_size"],
            "rounds": len(rounds),
            "relay_events_per_second": relay_rates[len(rounds) // 2],
            "raw_producer_events_per_second": raw_rates[len(rounds) // 2],
            "relay_rates": relay_rates,
            "raw_rates": raw_rates,
        }
        result["relay_to_raw_ratio"] = round(
            result["relay_events_per_second"] / result["raw_producer_events_per_second"], 2
        )
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        for name, value in result.items():
            self.stdout.write(f"{name}: {value}")

    def _round(self, events: int, size: int, batch_size: int) -> tuple[int, int, int]:
        """One measurement: (relay events/s, raw producer events/s, bytes per event)."""
        rows = self._write_events(events, size)
        try:
            sink = KafkaSink()
            started = time.perf_counter()
            shipped = 0
            while batch := relay_batch(sink, batch_size=batch_size):
                shipped += batch
            relay_seconds = time.perf_counter() - started
            sink.close()

            # The same records, straight from memory to the same producer configuration.
            records = [KafkaSink.record(OutgoingEvent.of(row)) for row in rows]
            producer = BatchProducer()
            started = time.perf_counter()
            for offset in range(0, len(records), batch_size):
                producer.send(records[offset : offset + batch_size])
            raw_seconds = time.perf_counter() - started
            producer.close()
        finally:
            OutboxEvent.objects.filter(event_type=BENCH_TYPE).delete()
        if shipped != events:
            raise CommandError(f"the relay shipped {shipped} of {events} events")
        return round(shipped / relay_seconds), round(len(records) / raw_seconds), len(records[0][2] or b"")

    def _write_events(self, count: int, size: int) -> list[OutboxEvent]:
        now = timezone.now()
        padding = "x" * max(size - 420, 0)  # the envelope's own fields take about 420 bytes
        rows = []
        for _ in range(count):
            event_id = uuid.uuid4()
            aggregate = str(uuid.uuid4())
            rows.append(
                OutboxEvent(
                    event_id=event_id,
                    event_type=BENCH_TYPE,
                    schema_version=1,
                    source="bench",
                    aggregate_id=aggregate,
                    envelope={
                        "specversion": "1.0",
                        "id": str(event_id),
                        "type": BENCH_TYPE,
                        "source": "/fintech/bench",
                        "subject": aggregate,
                        "time": now.isoformat(),
                        "dataschema": f"{BENCH_TYPE}/v1",
                        "datacontenttype": "application/json",
                        "data": {"aggregate_id": aggregate, "amount": 1050, "currency": "BRL", "note": padding},
                    },
                    headers={"traceparent": f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"},
                    created_at=now,
                    dispatched_at=now,
                )
            )
        OutboxEvent.objects.bulk_create(rows, batch_size=5_000)
        return rows
