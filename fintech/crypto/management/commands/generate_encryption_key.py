"""`manage.py generate_encryption_key [--kid k2]`: print a fresh key entry for FINTECH_ENCRYPTION_KEYS.

Without --kid it prints a bare key, for FINTECH_BLIND_INDEX_KEY. It writes nothing anywhere.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fintech.crypto.keyring import KeyRingError, generate_key, parse_key_ring


class Command(BaseCommand):
    help = "Print a new random 32-byte key: `kid:key` with --kid, a bare key without."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kid", default="", help="The key id, e.g. k2 (letters, digits, '-', '_').")

    def handle(self, *args: Any, kid: str, **options: Any) -> None:
        key = generate_key()
        if not kid:
            self.stdout.write(key)
            return
        entry = f"{kid}:{key}"
        try:
            parse_key_ring([entry])
        except KeyRingError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(entry)
