from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.notifications import services
from outbox.loop import run_until_stopped


class Command(BaseCommand):
    help = (
        "Send the notifications that are due (e-mail, push webhook), retrying failures with backoff: "
        "a pass every --interval seconds while idle, until SIGTERM/SIGINT; or one pass with --once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="One pass, then exit.")
        parser.add_argument("--interval", type=float, default=0.5, help="Seconds between passes when idle.")
        parser.add_argument("--limit", type=int, default=100, help="Notifications per pass.")

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"]
        if options["once"]:
            report = services.notifications_deliver(limit=limit)
            self.stdout.write(
                f"sent={report.sent} retrying={report.retrying} failed={report.failed} cancelled={report.cancelled}"
            )
            return
        run_until_stopped(
            lambda: services.notifications_deliver(limit=limit).attempted,
            idle_seconds=options["interval"],
            name="deliver_notifications",
        )
