from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from fintech.api.idempotency import purge_expired


class Command(BaseCommand):
    help = "Delete stored Idempotency-Key outcomes past FINTECH_IDEMPOTENCY_TTL_SECONDS."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"deleted {purge_expired()} expired idempotency record(s)")
