"""Set-based SQL that the ORM does not write, for the hot paths that measured it.

`update_rows` sets columns of many rows in one statement: Django's `bulk_update` builds a CASE
per column and row, which took a quarter of the time of posting a batch of a thousand journal
transactions. `insert_rows` is one INSERT for many rows: Django's `bulk_create` cost about
1.5 ms more per call in Python, four calls per transfer. On PostgreSQL both pass one array per
column (`unnest`), so a statement has a handful of parameters whatever the number of rows: with
one parameter per value, the driver's parsing of a 30,000-placeholder statement alone took a
sixth of a batch's time (docs/benchmarks.md). The arrays go in the binary format (a server-side
cursor with `%b`): seven times cheaper to build than their text form. SQLite gets multi-row VALUES.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from django.db import connection
from django.db.models import Field, JSONField, Model

# Parameters per statement on SQLite (it allows 32,766).
SQLITE_BATCH_PARAMS = 30_000
# PostgreSQL's serialization_failure and deadlock_detected: it aborted the transaction so that
# another could go on, and the same work run again goes through.
LOST_TO_ANOTHER_TRANSACTION = frozenset({"40001", "40P01"})


def lost_to_another_transaction(error: BaseException) -> bool:
    """Whether the database aborted this transaction for a concurrent one's sake (a deadlock, a
    serialization failure): nothing of it stayed, and running it again is the cure."""
    cause = error.__cause__ if error.__cause__ is not None else error
    return getattr(cause, "sqlstate", None) in LOST_TO_ANOTHER_TRANSACTION


def _execute_binary(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Run `sql` on the current PostgreSQL connection (its transaction) with binary parameters;
    the statement still shows in Django's query log, and its errors are Django's."""
    connection.ensure_connection()
    started = time.monotonic()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
    return rows


def _fields(model: type[Model], names: Sequence[str]) -> list[Field[Any, Any]]:
    fields = []
    for name in names:
        field = model._meta.get_field(name)
        assert isinstance(field, Field)
        fields.append(field)
    return fields


def _array_type(field: Field[Any, Any]) -> str:
    db_type = field.db_type(connection)
    if isinstance(field, JSONField):
        return "text"  # sent as JSON text, cast to the column's json type in the SELECT
    assert db_type is not None
    return db_type.split(" ", 1)[0] if db_type.startswith("varchar") else db_type


def _array_value(field: Field[Any, Any], value: Any) -> Any:
    if isinstance(field, JSONField):
        return None if value is None else json.dumps(value, cls=field.encoder)
    return value


Rows = tuple[type[Model], Sequence[str], Sequence[Any]]


def _unnest_insert(model: type[Model], field_names: Sequence[str], instances: Sequence[Any]) -> tuple[str, list[Any]]:
    """`INSERT INTO model (fields) SELECT ... FROM unnest(one binary array per field)` and its
    parameters (PostgreSQL)."""
    fields = _fields(model, field_names)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)
    arrays = ", ".join(f"%b::{_array_type(field)}[]" for field in fields)
    names = ", ".join(f"c{n}" for n in range(len(fields)))
    selected = ", ".join(
        f"c{n}::{field.db_type(connection)}" if isinstance(field, JSONField) else f"c{n}"
        for n, field in enumerate(fields)
    )
    params: list[Any] = [
        [_array_value(field, getattr(instance, field.attname)) for instance in instances] for field in fields
    ]
    sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) SELECT {selected} FROM unnest({arrays}) AS u({names})"  # noqa: S608 - the model's own names
    return sql, params


def insert_rows(
    model: type[Model],
    field_names: Sequence[str],
    instances: Sequence[Any],
    *,
    returning_pk: bool = False,
    also: Sequence[Rows] = (),
) -> None:
    """Insert rows of `model`: `instances` are objects with an attribute per field (model
    instances, or lighter rows with the same names); only `field_names` are written (columns
    left out take their database default). With `returning_pk`, each gets its `pk` set.

    `also` names other rows to insert at the same time (no row of one may depend on another):
    on PostgreSQL they ride in the same statement as data-modifying CTEs, one round trip."""
    also = [rows for rows in also if rows[2]]
    if not instances:
        for other in also:
            insert_rows(*other)
        return
    quote = connection.ops.quote_name
    pk = model._meta.pk
    returning = f" RETURNING {quote(str(pk.column))}" if returning_pk and pk is not None else ""
    if connection.vendor == "postgresql":
        ctes: list[str] = []
        params: list[Any] = []
        for n, (other_model, other_fields, other_rows) in enumerate(also):
            sql, other_params = _unnest_insert(other_model, other_fields, other_rows)
            ctes.append(f"also{n} AS ({sql})")
            params += other_params
        sql, own = _unnest_insert(model, field_names, instances)
        keys = _execute_binary((f"WITH {', '.join(ctes)} " if ctes else "") + sql + returning, [*params, *own])
        if returning:
            for instance, (key,) in zip(instances, keys, strict=True):
                instance.pk = key
        return
    for other in also:
        insert_rows(*other)
    fields = _fields(model, field_names)
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(str(field.column)) for field in fields)
    with connection.cursor() as cursor:
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        per_statement = max(1, SQLITE_BATCH_PARAMS // len(fields))
        for start in range(0, len(instances), per_statement):
            chunk = instances[start : start + per_statement]
            values: list[Any] = [
                field.get_db_prep_save(getattr(instance, field.attname), connection)
                for instance in chunk
                for field in fields
            ]
            rows = ", ".join([row] * len(chunk))
            # Table and columns are the model's own, quoted; every value is a parameter.
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {rows}{returning}", values)  # noqa: S608
            if returning:
                for instance, (key,) in zip(chunk, cursor.fetchall(), strict=True):
                    instance.pk = key


def update_rows(
    model: type[Model], columns: Sequence[str], rows: Sequence[tuple[Any, ...]], *, extra: dict[str, Any]
) -> None:
    """Set `columns` of many rows found by their primary key (each row: the key, then one value
    per column), and each `extra` column to one value for all of them."""
    if not rows:
        return
    pk = model._meta.pk
    assert pk is not None
    fields = [pk, *_fields(model, columns)]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = [f"c{n}" for n in range(len(fields))]
    assignments = ", ".join(
        [
            *(f"{quote(str(field.column))} = v.{name}" for field, name in zip(fields[1:], names[1:], strict=True)),
            *(f"{quote(str(_fields(model, [column])[0].column))} = %s" for column in extra),
        ]
    )
    extra_params = [
        connection.ops.adapt_datetimefield_value(value) if isinstance(value, datetime) else value
        for value in extra.values()
    ]
    match = f"{table}.{quote(str(pk.column))} = v.{names[0]}"
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%b::{_array_type(field)}[]" for field in fields)
        params: list[Any] = [[row[n] for row in rows] for n in range(len(fields))]
        _execute_binary(
            f"UPDATE {table} SET {assignments.replace('%s', '%b')} "  # noqa: S608 - the model's own names
            f"FROM unnest({arrays}) AS v({', '.join(names)}) WHERE {match}",
            [*extra_params, *params],
        )
        return
    with connection.cursor() as cursor:
        per_statement = max(1, SQLITE_BATCH_PARAMS // len(fields))
        row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values: list[Any] = [
                field.get_db_prep_save(value, connection)
                for row in chunk
                for field, value in zip(fields, row, strict=True)
            ]
            cursor.execute(
                f"WITH v({', '.join(names)}) AS (VALUES {', '.join([row_sql] * len(chunk))}) "  # noqa: S608
                f"UPDATE {table} SET {assignments} FROM v WHERE {match}",
                [*values, *extra_params],
            )
