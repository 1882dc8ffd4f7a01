from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db.models import QuerySet

from apps.customers.models import Customer
from fintech.crypto.blind_index import blind_index

# The blind index of a document is bound to its column, like the column's tokens.
DOCUMENT_INDEX_PURPOSE = "customers.customer.document"


def document_index(digits: str) -> str:
    """The blind index of a document's bare digits (see fintech/crypto/blind_index.py)."""
    return blind_index(digits, purpose=DOCUMENT_INDEX_PURPOSE)


def customer_get(*, customer_id: uuid.UUID, lock: bool = False) -> Customer | None:
    customers = Customer.objects.filter(pk=customer_id)
    return (customers.select_for_update() if lock else customers).first()


def customer_find_by_document(*, digits: str) -> Customer | None:
    """The customer holding this document (bare digits), found through the blind index."""
    return Customer.objects.filter(document_index=document_index(digits)).first()


def customer_exists_with_document(*, digits: str) -> bool:
    return Customer.objects.filter(document_index=document_index(digits)).exists()


def customer_list(*, status: str | None = None, only_customer_id: uuid.UUID | None = None) -> QuerySet[Customer]:
    customers = Customer.objects.all()
    if status:
        customers = customers.filter(status=status)
    if only_customer_id is not None:
        customers = customers.filter(pk=only_customer_id)
    return customers


def customers_get(*, customer_ids: Iterable[uuid.UUID]) -> QuerySet[Customer]:
    return Customer.objects.filter(pk__in=set(customer_ids))
