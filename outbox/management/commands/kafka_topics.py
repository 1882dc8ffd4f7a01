from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from fintech.kafka.admin import describe_topics, ensure_topics
from fintech.kafka.topics import all_topics


class Command(BaseCommand):
    help = "Create every topic of the contract and its dlq. twin (idempotent), then list them."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partitions", type=int, default=settings.KAFKA_TOPIC_PARTITIONS)
        parser.add_argument("--replication", type=int, default=settings.KAFKA_TOPIC_REPLICATION)
        parser.add_argument("--list", action="store_true", help="Only list the topics on the cluster.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["list"]:
            created = ensure_topics(all_topics(), partitions=options["partitions"], replication=options["replication"])
            self.stdout.write(f"created {len(created)} topic(s)")
        for name, partitions in sorted(describe_topics().items()):
            self.stdout.write(f"{name}\t{partitions} partition(s)")
