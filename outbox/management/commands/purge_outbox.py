from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from outbox.housekeeping import purge


class Command(BaseCommand):
    help = "Delete outbox rows that were shipped and dispatched, and old inbox records (see the retention settings)."

    def handle(self, *args: Any, **options: Any) -> None:
        report = purge()
        self.stdout.write(
            f"deleted {report.outbox_events} outbox event(s), {report.inbox_records} inbox record(s), "
            f"{report.dead_letters} replayed dead letter(s)"
        )
