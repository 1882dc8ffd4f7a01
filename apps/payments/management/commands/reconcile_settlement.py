from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.payments.settlement import reconcile_settlement
from fintech.console import ProgressBar
from fintech.payment_network import SettlementFileError


class Command(BaseCommand):
    help = (
        "Match the payment network's settlement file (CSV) against the bank's payments and credits: "
        "report missing, extra, mismatched and unreadable items; exit non-zero when there is any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The network's settlement file (CSV).")
        parser.add_argument(
            "--date",
            action="append",
            type=date.fromisoformat,
            dest="days",
            help="A day (YYYY-MM-DD) the file covers; repeatable. Default: the days its rows name.",
        )
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        bar = ProgressBar(self.stderr, quiet=options["quiet"])
        try:
            report = reconcile_settlement(
                options["file"],
                days=set(options["days"] or ()),
                progress=lambda done, total: bar("rows", done, total),
            )
        except (OSError, SettlementFileError) as error:
            raise CommandError(f"cannot read the settlement file: {error}") from error
        days = ", ".join(day.isoformat() for day in sorted(report.days)) or "none"
        self.stdout.write(f"read {report.rows} rows for {days}: {report.matched} match our books")
        problems = [
            ("missing", report.missing),
            ("extra", report.extra),
            ("mismatched", report.mismatched),
            ("unreadable", report.unreadable),
        ]
        for name, items in problems:
            if items:
                self.stdout.write(self.style.ERROR(f"{name}: {len(items)}"))
                for item in items:
                    self.stdout.write(f"  - {item}")
        if not report.ok:
            found = ", ".join(f"{len(items)} {name}" for name, items in problems if items)
            raise CommandError(f"the settlement file does not reconcile: {found}")
        self.stdout.write(self.style.SUCCESS("the settlement file reconciles"))
