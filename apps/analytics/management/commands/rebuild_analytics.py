from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.analytics import services

BAR_WIDTH = 40


class Command(BaseCommand):
    help = (
        "Recompute every daily figure from the recorded facts (one per event and metric), with a progress bar. "
        "The figures of a database whose facts are intact come out the same as the live ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days-per-step", type=int, default=31, help="Days recomputed per statement.")

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(done: int, total: int) -> None:
            filled = BAR_WIDTH * done // total if total else BAR_WIDTH
            self.stdout.write(f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} days", ending="")
            self.stdout.flush()

        figures = services.figures_rebuild(days_per_step=options["days_per_step"], progress=progress)
        self.stdout.write(f"\nrebuilt {figures} daily figures")
