"""Set-based SQL that the ORM does not write, for the hot paths that measured it.

`update_rows` sets columns of many rows in one `UPDATE ... FROM (VALUES ...)`: Django's
`bulk_update` builds a CASE per column and row, which took a quarter of the time of posting a
batch of a thousand journal transactions (docs/benchmarks.md). `insert_rows` is one multi-row
INSERT with the values adapted by the model's own fields: Django's `bulk_create` costs about
1.5 ms more per call in Python, four calls per transfer.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Model

# Parameters per UPDATE ... FROM (VALUES ...) statement; SQLite allows 32,766.
UPDATE_BATCH_PARAMS = 10_000


def update_rows(
    table: str, columns: Sequence[str], rows: Sequence[tuple[object, ...]], *, extra: dict[str, object]
) -> None:
    """Set `columns` of many rows found by their uuid primary key `id` (each row: the id, then
    one value per column), and each `extra` column to one value for all of them, in one
    statement per 10,000 parameters."""
    if not rows:
        return
    postgres = connection.vendor == "postgresql"
    uuid_param = "%s::uuid" if postgres else "%s"
    adapt = connection.ops
    width = len(columns) + 1
    per_statement = max(1, UPDATE_BATCH_PARAMS // width)
    names = ", ".join(["id", *columns])
    assignments = ", ".join([*(f"{c} = v.{c}" for c in columns), *(f"{c} = %s" for c in extra)])
    extra_params: list[Any] = [
        adapt.adapt_datetimefield_value(value) if isinstance(value, datetime) else value for value in extra.values()
    ]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            values = ", ".join(
                "(" + ", ".join([uuid_param] + [_param(value, postgres) for value in row[1:]]) + ")" for row in chunk
            )
            params: list[Any] = []
            for row in chunk:
                params += [_uuid_value(row[0], postgres), *(_plain(value, postgres) for value in row[1:])]
            cursor.execute(
                f"WITH v({names}) AS (VALUES {values}) "  # noqa: S608 - table and columns are the models' own
                f"UPDATE {table} SET {assignments} FROM v WHERE {table}.id = v.id",
                [*params, *extra_params],
            )


def _param(value: object, postgres: bool) -> str:
    if not postgres:
        return "%s"
    if isinstance(value, uuid.UUID):
        return "%s::uuid"
    if isinstance(value, int):
        return "%s::bigint"
    return "%s"


def _uuid_value(value: object, postgres: bool) -> object:
    if postgres or not isinstance(value, uuid.UUID):
        return value
    return value.hex  # how Django keeps a UUIDField on SQLite


def _plain(value: object, postgres: bool) -> object:
    return _uuid_value(value, postgres) if isinstance(value, uuid.UUID) else value


# Parameters per INSERT: PostgreSQL takes at most 65,535 in one statement, SQLite 32,766.
INSERT_BATCH_PARAMS = 30_000


def insert_rows(
    model: type[Model], field_names: Sequence[str], instances: Sequence[Model], *, returning_pk: bool = False
) -> None:
    """Insert `instances` (only `field_names`; columns left out take their database default) in
    as few statements as the parameter limit allows. With `returning_pk`, each instance gets the
    primary key the database gave it."""
    if not instances:
        return
    fields = [model._meta.get_field(name) for name in field_names]
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = ", ".join(quote(str(field.column)) for field in fields)  # type: ignore[union-attr]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    pk = model._meta.pk
    returning = f" RETURNING {quote(pk.column)}" if returning_pk and pk is not None else ""
    per_statement = max(1, INSERT_BATCH_PARAMS // len(fields))
    with connection.cursor() as cursor:
        for start in range(0, len(instances), per_statement):
            chunk = instances[start : start + per_statement]
            params: list[Any] = [
                field.get_db_prep_save(getattr(instance, field.attname), connection)  # type: ignore[union-attr]
                for instance in chunk
                for field in fields
            ]
            values = ", ".join([row] * len(chunk))
            # Table and columns are the model's own, quoted; every value is a parameter.
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES {values}{returning}", params)  # noqa: S608
            if returning:
                for instance, (key,) in zip(chunk, cursor.fetchall(), strict=True):
                    instance.pk = key
