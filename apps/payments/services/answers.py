"""The network's answers to our payments (`payment.processed`): settled or returned, booked once;
what cannot be booked is kept for operations; payments without an answer are flagged overdue."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.ledger import public as ledger
from apps.payments import selectors
from apps.payments.events import (
    PaymentReturned,
    PaymentSettled,
)
from apps.payments.metrics import (
    NETWORK_MESSAGES_IGNORED,
    PAYMENTS_ANSWERED,
    PAYMENTS_FLAGGED_OVERDUE,
    PAYMENTS_OVERDUE,
)
from apps.payments.models import IgnoredNetworkMessage, Payment, PaymentStep
from apps.payments.services.outbound import payment_fields, record_steps
from fintech.events import rfc3339
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work

logger = logging.getLogger("fintech.payments")

ANSWER_TYPE = "payment.processed"


# -- the network's answers ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetworkAnswer:
    """The network's answer to one of our payment requests (a `payment.processed` message)."""

    message_id: uuid.UUID
    payment_id: uuid.UUID
    status: str  # settled or returned
    network_reference: str
    return_reason: str | None
    processed_at: datetime
    amount: int | None = None
    currency: str | None = None
    end_to_end_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


def ignore_message(
    *, message_id: uuid.UUID, message_type: str, subject: str, reason: str, detail: str, data: Mapping[str, Any]
) -> None:
    """A message of the network that is not booked: kept for operations, logged and counted."""
    IgnoredNetworkMessage.objects.create(
        message_id=message_id,
        message_type=message_type,
        subject=subject,
        reason=reason,
        detail=detail[:280],
        data=dict(data),
    )
    NETWORK_MESSAGES_IGNORED.labels(message_type, reason).inc()
    logger.error(
        "payment network message not booked",
        extra={"message_id": str(message_id), "message_type": message_type, "subject": subject, "reason": reason},
    )


def duplicate_message(*, message_id: uuid.UUID, message_type: str, subject: str) -> None:
    NETWORK_MESSAGES_IGNORED.labels(message_type, "duplicate").inc()
    logger.info(
        "payment network message already booked",
        extra={"message_id": str(message_id), "message_type": message_type, "subject": subject},
    )


def _answer_refusal(payment: Payment | None, answer: NetworkAnswer) -> tuple[str, str] | None:
    """(reason, detail) when the answer cannot be booked against `payment`."""
    Reason = IgnoredNetworkMessage.Reason
    if payment is None:
        return Reason.UNKNOWN_PAYMENT, "No payment of ours has this id."
    if payment.sent_at is None:
        return Reason.NOT_SENT, f"The payment was never sent to the network (it is {payment.status})."
    if answer.end_to_end_id is not None and answer.end_to_end_id != payment.end_to_end_id:
        return Reason.END_TO_END_MISMATCH, "The answer names another end-to-end id than the payment's."
    if answer.amount is not None and answer.amount != payment.amount:
        return Reason.AMOUNT_MISMATCH, f"The network moved {answer.amount}; the payment is of {payment.amount}."
    if answer.currency is not None and answer.currency != payment.currency:
        return Reason.CURRENCY_MISMATCH, f"The network moved {answer.currency}; the payment is in {payment.currency}."
    if payment.status in (Payment.Status.SETTLED, Payment.Status.RETURNED) and payment.status != answer.status:
        return Reason.CONFLICTING_ANSWER, f"The payment was already {payment.status}; this answer says {answer.status}."
    return None


def payment_answer_record(*, answer: NetworkAnswer, now: datetime | None = None) -> Payment | None:
    """Book the network's answer: settled moves the money from clearing to settlement, returned
    gives it back to the customer. An answer that does not match the payment is kept, not booked;
    the same answer again changes nothing."""
    now = now or timezone.now()
    with unit_of_work():
        payment = Payment.objects.select_for_update().filter(pk=answer.payment_id).first()
        refusal = _answer_refusal(payment, answer)
        if refusal is not None:
            ignore_message(
                message_id=answer.message_id,
                message_type=ANSWER_TYPE,
                subject=str(answer.payment_id),
                reason=refusal[0],
                detail=refusal[1],
                data=answer.data,
            )
            return payment
        assert payment is not None  # _answer_refusal refuses an unknown payment
        if payment.status == answer.status:
            duplicate_message(message_id=answer.message_id, message_type=ANSWER_TYPE, subject=str(payment.id))
            return payment
        if answer.status == Payment.Status.SETTLED:
            _settle(payment, answer, now=now)
        else:
            _return(payment, answer, now=now)
        PAYMENTS_ANSWERED.labels(answer.status).inc()
    return payment


def _answered(payment: Payment, answer: NetworkAnswer, *, status: str, journal_id: uuid.UUID, now: datetime) -> None:
    payment.status = status
    payment.network_reference = answer.network_reference
    payment.network_processed_at = answer.processed_at
    payment.return_reason = answer.return_reason or ""
    payment.journal_transaction_id = journal_id
    payment.answered_at = now
    payment.updated_at = now
    payment.save(
        update_fields=[
            "status",
            "network_reference",
            "network_processed_at",
            "return_reason",
            "journal_transaction_id",
            "answered_at",
            "updated_at",
        ]
    )
    detail = f"{answer.network_reference}: {answer.return_reason}" if answer.return_reason else answer.network_reference
    record_steps([payment], status, now=now, detail=detail)


def _settle(payment: Payment, answer: NetworkAnswer, *, now: datetime) -> None:
    journal_id = ledger.payment_settle(payment_id=payment.id, amount=payment.amount, currency=payment.currency)
    _answered(payment, answer, status=Payment.Status.SETTLED, journal_id=journal_id, now=now)
    publish(
        PaymentSettled(
            **payment_fields(payment),  # type: ignore[arg-type]
            customer_id=str(payment.customer_id),
            end_to_end_id=payment.end_to_end_id,
            network_reference=payment.network_reference,
            journal_transaction_id=str(journal_id),
            settled_at=rfc3339(now),
        ),
        occurred_at=now,
    )


def _return(payment: Payment, answer: NetworkAnswer, *, now: datetime) -> None:
    reason = answer.return_reason or "returned by the network"
    journal_id = ledger.payment_return(
        payment_id=payment.id,
        account_id=payment.account_id,
        amount=payment.amount,
        currency=payment.currency,
        reason=reason,
    )
    _answered(payment, answer, status=Payment.Status.RETURNED, journal_id=journal_id, now=now)
    publish(
        PaymentReturned(
            **payment_fields(payment),  # type: ignore[arg-type]
            customer_id=str(payment.customer_id),
            end_to_end_id=payment.end_to_end_id,
            network_reference=payment.network_reference,
            return_reason=reason,
            journal_transaction_id=str(journal_id),
            returned_at=rfc3339(now),
        ),
        occurred_at=now,
    )


def payments_flag_overdue(*, now: datetime | None = None, limit: int = 1000) -> list[Payment]:
    """Flag the payments the network has not answered within FINTECH_PAYMENT_ANSWER_TIMEOUT_SECONDS
    for operations (logged, counted, listed in the admin). Nothing else happens to them: their
    money stays in clearing until the network answers or a person decides."""
    now = now or timezone.now()
    deadline = now - timedelta(seconds=settings.FINTECH_PAYMENT_ANSWER_TIMEOUT_SECONDS)
    with unit_of_work():
        flagged = list(
            selectors.overdue(sent_before=deadline)
            .filter(overdue_since__isnull=True)
            .select_for_update(skip_locked=True)
            .order_by("sent_at")[:limit]
        )
        for payment in flagged:
            payment.overdue_since = now
        Payment.objects.filter(pk__in=[p.id for p in flagged]).update(overdue_since=now)
        record_steps(flagged, PaymentStep.Step.FLAGGED_OVERDUE, now=now, detail="No answer from the network in time")
    for payment in flagged:
        logger.warning(
            "payment flagged: no answer from the network in time",
            extra={"payment_id": str(payment.id), "sent_at": rfc3339(payment.sent_at or now)},
        )
    PAYMENTS_FLAGGED_OVERDUE.inc(len(flagged))
    PAYMENTS_OVERDUE.set(selectors.overdue(sent_before=deadline).count())
    return flagged
