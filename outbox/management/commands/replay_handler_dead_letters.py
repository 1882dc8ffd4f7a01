from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from outbox import dispatcher
from outbox.models import DeadLetter


class Command(BaseCommand):
    help = (
        "Give the in-process handlers' dead-lettered deliveries (the DeadLetter table) a fresh set of attempts, "
        "after the cause was fixed. Kafka's dead letters are replay_kafka_dlq's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--handler", help="Only dead letters of this handler.")
        parser.add_argument("--event-id", type=uuid.UUID, help="Only this event.")
        parser.add_argument("--list", action="store_true", help="List open dead letters and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            for letter in DeadLetter.objects.filter(replayed_at__isnull=True).order_by("id"):
                first_line = letter.error.strip().splitlines()[-1] if letter.error.strip() else ""
                self.stdout.write(
                    f"{letter.pk}\t{letter.event_type}\t{letter.event_id}\t{letter.handler}\t{first_line}"
                )
            return
        report = dispatcher.replay_dead_letters(handler=options["handler"], event_id=options["event_id"])
        self.stdout.write(
            f"replayed events={report.events} handled={report.handled} failed={report.failed} "
            f"dead_lettered={report.dead_lettered}"
        )
