"""Celery tasks of the fraud context: the periodic expiry of reviews nobody decided."""

from __future__ import annotations

from celery import shared_task

from apps.fraud import services


@shared_task(name="apps.fraud.tasks.expire_fraud_reviews")
def expire_fraud_reviews() -> int:
    expired = 0
    while True:
        done = services.reviews_expire()
        expired += done
        if done == 0:
            return expired
