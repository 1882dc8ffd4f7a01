"""What someone with the database's owner rights (not the application's role) could do to the
trail, to prove that verification catches it: the append-only trigger lifted for a moment."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.db import IntegrityError, InternalError, connection

from apps.audit.models import HASHED_FIELDS, AuditRecord, record_hash

TRIGGER = "audit_records_append_only"
DATABASE_REFUSALS = (IntegrityError, InternalError)


@contextlib.contextmanager
def guard_lifted() -> Iterator[None]:
    table = AuditRecord._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Only the table's owner may; the test database's role owns it, the production app's does not.
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {TRIGGER}")
            yield
            cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {TRIGGER}")
            return
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = %s", [TRIGGER])
        (definition,) = cursor.fetchone()
        cursor.execute(f"DROP TRIGGER {TRIGGER}")
        yield
        cursor.execute(definition)


def values_of(seq: int) -> dict[str, Any]:
    values: dict[str, Any] = AuditRecord.objects.filter(seq=seq).values(*HASHED_FIELDS, "hash").get()
    return values


def change(seq: int, *, rehash: bool = False, **changes: Any) -> None:
    """Edit a record's fields; with `rehash`, also give it the hash its new fields have."""
    fields = {**values_of(seq), **changes}
    if rehash:
        changes["hash"] = record_hash(fields)
    with guard_lifted():
        AuditRecord.objects.filter(seq=seq).update(**changes)


def delete(*seqs: int) -> None:
    with guard_lifted():
        AuditRecord.objects.filter(seq__in=seqs).delete()


def swap_sequence_numbers(first: int, second: int) -> None:
    with guard_lifted():
        AuditRecord.objects.filter(seq=first).update(seq=-first)
        AuditRecord.objects.filter(seq=second).update(seq=first)
        AuditRecord.objects.filter(seq=-first).update(seq=second)


def swap_contents(first: int, second: int) -> None:
    """Every column but the sequence number, hash and prev_hash included, trades places."""
    one, two = values_of(first), values_of(second)
    del one["seq"], two["seq"]
    with guard_lifted():
        AuditRecord.objects.filter(seq=first).update(**{**two, "hash": "f" * 64})  # the hash is unique
        AuditRecord.objects.filter(seq=second).update(**one)
        AuditRecord.objects.filter(seq=first).update(hash=two["hash"])
