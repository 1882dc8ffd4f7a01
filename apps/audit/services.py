"""Appending to the audit chain: the only code that writes audit records.

A record's sequence number and prev_hash come from the chain's head, read under the chain lock
in the same transaction as the insert, so concurrent writers line up one behind the other and
the chain stays single: on PostgreSQL a transaction-scoped advisory lock, on SQLite the write
lock its IMMEDIATE transactions take when they begin. The primary key on the sequence number
refuses a second record at the same place should anything bypass the lock.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import GENESIS_HASH, ActorType, AuditRecord, record_hash

# Any constant that no other part of the bank uses as an advisory lock key (the relay's is 0x0F170B0C).
AUDIT_CHAIN_LOCK_KEY = 0x0F17_A0D1

SYSTEM_ACTOR = "system"


def audit_append(
    *,
    action: str,
    actor: str,
    actor_type: ActorType | str,
    occurred_at: datetime | None = None,
    client_id: str | None = None,
    customer_id: uuid.UUID | str | None = None,
    resource_type: str = "",
    resource_id: str = "",
    outcome: int | None = None,
    reason: str = "",
    source_ip: str | None = None,
    user_agent: str = "",
    correlation_id: str = "",
    trace_id: str = "",
    before: Any = None,
    after: Any = None,
    details: Any = None,
) -> AuditRecord:
    """Append one record at the head of the chain, in its own transaction (a savepoint when the
    caller is already in one: then it commits, or not, with the caller's work)."""
    when = occurred_at or timezone.now()
    if timezone.is_naive(when):
        when = timezone.make_aware(when, UTC)
    record = AuditRecord(
        occurred_at=when,
        actor=_text("actor", actor) or SYSTEM_ACTOR,
        actor_type=ActorType(actor_type).value,
        client_id=_text("client_id", client_id),
        customer_id=uuid.UUID(str(customer_id)) if customer_id else None,
        action=_text("action", action),
        resource_type=_text("resource_type", resource_type),
        resource_id=_text("resource_id", resource_id),
        outcome=outcome,
        reason=_text("reason", reason),
        source_ip=_ip(source_ip),
        user_agent=_text("user_agent", user_agent),
        correlation_id=_text("correlation_id", correlation_id),
        trace_id=_text("trace_id", trace_id),
        before=_plain_json(before),
        after=_plain_json(after),
        details=_plain_json(details),
    )
    # Everything but the place in the chain is prepared before the lock, so the lock is held
    # for four short statements and a hash. Raw SQL there: the ORM's per-call work would double
    # the time each writer keeps the others waiting.
    columns = [field for field in AuditRecord._meta.concrete_fields if field.attname not in _CHAIN_COLUMNS]
    params = [field.get_db_prep_save(getattr(record, field.attname), connection) for field in columns]
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Its own statement: a statement's snapshot is taken when it starts, so the head must be
            # read by a later statement than the one that waited for the lock, or it could be stale.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_KEY])
        # SQLite: the transaction began IMMEDIATE (config/settings.py), so it holds the write lock.
        cursor.execute(_head_sql())
        head = cursor.fetchone()
        record.seq, record.prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
        record.hash = record_hash(record.fields_for_hash())
        cursor.execute(_insert_sql(), [record.seq, record.prev_hash, record.hash, *params])
    record._state.adding = False
    record._state.db = connection.alias
    return record


_CHAIN_COLUMNS = ("seq", "prev_hash", "hash")


def _head_sql() -> str:
    table = connection.ops.quote_name(AuditRecord._meta.db_table)
    return f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1"  # noqa: S608 - no input in it


def _insert_sql() -> str:
    names = [*_CHAIN_COLUMNS] + [
        field.column for field in AuditRecord._meta.concrete_fields if field.attname not in _CHAIN_COLUMNS
    ]
    table = connection.ops.quote_name(AuditRecord._meta.db_table)
    quoted = ", ".join(connection.ops.quote_name(name) for name in names)
    return f"INSERT INTO {table} ({quoted}) VALUES ({', '.join(['%s'] * len(names))})"  # noqa: S608


def _text(field: str, value: str | None) -> str:
    """Fits the column on every database (SQLite does not enforce max_length; PostgreSQL refuses
    NUL characters), so what is hashed is exactly what is stored."""
    max_length = getattr(AuditRecord._meta.get_field(field), "max_length", None) or 0
    return str(value or "").replace("\x00", "")[:max_length]


def _ip(value: str | None) -> str:
    if not value:
        return ""
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return ""


def _plain_json(value: Any) -> Any:
    """Plain JSON that reads back from either database as it went in: dates, UUIDs and decimals
    as strings (DjangoJSONEncoder), floats as strings (jsonb rewrites some of them), no NULs."""
    if value is None:
        return None
    return _without_floats(json.loads(json.dumps(value, cls=_AuditJSONEncoder)))


class _AuditJSONEncoder(DjangoJSONEncoder):
    """Never fails a write over a value JSON has no word for: bytes by their size, the rest as text."""

    def default(self, o: Any) -> Any:
        if isinstance(o, bytes | bytearray | memoryview):
            return f"[{len(bytes(o))} bytes]"
        try:
            return super().default(o)
        except TypeError:
            return str(o)


def _without_floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key).replace("\x00", ""): _without_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_floats(item) for item in value]
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value.replace("\x00", "")
    return value
