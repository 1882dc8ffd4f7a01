"""`manage.py startcontext <name> [--root DIR] [--register]`: a new bounded context, born in the
shape of the others (fintech/contexts/shape.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from fintech.contexts import shape


class Command(BaseCommand):
    help = (
        "Lay out apps/<name>/ in the standard shape of a context and add it to pyproject.toml's import-linter "
        "contracts. With --register, also to INSTALLED_APPS and the API's URLs; without, print those lines."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The context's name and app label, e.g. fraud.")
        parser.add_argument("--root", type=Path, default=None, help="The repository to write into (default: this one).")
        parser.add_argument(
            "--register",
            action="store_true",
            help="Add the app to config/settings.py INSTALLED_APPS and its API to config/urls.py.",
        )

    def handle(self, *args: Any, name: str, root: Path | None, register: bool, **options: Any) -> None:
        root = (root or Path(settings.BASE_DIR)).resolve()
        try:
            shape.check_name(name, taken_labels={config.label for config in apps.get_app_configs()})
            written = shape.lay_out(root, name)
            self._edit(root / "pyproject.toml", shape.add_to_import_contracts, name)
            if register:
                self._edit(root / "config" / "settings.py", shape.register_in_settings, name)
                self._edit(root / "config" / "urls.py", shape.register_in_urls, name)
        except (shape.ShapeError, OSError) as error:
            raise CommandError(str(error)) from None
        for path in written:
            self.stdout.write(f"created {path.relative_to(root)}")
        self.stdout.write(f"pyproject.toml: apps.{name} added to the import-linter contracts")
        if register:
            self.stdout.write(f"config/settings.py: apps.{name} installed; config/urls.py: its API included")
        else:
            self.stdout.write("Add to config/settings.py INSTALLED_APPS, after the other contexts:")
            self.stdout.write(f"    {shape.installed_app_line(name)}")
            self.stdout.write("Add to config/urls.py api_v1:")
            self.stdout.write(f"    {shape.api_urls_line(name)}")
        self.stdout.write(
            "Then: event schemas in fintech/events/schemas/<type>/v1.json, each new operation in "
            "tests/test_authorization_matrix.py, a row in README.md's parts and docs/architecture.md's layout, "
            "`make schema`, `make lint`."
        )

    @staticmethod
    def _edit(path: Path, edit: Callable[[str, str], str], name: str) -> None:
        path.write_text(edit(path.read_text(), name))
