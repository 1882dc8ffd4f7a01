from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.fraud import services
from outbox.loop import run_until_stopped


class Command(BaseCommand):
    help = (
        "Reject the transfers and payments held for review that nobody decided within "
        "FINTECH_FRAUD_REVIEW_TIMEOUT_HOURS, releasing their holds: until stopped, or once with --once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Expire what is due now, then exit.")
        parser.add_argument("--idle", type=float, default=60.0, help="Seconds to wait when nothing is due.")
        parser.add_argument("--batch-size", type=int, default=200, help="Reviews expired in one transaction.")

    def handle(self, *args: Any, **options: Any) -> None:
        limit = max(1, options["batch_size"])

        def step() -> int:
            return services.reviews_expire(limit=limit)

        if options["once"]:
            total = 0
            while done := step():
                total += done
            self.stdout.write(f"expired={total}")
            return
        run_until_stopped(step, idle_seconds=options["idle"], name="fraud-review-expiry")
