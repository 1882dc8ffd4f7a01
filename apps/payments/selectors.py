from __future__ import annotations

import uuid
from datetime import date, datetime

from django.db.models import QuerySet, Sum

from apps.payments.models import InboundCredit, Payment


def payment_get(*, payment_id: uuid.UUID, customer_id: uuid.UUID | None = None) -> Payment | None:
    """The payment; with `customer_id`, only when it is that customer's."""
    payments = Payment.objects.prefetch_related("history").filter(pk=payment_id)
    if customer_id is not None:
        payments = payments.filter(customer_id=customer_id)
    return payments.first()


def payment_list(
    *, account_id: uuid.UUID | None = None, status: str | None = None, customer_id: uuid.UUID | None = None
) -> QuerySet[Payment]:
    payments = Payment.objects.prefetch_related("history")
    if account_id is not None:
        payments = payments.filter(account_id=account_id)
    if status:
        payments = payments.filter(status=status)
    if customer_id is not None:
        payments = payments.filter(customer_id=customer_id)
    return payments


def in_flight() -> QuerySet[Payment]:
    """Payments in the network's hands: sent (their amount in clearing) and not answered."""
    return Payment.objects.filter(status=Payment.Status.PENDING, sent_at__isnull=False)


def in_flight_totals() -> dict[str, int]:
    return dict(in_flight().values("currency").annotate(total=Sum("amount")).values_list("currency", "total"))


def overdue(*, sent_before: datetime) -> QuerySet[Payment]:
    """Payments in flight that were sent before `sent_before` (their answer time is over)."""
    return in_flight().filter(sent_at__lt=sent_before)


def payments_answered_on(*, days: set[date]) -> QuerySet[Payment]:
    """Payments the network answered (by its own clock, UTC) on one of `days`."""
    return Payment.objects.filter(
        status__in=[Payment.Status.SETTLED, Payment.Status.RETURNED], network_processed_at__date__in=sorted(days)
    ).only(*PAYMENT_TERMS)


def credits_sent_on(*, days: set[date]) -> QuerySet[InboundCredit]:
    """Credits the network sent (by its own clock, UTC) on one of `days`."""
    return InboundCredit.objects.filter(network_sent_at__date__in=sorted(days))


# What a settlement is matched on: the beneficiary's encrypted data is not read (nor decrypted).
PAYMENT_TERMS = ("id", "account_id", "amount", "currency", "end_to_end_id", "status")


def payments_by_id(*, payment_ids: list[uuid.UUID]) -> dict[str, Payment]:
    return {str(p.id): p for p in Payment.objects.filter(pk__in=payment_ids).only(*PAYMENT_TERMS)}


def credits_by_end_to_end_id(*, end_to_end_ids: list[str]) -> dict[str, InboundCredit]:
    return {c.end_to_end_id: c for c in InboundCredit.objects.filter(end_to_end_id__in=end_to_end_ids)}


def payments_not_final_count(*, customer_id: uuid.UUID) -> int:
    """The customer's payments not settled, returned or failed yet (pending or in review)."""
    return Payment.objects.filter(customer_id=customer_id).exclude(status__in=Payment.FINAL).count()
