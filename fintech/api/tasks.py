"""Celery tasks of the API kernel."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="fintech.api.tasks.purge_idempotency_keys")
def purge_idempotency_keys() -> int:
    from fintech.api.idempotency import purge_expired

    return purge_expired()
