from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Transfer(models.Model):
    """A transfer between two accounts of this bank, moved by the event choreography:
    initiated (amount held) -> validated -> completed, or failed (hold voided)."""

    class Status(models.TextChoices):
        INITIATED = "initiated"
        VALIDATED = "validated"
        REVIEW = "review"
        COMPLETED = "completed"
        FAILED = "failed"

    FINAL = frozenset({Status.COMPLETED, Status.FAILED})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    from_account_id = models.UUIDField()
    to_account_id = models.UUIDField()
    from_customer_id = models.UUIDField()
    to_customer_id = models.UUIDField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    description = models.CharField(max_length=140, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.INITIATED)
    failure_code = models.CharField(max_length=50, blank=True)
    failure_detail = models.CharField(max_length=280, blank=True)
    initiated_by = models.CharField(max_length=200)
    journal_transaction_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="transfer_amount_positive"),
            models.CheckConstraint(
                condition=~Q(from_account_id=models.F("to_account_id")), name="transfer_two_accounts"
            ),
        ]
        indexes = [
            models.Index(fields=["from_account_id", "created_at"], name="transfers_from_account"),
            models.Index(fields=["to_account_id", "created_at"], name="transfers_to_account"),
            models.Index(fields=["status", "created_at"], name="transfers_by_status"),
        ]

    def __str__(self) -> str:
        return f"transfer {self.id} {self.amount} {self.currency} ({self.status})"


class Deposit(models.Model):
    """Money brought into an account from outside (a teller, the cash-in system)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account_id = models.UUIDField(db_index=True)
    customer_id = models.UUIDField()
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reference = models.CharField(
        max_length=120, unique=True, help_text="The depositor's reference, for reconciliation."
    )
    made_by = models.CharField(max_length=200)
    journal_transaction_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="deposit_amount_positive")]

    def __str__(self) -> str:
        return f"deposit {self.reference} {self.amount} {self.currency}"
