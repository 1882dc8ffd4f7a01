from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from apps.transactions.models import Deposit, Transfer


def transfer_get(*, transfer_id: uuid.UUID, customer_id: uuid.UUID | None = None) -> Transfer | None:
    """The transfer; with `customer_id`, only when that customer is one of its two sides."""
    transfers = Transfer.objects.filter(pk=transfer_id)
    if customer_id is not None:
        transfers = transfers.filter(Q(from_customer_id=customer_id) | Q(to_customer_id=customer_id))
    return transfers.first()


def transfer_list(
    *, account_id: uuid.UUID | None = None, status: str | None = None, customer_id: uuid.UUID | None = None
) -> QuerySet[Transfer]:
    transfers = Transfer.objects.all()
    if account_id is not None:
        transfers = transfers.filter(Q(from_account_id=account_id) | Q(to_account_id=account_id))
    if status:
        transfers = transfers.filter(status=status)
    if customer_id is not None:
        transfers = transfers.filter(Q(from_customer_id=customer_id) | Q(to_customer_id=customer_id))
    return transfers


def deposit_get(*, deposit_id: uuid.UUID) -> Deposit | None:
    return Deposit.objects.filter(pk=deposit_id).first()


def transfers_in_flight_count(*, customer_id: uuid.UUID) -> int:
    """Transfers from or to the customer that are not final yet (initiated, validated, in review)."""
    return (
        Transfer.objects.filter(Q(from_customer_id=customer_id) | Q(to_customer_id=customer_id))
        .exclude(status__in=Transfer.FINAL)
        .count()
    )
