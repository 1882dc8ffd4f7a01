from __future__ import annotations

import uuid

from django.db.models import QuerySet

from apps.customers.models import Customer


def customer_get(*, customer_id: uuid.UUID) -> Customer | None:
    return Customer.objects.filter(pk=customer_id).first()


def customer_list(*, status: str | None = None, only_customer_id: uuid.UUID | None = None) -> QuerySet[Customer]:
    customers = Customer.objects.all()
    if status:
        customers = customers.filter(status=status)
    if only_customer_id is not None:
        customers = customers.filter(pk=only_customer_id)
    return customers
