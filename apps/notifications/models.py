from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Channel(models.TextChoices):
    EMAIL = "email"
    # Push notifications, handed to the push provider through a signed webhook.
    PUSH = "push"


class Category(models.TextChoices):
    # What the customer must hear of whatever their preferences: identity, blocks, money held or refused.
    SECURITY = "security"
    # Movements of money: a customer may turn a channel off for these.
    ACTIVITY = "activity"
    # For the bank's own staff (the fraud desk).
    BACKOFFICE = "backoffice"


class Notification(models.Model):
    """One message about one event, to one recipient, on one channel.

    The row is the intent, recorded in the unit of work that handles the event (so an event
    redelivered finds it and records nothing); the delivery worker sends it afterwards, outside
    any transaction, under the idempotency key the provider sees, and marks it sent. The
    customer is named by id only; the rendered text may greet them by first name and is
    emptied if their personal data is erased. The address is looked up when sending.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"
        # Not to be sent any more: the customer's personal data was erased before it went.
        CANCELLED = "cancelled"

    BACKOFFICE = "backoffice"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.UUIDField(help_text="The event the notification tells of.")
    event_type = models.CharField(max_length=60)
    notice = models.CharField(max_length=40, help_text="Which message: the template's name.")
    category = models.CharField(max_length=10, choices=Category.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    recipient = models.CharField(max_length=60, help_text="customer:<id> or backoffice.")
    customer_id = models.UUIDField(null=True, blank=True)
    language = models.CharField(max_length=5)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Sending attempts of the current delivery.")
    resends = models.PositiveIntegerField(default=0, help_text="Deliveries asked again from the back office.")
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is sending it until then; after that another may."
    )
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["event_id", "channel", "recipient"], name="one_notification_per_event"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "sent", "failed", "cancelled"]), name="notification_status_known"
            ),
        ]
        indexes = [
            models.Index(fields=["customer_id", "created_at"], name="notifications_of_customer"),
            models.Index(fields=["status", "next_attempt_at"], name="notifications_due"),
        ]

    def __str__(self) -> str:
        return f"{self.notice} by {self.channel} to {self.recipient} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        """What the provider sees (Message-ID, Idempotency-Key): the same for every attempt of a
        delivery, so a send repeated after a crash is recognised; a back-office resend is a new
        delivery and gets a new key."""
        return str(self.id) if self.resends == 0 else f"{self.id}.{self.resends}"


class ChannelOptOut(models.Model):
    """A customer turned a channel off: activity notices no longer go there. Security notices
    do, whatever this says."""

    customer_id = models.UUIDField()
    channel = models.CharField(max_length=10, choices=Channel.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer_id", "channel"], name="one_opt_out_per_channel")]

    def __str__(self) -> str:
        return f"{self.customer_id} has no {self.channel} for activity"
