"""The network's credits for our customers (`payment.received`): booked once to the account,
or returned to the network."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.accounts import public as accounts
from apps.ledger import public as ledger
from apps.payments.events import (
    PaymentCredited,
    PaymentCreditReturned,
)
from apps.payments.metrics import (
    INBOUND_CREDITS,
)
from apps.payments.models import IgnoredNetworkMessage, InboundCredit
from apps.payments.services.answers import duplicate_message, ignore_message
from fintech.events import rfc3339
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work

logger = logging.getLogger("fintech.payments")

CREDIT_TYPE = "payment.received"


# -- inbound: the network's credits for our customers ------------------------------------------


@dataclass(frozen=True, slots=True)
class CreditOrder:
    """A credit the network brings for one of our accounts (a `payment.received` message)."""

    message_id: uuid.UUID
    end_to_end_id: str
    amount: int
    currency: str
    creditor_ispb: str
    creditor_branch: str
    creditor_account_number: str
    debtor_ispb: str
    network_reference: str
    sent_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


ACCOUNT_REFUSALS = (
    accounts.AccountNotFound,
    accounts.AccountBlocked,
    accounts.AccountClosed,
    accounts.CurrencyMismatch,
)


def payment_credit_receive(*, credit: CreditOrder, now: datetime | None = None) -> InboundCredit:
    """Book a credit from another bank once per end-to-end id: settlement -> the customer's
    account, or, for an unknown, closed or blocked account or another currency, nothing booked
    and `payment.credit_returned` for the network to give the money back."""
    now = now or timezone.now()
    with unit_of_work():
        booked = InboundCredit.objects.select_for_update().filter(end_to_end_id=credit.end_to_end_id).first()
        if booked is not None:
            _credit_again(booked, credit)
            return booked
        try:
            if credit.creditor_ispb != settings.FINTECH_BANK_ISPB:
                raise accounts.AccountNotFound("The credit is addressed to another bank.")
            account = accounts.movable_account_by_number(
                branch=credit.creditor_branch, number=credit.creditor_account_number, currency=credit.currency
            )
        except ACCOUNT_REFUSALS as refusal:
            return _credit_return(credit, reason=refusal.code, now=now)
        journal_id = ledger.payment_credit(
            end_to_end_id=credit.end_to_end_id, account_id=account.id, amount=credit.amount, currency=credit.currency
        )
        booked = _inbound(
            credit,
            status=InboundCredit.Status.CREDITED,
            account_id=account.id,
            customer_id=account.customer_id,
            journal_transaction_id=journal_id,
            now=now,
        )
        publish(
            PaymentCredited(
                credit_id=str(booked.id),
                end_to_end_id=credit.end_to_end_id,
                account_id=str(account.id),
                customer_id=str(account.customer_id),
                amount=credit.amount,
                currency=credit.currency,
                journal_transaction_id=str(journal_id),
                credited_at=rfc3339(now),
            ),
            occurred_at=now,
        )
        INBOUND_CREDITS.labels("credited").inc()
    return booked


def _inbound(credit: CreditOrder, *, status: str, now: datetime, **booking: Any) -> InboundCredit:
    return InboundCredit.objects.create(
        end_to_end_id=credit.end_to_end_id,
        creditor_branch=credit.creditor_branch[:4],
        creditor_account_number=credit.creditor_account_number[:20],
        debtor_ispb=credit.debtor_ispb,
        amount=credit.amount,
        currency=credit.currency,
        status=status,
        network_reference=credit.network_reference,
        network_sent_at=credit.sent_at,
        received_at=now,
        **booking,
    )


def _credit_return(credit: CreditOrder, *, reason: str, now: datetime) -> InboundCredit:
    returned = _inbound(credit, status=InboundCredit.Status.RETURNED, return_reason=reason, now=now)
    publish(
        PaymentCreditReturned(
            credit_id=str(returned.id),
            end_to_end_id=credit.end_to_end_id,
            amount=credit.amount,
            currency=credit.currency,
            return_reason=reason,
            returned_at=rfc3339(now),
        ),
        occurred_at=now,
    )
    INBOUND_CREDITS.labels("returned").inc()
    logger.info(
        "credit returned to the network", extra={"end_to_end_id": credit.end_to_end_id, "return_reason": reason}
    )
    return returned


def _credit_again(booked: InboundCredit, credit: CreditOrder) -> None:
    """A credit whose end-to-end id is booked already: the same credit again is a duplicate,
    another one under the same id is kept for operations."""
    same = (booked.amount, booked.currency, booked.creditor_branch, booked.creditor_account_number) == (
        credit.amount,
        credit.currency,
        credit.creditor_branch,
        credit.creditor_account_number,
    )
    if same:
        duplicate_message(message_id=credit.message_id, message_type=CREDIT_TYPE, subject=credit.end_to_end_id)
        return
    ignore_message(
        message_id=credit.message_id,
        message_type=CREDIT_TYPE,
        subject=credit.end_to_end_id,
        reason=IgnoredNetworkMessage.Reason.CONFLICTING_CREDIT,
        detail=(
            f"The end-to-end id was booked as {booked.amount} {booked.currency} for account "
            f"{booked.creditor_branch}/{booked.creditor_account_number}; this credit says {credit.amount} "
            f"{credit.currency} for {credit.creditor_branch}/{credit.creditor_account_number}."
        ),
        data=credit.data,
    )
