from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone

from apps.analytics import selectors
from apps.analytics.models import DailyFigure

COLUMNS = ["day", "currency", "metric", "count", "volume"]


class Command(BaseCommand):
    help = "Write the daily figures of a period as CSV (day, currency, metric, count, volume in minor units)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--from", dest="day_from", type=date.fromisoformat, help="First day (default: 29 days ago)."
        )
        parser.add_argument(
            "--to", dest="day_to", type=date.fromisoformat, help="Last day, inclusive (default: today)."
        )
        parser.add_argument("--output", help="A file to write (default: standard output).")

    def handle(self, *args: Any, **options: Any) -> None:
        day_to: date = options["day_to"] or timezone.now().date()
        day_from: date = options["day_from"] or day_to - timedelta(days=29)
        if day_from > day_to:
            raise CommandError("--from must not be after --to")
        figures = selectors.figures_between(day_from=day_from, day_to=day_to)
        if options["output"]:
            with open(options["output"], "w", newline="") as out:
                _write(out, figures)
        else:
            text = io.StringIO()
            _write(text, figures)
            self.stdout.write(text.getvalue(), ending="")


def _write(out: TextIO, figures: QuerySet[DailyFigure]) -> None:
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for figure in figures.iterator():
        writer.writerow([figure.day.isoformat(), figure.currency, figure.metric, figure.count, figure.volume])
