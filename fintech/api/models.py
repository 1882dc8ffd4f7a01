"""Stored outcomes of requests sent with an `Idempotency-Key`."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class IdempotencyRecord(models.Model):
    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"

    owner = models.CharField(max_length=200, help_text="The token subject that sent the key.")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and canonical body.")
    state = models.CharField(max_length=20, choices=State.choices, default=State.IN_PROGRESS)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField()
    holder = models.CharField(
        max_length=200,
        blank=True,
        help_text="The process working on it (host:pid:start): a dead holder's key is taken over at once.",
    )
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_once_per_owner")]
        indexes = [models.Index(fields=["expires_at"], name="idempotency_by_expiry")]

    def __str__(self) -> str:
        return f"{self.owner}:{self.key} ({self.state})"
