from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.payments import services
from outbox.loop import run_until_stopped


class Command(BaseCommand):
    help = (
        "Flag for operations the payments the network has not answered within "
        "FINTECH_PAYMENT_ANSWER_TIMEOUT_SECONDS (log, metric, admin list). Nothing is returned by itself."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every", type=float, default=None, help="Keep checking every this many seconds until SIGTERM."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["every"] is None:
            flagged = services.payments_flag_overdue()
            self.stdout.write(f"flagged={len(flagged)}")
            return

        def step() -> int:
            services.payments_flag_overdue()
            return 0  # then wait `every` seconds

        run_until_stopped(step, idle_seconds=options["every"], name="overdue payments")
