"""The transactional outbox, the inbox of handled events, retry state and dead letters."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone
from psycopg.types.json import Json, Jsonb


class CurrentTransactionId(models.Func):
    """The writing transaction's id on PostgreSQL (NULL elsewhere): lets the relay wait for
    transactions that are still open, so rows that commit out of id order are not skipped
    and are shipped in commit order."""

    output_field = models.BigIntegerField()
    template = "NULL"
    arity = 0

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return "(pg_current_xact_id()::text::bigint)", []


class JsonTextField(models.JSONField):
    """JSON kept on PostgreSQL as `json`, the text as written, rather than `jsonb`.

    The relay ships the envelope as the text it is stored as. `jsonb` re-renders that text from
    its binary form on every read (two thirds of the relay's read time with 1 KB events, see
    docs/benchmarks.md) and parses it on every write; `json` only checks it on the way in. The
    envelope is never queried inside the database, so nothing is lost. Other databases keep
    Django's JSON column.
    """

    def db_type(self, connection: Any) -> str | None:
        if connection.vendor == "postgresql":
            return "json"
        return super().db_type(connection)

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        adapted = super().get_db_prep_value(value, connection, prepared)
        if connection.vendor == "postgresql" and isinstance(adapted, Jsonb):
            return Json(adapted.obj, dumps=adapted.dumps)  # sent as json: no jsonb parse on insert
        return adapted

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if value is None or isinstance(value, str):
            return super().from_db_value(value, expression, connection)
        return value  # the driver's json loader already parsed it


class OutboxEvent(models.Model):
    """One committed domain event. The row id is the order in which events were written."""

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=100)
    schema_version = models.PositiveSmallIntegerField()
    source = models.CharField(max_length=50)
    aggregate_id = models.CharField(max_length=64)
    envelope = JsonTextField(help_text="The CloudEvents 1.0 structured-mode event, as shipped.")
    headers = models.JSONField(default=dict, help_text="traceparent, correlation_id, causation_id.")
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set once a handler failed on the event: it is delivered one handler at a time, with retries, "
        "from then on, and not before this moment.",
    )
    txid = models.BigIntegerField(null=True, blank=True, editable=False, db_default=CurrentTransactionId())

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], name="outbox_undispatched", condition=Q(dispatched_at__isnull=True)),
            models.Index(fields=["id"], name="outbox_unsent", condition=Q(sent_at__isnull=True)),
            models.Index(fields=["aggregate_id", "id"], name="outbox_by_aggregate"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class InboxRecord(models.Model):
    """A handler has applied an event: written in the same transaction as the effect."""

    handler = models.CharField(max_length=200)
    event_id = models.UUIDField()
    handled_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["handler", "event_id"], name="inbox_once_per_handler")]

    def __str__(self) -> str:
        return f"{self.handler} <- {self.event_id}"


class DeliveryAttempt(models.Model):
    """Retry state of a handler that failed on an event and has attempts left."""

    event_id = models.UUIDField()
    handler = models.CharField(max_length=200)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event_id", "handler"], name="one_attempt_row_per_delivery")]

    def __str__(self) -> str:
        return f"{self.handler} x {self.event_id}: {self.attempts} attempt(s)"


class DeadLetter(models.Model):
    """An event a handler could not apply after its attempts: kept for a person to look at and
    replay (`manage.py replay_handler_dead_letters`) once the cause is fixed."""

    event_id = models.UUIDField()
    event_type = models.CharField(max_length=100)
    handler = models.CharField(max_length=200)
    envelope = models.JSONField()
    headers = models.JSONField(default=dict)
    error = models.TextField()
    attempts = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["handler", "event_id"], name="dead_letter_by_delivery")]
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "handler"],
                condition=Q(replayed_at__isnull=True),
                name="one_open_dead_letter_per_delivery",
            )
        ]

    def __str__(self) -> str:
        return f"{self.handler} x {self.event_type} {self.event_id}"
