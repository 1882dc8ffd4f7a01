"""Builders for payment tests: beneficiaries, payments through the services, and the screening's
decisions published with the fraud context's own event classes, so the payments context's steps
can be driven without running the fraud context's screening."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.fraud.events import FraudReviewDecided, FraudScreened
from apps.payments import services
from apps.payments.models import Payment
from fintech import bus
from fintech.events import rfc3339
from fintech.payment_network import new_end_to_end_id
from outbox.network_simulator import inline
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work

ACCOUNT_BENEFICIARY = {
    "name": "Maria Oliveira",
    "document": "529.982.247-25",
    "bank_code": "00000000",
    "branch": "1234",
    "account_number": "123456-7",
}
# The simulated network returns payments to this account: closed at the beneficiary's bank.
CLOSED_BENEFICIARY = {**ACCOUNT_BENEFICIARY, "account_number": "99999123-4"}
PIX_BENEFICIARY = {"pix_key": "maria.oliveira@example.com"}


# The fraud context's step that screens a payment as it is initiated (when the fraud context is
# installed): tests that decide the screening themselves set it aside.
FRAUD_PAYMENT_SCREENING = "fraud.screen_payment"


@contextmanager
def screening_by_the_test() -> Iterator[None]:
    """While open, nothing screens a payment but the test (`screen`, `decide_review`)."""
    step = bus.subscription_named(FRAUD_PAYMENT_SCREENING)
    if step is not None:
        bus.unsubscribe(step.name)
    try:
        yield
    finally:
        if step is not None:
            bus.subscribe(step.event_type, name=step.name, same_unit_of_work=step.same_unit_of_work, batch=step.batch)(
                step.handler
            )


@contextmanager
def network_in_process(test_settings: Any, settlement_file: str) -> Iterator[None]:
    """The payment network simulated in this process, as on the embedded default, also on a run
    whose settings chose the network over Kafka: it answers each payment.requested once it is
    dispatched, and keeps its day in `settlement_file`. `test_settings`: pytest-django's fixture."""
    test_settings.FINTECH_PAYMENT_NETWORK = inline.MODE
    test_settings.FINTECH_PAYMENT_SIMULATOR_SETTLEMENT_FILE = settlement_file
    installed_here = not inline.installed()
    if installed_here:
        inline.install()
    try:
        yield
    finally:
        if installed_here:
            inline.uninstall()


def screen(payment: Payment, decision: str) -> None:
    """Publish the screening's decision on `payment`, in a unit of work of its own (its steps run
    before the commit, as they do behind the fraud context's own step)."""
    with unit_of_work():
        publish(
            FraudScreened(
                screening_id=str(uuid.uuid4()),
                subject_type="payment",
                subject_id=str(payment.id),
                account_id=str(payment.account_id),
                amount=payment.amount,
                currency=payment.currency,
                decision=decision,
                score={"approve": 0, "review": 60, "reject": 95}[decision],
                rules=[] if decision == "approve" else [{"rule": "test", "version": 1, "score": 60, "reason": "test"}],
                screened_at=rfc3339(timezone.now()),
            )
        )


def decide_review(payment: Payment, decision: str, *, by: str = "analyst-1") -> None:
    with unit_of_work():
        publish(
            FraudReviewDecided(
                subject_type="payment",
                subject_id=str(payment.id),
                decision=decision,
                decided_by=by,
                reason="checked with the customer",
                decided_at=rfc3339(timezone.now()),
            )
        )


def initiate(account: Any, amount: int = 1_000, beneficiary: dict[str, str] | None = None) -> Payment:
    return services.payment_initiate(
        account_id=account.id,
        amount=amount,
        currency=account.currency,
        beneficiary=beneficiary or ACCOUNT_BENEFICIARY,
        initiated_by="tester",
    )


def sent_payment(account: Any, amount: int = 1_000, beneficiary: dict[str, str] | None = None) -> Payment:
    """A payment approved by the screening and sent to the network: its amount is in clearing."""
    payment = initiate(account, amount, beneficiary)
    screen(payment, "approve")
    payment.refresh_from_db()
    assert payment.sent_at is not None
    assert payment.status == Payment.Status.PENDING
    return payment


def answer(
    payment: Payment, status: str = "settled", *, message_id: uuid.UUID | None = None, **changes: Any
) -> services.NetworkAnswer:
    """The network's answer to `payment`, as the handler builds it from a payment.processed."""
    fields: dict[str, Any] = {
        "message_id": message_id or uuid.uuid4(),
        "payment_id": payment.id,
        "status": status,
        "network_reference": "NET-1",
        "return_reason": "AC04 closed account number" if status == "returned" else None,
        "processed_at": timezone.now(),
        "amount": payment.amount,
        "currency": payment.currency,
        "end_to_end_id": payment.end_to_end_id,
    }
    fields.update(changes)
    return services.NetworkAnswer(**fields)


def credit_order(
    account: Any, amount: int = 700, *, end_to_end_id: str | None = None, **changes: Any
) -> services.CreditOrder:
    """A credit of the network for `account` (None: an account number we do not have)."""
    fields: dict[str, Any] = {
        "message_id": uuid.uuid4(),
        "end_to_end_id": end_to_end_id or new_end_to_end_id(ispb="88888888", at=timezone.now()),
        "amount": amount,
        "currency": "BRL",
        "creditor_ispb": settings.FINTECH_BANK_ISPB,
        "creditor_branch": "0001",
        "creditor_account_number": account.number if account is not None else "00000000-0",
        "debtor_ispb": "88888888",
        "network_reference": "NET-2",
        "sent_at": timezone.now(),
    }
    fields.update(changes)
    return services.CreditOrder(**fields)
