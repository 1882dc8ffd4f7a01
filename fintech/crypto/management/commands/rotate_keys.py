"""`manage.py rotate_keys [--chunk-size N]`: re-encrypt every encrypted column under the active key.

Run it after putting a new key first in FINTECH_ENCRYPTION_KEYS, and remove the old key only
after it finished. It covers every model with encrypted fields (not only customers), walks
each in chunks under row locks, skips values already under the active key, and can be stopped
and run again at any time.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fintech.crypto.cipher import CryptoError
from fintech.crypto.keyring import key_ring
from fintech.crypto.rotation import ChunkProgress, encrypted_fields, rotate_model


class Command(BaseCommand):
    help = "Re-encrypt every encrypted column under the active key of FINTECH_ENCRYPTION_KEYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=500, help="Rows per transaction (default 500).")

    def handle(self, *args: Any, chunk_size: int, **options: Any) -> None:
        if chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1")
        ring = key_ring()
        self.stdout.write(f"Active key: {ring.active_kid} (ring: {', '.join(ring.kids)})")
        total = 0
        for model, fields in encrypted_fields():
            columns = ", ".join(field.name for field in fields)
            self.stdout.write(f"{model._meta.label}: {columns}")
            try:
                rewritten = rotate_model(model, fields, chunk_size=chunk_size, on_chunk=self._progress)
            except CryptoError as error:
                raise CommandError(f"{model._meta.label}: {error}") from None
            self.stdout.write(f"{model._meta.label}: {rewritten} value(s) re-encrypted under {ring.active_kid}")
            total += rewritten
        self.stdout.write(self.style.SUCCESS(f"Done: {total} value(s) re-encrypted."))

    def _progress(self, progress: ChunkProgress) -> None:
        self.stdout.write(
            f"  {progress.model}: {progress.rows_seen}/{progress.rows_total} rows, "
            f"{progress.values_rewritten} value(s) re-encrypted"
        )
