from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.ledger.reconciliation import reconcile_ledger
from fintech.console import ProgressBar


class Command(BaseCommand):
    help = (
        "Prove the books: balanced journal transactions, balances equal to their entries, zero-sum per currency, "
        "and clearing holding exactly the payments the network has not answered yet."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=20_000)
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = reconcile_ledger(
            chunk_size=options["chunk_size"], progress=ProgressBar(self.stderr, quiet=options["quiet"])
        )
        self.stdout.write(
            f"checked {report.journal_transactions_checked} journal transactions, {report.entries_checked} entries, "
            f"{report.accounts_checked} ledger accounts"
        )
        for currency, net in sorted(report.totals_by_currency.items()):
            self.stdout.write(f"  {currency}: debits - credits = {net}")
        if report.ok:
            self.stdout.write(self.style.SUCCESS("the books reconcile"))
            return
        for problem in report.problems:
            self.stdout.write(self.style.ERROR(f"  - {problem}"))
        raise CommandError(f"the books do not reconcile: {len(report.problems)} problem(s)")
