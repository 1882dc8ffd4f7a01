from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from prometheus_client import start_http_server

from outbox.consumer import ConsumerRunner
from outbox.loop import StopSignal


class Command(BaseCommand):
    help = (
        "Apply Kafka records with a context's handlers (those named <group>.*) as the consumer group "
        "fintech.<group>, until SIGTERM/SIGINT (or --max-records / --idle-timeout)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--group", required=True, help="The context whose handlers run, e.g. ledger.")
        parser.add_argument("--topics", help="Comma-separated topics (default: the event types its handlers read).")
        parser.add_argument("--max-records", type=int, default=None, help="Stop after this many records.")
        parser.add_argument("--idle-timeout", type=float, default=None, help="Stop after this many idle seconds.")
        parser.add_argument("--group-id", help="Override the Kafka group id (default fintech.<group>).")
        parser.add_argument("--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port.")

    def handle(self, *args: Any, **options: Any) -> None:
        topics = [topic.strip() for topic in (options["topics"] or "").split(",") if topic.strip()] or None
        stop = StopSignal()
        try:
            runner = ConsumerRunner(options["group"], topics, stop=stop, group_id=options["group_id"])
        except ValueError as error:
            raise CommandError(str(error)) from error
        if options["metrics_port"] is not None:
            start_http_server(options["metrics_port"])
        stop.install()
        report = runner.run(max_records=options["max_records"], idle_timeout=options["idle_timeout"])
        self.stdout.write(
            f"group={runner.group_id} records={report.records} applied={report.applied} "
            f"duplicates={report.duplicates} dead_lettered={report.dead_lettered} deferred={report.deferred}"
        )
