"""Celery tasks of the payments context."""

from __future__ import annotations

from celery import shared_task

from apps.payments import services


@shared_task(name="apps.payments.tasks.flag_overdue_payments")
def flag_overdue_payments() -> int:
    return len(services.payments_flag_overdue())
