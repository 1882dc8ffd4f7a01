from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from outbox import dispatcher
from outbox.loop import run_until_stopped


class Command(BaseCommand):
    help = (
        "Deliver undispatched outbox events to their handlers until stopped: events a crash left "
        "behind, handlers whose retry time has come, and, with FINTECH_EVENT_DISPATCH=worker, all events. "
        "A lost database is waited for, not fatal."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="Deliver what is due now, then exit.")
        parser.add_argument(
            "--grace",
            type=float,
            default=None,
            help="Only events older than this many seconds (default FINTECH_SWEEP_GRACE_SECONDS; 0 for all).",
        )
        parser.add_argument("--idle", type=float, default=1.0, help="Seconds to wait when nothing is due.")
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Events delivered in one unit of work (default 500)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        limit = max(1, options["batch_size"])

        def step() -> int:
            report = dispatcher.sweep(grace_seconds=options["grace"], limit=limit)
            return report.handled + report.dead_lettered

        if options["once"]:
            total = dispatcher.DispatchReport()
            while True:
                report = dispatcher.sweep(grace_seconds=options["grace"], limit=limit)
                total.merge(report)
                if report.events == 0 or report.events == len(report.pending_event_ids):
                    break
            self.stdout.write(
                f"events={total.events} handled={total.handled} failed={total.failed} "
                f"dead_lettered={total.dead_lettered} waiting={len(set(total.pending_event_ids))}"
            )
            return
        run_until_stopped(step, idle_seconds=options["idle"], name="dispatcher")
