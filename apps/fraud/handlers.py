"""The fraud context's part of the choreography: screening every transfer and outbound payment
before it may move money, knowing when each account opened, and withdrawing the review of an
operation that failed while it waited."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from apps.fraud import services
from apps.fraud.models import SubjectType
from apps.fraud.rules import Operation
from fintech.bus import subscribe
from fintech.events import ReceivedEvent, moment


def _uuid(value: object) -> uuid.UUID | None:
    return uuid.UUID(str(value)) if value else None


def _transfer_operation(event: ReceivedEvent) -> Operation:
    data = event.data
    return Operation(
        subject_type=SubjectType.TRANSFER.value,
        subject_id=uuid.UUID(data["transfer_id"]),
        account_id=uuid.UUID(data["from_account_id"]),
        customer_id=uuid.UUID(data["customer_id"]),
        amount=data["amount"],
        currency=data["currency"],
        occurred_at=moment(data["initiated_at"]),
        # Events from before these fields existed were all asked for by staff or services.
        initiated_by_customer=bool(data.get("initiated_by_customer", False)),
        counterparty_account_id=uuid.UUID(data["to_account_id"]),
        counterparty_customer_id=_uuid(data.get("to_customer_id")),
    )


def _payment_operation(event: ReceivedEvent) -> Operation:
    data = event.data
    return Operation(
        subject_type=SubjectType.PAYMENT.value,
        subject_id=uuid.UUID(data["payment_id"]),
        account_id=uuid.UUID(data["account_id"]),
        customer_id=uuid.UUID(data["customer_id"]),
        amount=data["amount"],
        currency=data["currency"],
        occurred_at=moment(data["initiated_at"]),
        initiated_by_customer=bool(data["initiated_by_customer"]),
        beneficiary_ref=data["beneficiary_ref"],
    )


@subscribe("transaction.initiated", name="fraud.screen_transfer", same_unit_of_work=True, batch=True)
def screen_transfers(events: Sequence[ReceivedEvent]) -> None:
    services.operations_screen(operations=[_transfer_operation(event) for event in events])


@subscribe("payment.initiated", name="fraud.screen_payment", same_unit_of_work=True, batch=True)
def screen_payments(events: Sequence[ReceivedEvent]) -> None:
    services.operations_screen(operations=[_payment_operation(event) for event in events])


@subscribe("account.created", name="fraud.note_opened_account", same_unit_of_work=True, batch=True)
def note_opened_accounts(events: Sequence[ReceivedEvent]) -> None:
    services.accounts_opened(
        opened={uuid.UUID(event.data["account_id"]): moment(event.data["created_at"]) for event in events}
    )


def _withdraw_reviews(events: Sequence[ReceivedEvent], subject_field: str) -> None:
    codes = {uuid.UUID(event.data[subject_field]): str(event.data["failure_code"]) for event in events}
    latest = max(moment(event.data["failed_at"]) for event in events)
    services.reviews_withdraw(subject_ids=sorted(codes), failure_codes=codes, now=latest)


# A transfer or payment held for review can fail for another reason before anyone decides
# (its account blocked while it waited): its review is withdrawn in the same unit of work.
@subscribe("transaction.failed", name="fraud.withdraw_reviews_of_failed_transfers", same_unit_of_work=True, batch=True)
def withdraw_reviews_of_failed_transfers(events: Sequence[ReceivedEvent]) -> None:
    _withdraw_reviews(events, "transfer_id")


@subscribe("payment.failed", name="fraud.withdraw_reviews_of_failed_payments", same_unit_of_work=True, batch=True)
def withdraw_reviews_of_failed_payments(events: Sequence[ReceivedEvent]) -> None:
    _withdraw_reviews(events, "payment_id")
