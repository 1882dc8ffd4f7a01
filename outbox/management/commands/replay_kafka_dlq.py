from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from fintech.kafka.topics import DLQ_PREFIX, dlq_topic
from outbox.kafka_dead_letters import replay_kafka_dlq
from outbox.loop import StopSignal


class Command(BaseCommand):
    help = (
        "Re-publish the Kafka dead letters of dlq.<topic> to their original topic (after the fix), as the group "
        "fintech.dlq-replay.<topic>; stops when nothing arrived for --idle-timeout seconds. The in-process "
        "handlers' dead letters are replay_handler_dead_letters'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("topic", help="The original topic, e.g. customer.created (reads dlq.customer.created).")
        parser.add_argument("--max", type=int, default=None, help="Replay at most this many records.")
        parser.add_argument("--idle-timeout", type=float, default=5.0, help="Stop after this many idle seconds.")
        parser.add_argument("--group-id", help="Override the Kafka group id (default fintech.dlq-replay.<topic>).")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = StopSignal()
        stop.install()
        replayed = replay_kafka_dlq(
            options["topic"],
            max_records=options["max"],
            idle_timeout=options["idle_timeout"],
            stop=stop,
            group_id=options["group_id"],
        )
        self.stdout.write(f"replayed {replayed} record(s) from {dlq_topic(options['topic'].removeprefix(DLQ_PREFIX))}")
