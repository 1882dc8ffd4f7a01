"""The audit trail: who did what, when and from where, as an append-only hash chain.

Each record carries the SHA-256 of a canonical JSON of its own fields and of the previous
record's hash, and a gap-free sequence number assigned under the chain lock (services.py). A
record changed, deleted or moved breaks the chain where it stands, and `manage.py verify_audit`
says where. The database refuses UPDATE and DELETE of the table (migration 0002).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.db import models

GENESIS_HASH = "0" * 64  # the prev_hash of the first record
HASH_VERSION = 1  # part of what is hashed, so a future change of the canonical form is explicit

# Everything a record's hash covers, prev_hash included: every column but the hash itself.
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor",
    "actor_type",
    "client_id",
    "customer_id",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "reason",
    "source_ip",
    "user_agent",
    "correlation_id",
    "trace_id",
    "before",
    "after",
    "details",
    "prev_hash",
)


class ActorType(models.TextChoices):
    CUSTOMER = "customer"  # a token with a customer_id claim
    STAFF = "staff"  # a back-office person's token
    SERVICE = "service"  # a client-credentials token: a system acting on its own behalf
    ADMIN = "admin"  # a Django admin user
    ANONYMOUS = "anonymous"  # no verified identity (missing or invalid credentials)
    SYSTEM = "system"  # the bank itself (commands, jobs)


class AuditRecord(models.Model):
    seq = models.BigIntegerField(primary_key=True, help_text="1, 2, 3, ... without gaps, in the chain's order.")
    occurred_at = models.DateTimeField(help_text="When the request arrived; the chain's order is seq.")
    actor = models.CharField(max_length=255, help_text="Token subject, admin username or 'system'.")
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    client_id = models.CharField(max_length=255, blank=True, default="")
    customer_id = models.UUIDField(null=True, blank=True)
    action = models.CharField(max_length=255, help_text="'POST /api/v1/transfers', 'admin.change', 'auth.failed', ...")
    resource_type = models.CharField(max_length=100, blank=True, default="")
    resource_id = models.CharField(max_length=255, blank=True, default="")
    outcome = models.PositiveSmallIntegerField(null=True, blank=True, help_text="HTTP status, when there was one.")
    reason = models.CharField(max_length=64, blank=True, default="", help_text="The problem code of a refusal.")
    source_ip = models.CharField(max_length=45, blank=True, default="")
    user_agent = models.CharField(max_length=256, blank=True, default="")
    correlation_id = models.CharField(max_length=128, blank=True, default="")
    trace_id = models.CharField(max_length=32, blank=True, default="")
    before = models.JSONField(null=True, blank=True, help_text="Changed fields before a back-office edit.")
    after = models.JSONField(null=True, blank=True, help_text="The same fields after it.")
    details = models.JSONField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        indexes = [
            models.Index(fields=["actor", "occurred_at"], name="audit_actor_time"),
            models.Index(fields=["resource_type", "resource_id"], name="audit_resource"),
            models.Index(fields=["correlation_id"], name="audit_correlation"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.actor} {self.action}"

    def fields_for_hash(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in HASHED_FIELDS}


def _canonical_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def canonical_json(fields: Mapping[str, Any]) -> str:
    """The one text a record's hash is taken over: its hashed fields (prev_hash included), keys
    sorted, no whitespace, UTF-8, times as UTC with microseconds. JSON columns hold plain JSON
    (services.py normalises them), so they read back from the database as they went in."""
    document = {name: _canonical_value(fields[name]) for name in HASHED_FIELDS}
    document["v"] = HASH_VERSION
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(fields).encode("utf-8")).hexdigest()
