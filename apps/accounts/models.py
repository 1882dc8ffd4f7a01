from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class BankAccount(models.Model):
    """A customer's account. Its money lives in the ledger account that backs it
    (`apps.ledger`, keyed by this id); this row holds identity and status."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        BLOCKED = "blocked"
        CLOSED = "closed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=10, unique=True)
    branch = models.CharField(max_length=4, default="0001")
    customer_id = models.UUIDField(db_index=True)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=280, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "blocked", "closed"]), name="bank_account_status_known"
            )
        ]

    def __str__(self) -> str:
        return f"{self.branch}/{self.number} ({self.currency})"
