"""Re-encryption of every stored token under the active key (`manage.py rotate_keys`).

The encrypted columns are found in the model registry, so a context that adds an encrypted
field needs no change here. Each model is walked in primary-key order, one chunk per
transaction with its rows locked (`SELECT ... FOR UPDATE`): a concurrent write to a row waits
for its chunk, and a crash loses at most the chunk in flight. Values already under the active
kid are left alone, so a second run, or a run after a crash, only finishes the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models, transaction
from django.db.models.functions import Cast

from fintech.crypto.cipher import token_kid
from fintech.crypto.fields import EncryptedField
from fintech.crypto.keyring import key_ring


@dataclass(frozen=True)
class ChunkProgress:
    model: str
    rows_seen: int
    rows_total: int
    values_rewritten: int


def encrypted_fields() -> Iterator[tuple[type[models.Model], list[EncryptedField[Any, Any]]]]:
    """Every concrete model that has encrypted columns, with those columns."""
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedField)]
        if fields:
            yield model, fields


def rotate_model(
    model: type[models.Model],
    fields: list[EncryptedField[Any, Any]],
    *,
    chunk_size: int,
    on_chunk: Callable[[ChunkProgress], None] | None = None,
) -> int:
    """Re-encrypt the model's values that are not under the active key; the number rewritten."""
    active_kid = key_ring().active_kid
    manager = model._base_manager  # every row, whatever the default manager filters
    # The stored token, not the decrypted value: a Cast to plain text skips from_db_value.
    raw = {f"_token_{f.attname}": Cast(f.attname, models.TextField()) for f in fields}
    total = manager.count()
    seen = rewritten = 0
    last_pk: Any = None
    while True:
        with transaction.atomic():
            chunk = manager.select_for_update().order_by("pk").annotate(**raw)
            if last_pk is not None:
                chunk = chunk.filter(pk__gt=last_pk)
            rows = list(chunk.values_list("pk", *raw)[:chunk_size])
            for pk, *tokens in rows:
                stale = {
                    field.attname: field.from_db_value(token, None, None)
                    for field, token in zip(fields, tokens, strict=True)
                    if token is not None and token_kid(token) != active_kid
                }
                if stale:
                    manager.filter(pk=pk).update(**stale)  # get_prep_value encrypts under the active key
                    rewritten += len(stale)
        if not rows:
            return rewritten
        seen += len(rows)
        last_pk = rows[-1][0]
        if on_chunk:
            on_chunk(ChunkProgress(model._meta.label, seen, total, rewritten))
