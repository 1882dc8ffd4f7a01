"""Outbound payments: accepted (the amount held), screened by the fraud context, sent to the
network as `payment.requested`, held for review or failed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.accounts import public as accounts
from apps.ledger import public as ledger
from apps.payments.beneficiaries import ACCOUNT, Beneficiary, beneficiary_from
from apps.payments.errors import PaymentNotFound, PaymentStateError, SameBankBeneficiary
from apps.payments.events import (
    PaymentFailed,
    PaymentHeldForReview,
    PaymentInitiated,
    PaymentRequested,
)
from apps.payments.models import Payment, PaymentStep
from fintech.events import rfc3339
from fintech.money import validate_amount
from fintech.payment_network import new_end_to_end_id, seal_beneficiary
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work

logger = logging.getLogger("fintech.payments")


# -- outbound: accepted, screened, sent --------------------------------------------------------


def payment_initiate(
    *,
    account_id: uuid.UUID,
    amount: int,
    currency: str,
    beneficiary: Mapping[str, Any],
    initiated_by: str,
    on_behalf_of: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Payment:
    """Accept a payment to another bank and hold its amount on the account, or refuse it whole.

    `on_behalf_of` is the customer whose token asked: the account must be theirs. Every refusal
    (bad beneficiary 400, unknown account 404, blocked or closed account 409, another currency or
    insufficient funds 422) raises before anything is written.
    """
    now = now or timezone.now()
    validate_amount(amount, currency)
    payee = beneficiary_from(beneficiary)
    if payee.kind == ACCOUNT and payee.bank_code == settings.FINTECH_BANK_ISPB:
        raise SameBankBeneficiary("The beneficiary's account is at this bank: send a transfer instead.")
    with unit_of_work():
        account = accounts.movable_account(account_id=account_id, currency=currency, customer_id=on_behalf_of)
        payment = Payment.objects.create(
            account_id=account.id,
            customer_id=account.customer_id,
            amount=amount,
            currency=currency,
            end_to_end_id=new_end_to_end_id(ispb=settings.FINTECH_BANK_ISPB, at=now),
            beneficiary_kind=payee.kind,
            beneficiary_name=payee.name or None,
            beneficiary_document_type=payee.document_type,
            beneficiary_document=payee.document or None,
            beneficiary_bank_code=payee.bank_code,
            beneficiary_branch=payee.branch,
            beneficiary_account_number=payee.account_number or None,
            beneficiary_pix_key_type=payee.pix_key_type,
            beneficiary_pix_key=payee.pix_key or None,
            beneficiary_ref=payee.reference(),
            initiated_by=initiated_by,
            initiated_by_customer=on_behalf_of is not None,
            created_at=now,
            updated_at=now,
        )
        ledger.place_hold(
            account_id=account.id, amount=amount, currency=currency, operation="payment", operation_id=payment.id
        )
        record_steps([payment], PaymentStep.Step.INITIATED, now=now, detail="Amount held on the account")
        publish(
            PaymentInitiated(
                **payment_fields(payment),  # type: ignore[arg-type]
                customer_id=str(payment.customer_id),
                beneficiary_ref=payment.beneficiary_ref,
                initiated_by_customer=payment.initiated_by_customer,
                initiated_at=rfc3339(now),
            ),
            occurred_at=now,
        )
    return payment


def beneficiary_of(payment: Payment) -> Beneficiary:
    """The payment's beneficiary as it was accepted (decrypted)."""
    return Beneficiary(
        kind=payment.beneficiary_kind,
        name=payment.beneficiary_name or "",
        document_type=payment.beneficiary_document_type,
        document=payment.beneficiary_document or "",
        bank_code=payment.beneficiary_bank_code,
        branch=payment.beneficiary_branch,
        account_number=payment.beneficiary_account_number or "",
        pix_key_type=payment.beneficiary_pix_key_type,
        pix_key=payment.beneficiary_pix_key or "",
    )


def payment_fields(payment: Payment) -> dict[str, object]:
    return {
        "payment_id": str(payment.id),
        "account_id": str(payment.account_id),
        "amount": payment.amount,
        "currency": payment.currency,
    }


def record_steps(payments: Sequence[Payment], step: str, *, now: datetime, detail: str = "") -> None:
    PaymentStep.objects.bulk_create(
        PaymentStep(payment=payment, step=step, status=payment.status, detail=detail[:280], at=now)
        for payment in payments
    )


def _payments_for_update(payment_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Payment]:
    """The payments, locked in id order, in one statement; every one must exist."""
    found = {p.id: p for p in Payment.objects.select_for_update().filter(pk__in=set(payment_ids)).order_by("id")}
    missing = [payment_id for payment_id in payment_ids if payment_id not in found]
    if missing:
        raise PaymentNotFound(f"No payment {missing[0]}.")
    return found


def _awaiting_screening(payment: Payment) -> bool:
    return payment.status == Payment.Status.PENDING and payment.sent_at is None


SCREENING_DECISIONS = ("approve", "review", "reject")


def payments_screen(*, decisions: Mapping[uuid.UUID, str], now: datetime | None = None) -> list[Payment]:
    """The screening's decisions (payment id -> approve, review or reject), all in one go: approved
    payments are sent to the network, the others held for review or failed. A payment past its
    screening (a decision delivered twice) is left as it is."""
    now = now or timezone.now()
    unknown = sorted({decision for decision in decisions.values() if decision not in SCREENING_DECISIONS})
    if unknown:
        raise ValueError(f"Unknown screening decision {unknown[0]!r}.")
    with unit_of_work():
        payments = _payments_for_update(list(decisions))
        chosen: dict[str, list[Payment]] = {decision: [] for decision in SCREENING_DECISIONS}
        for payment_id, payment in payments.items():
            if _awaiting_screening(payment):
                chosen[decisions[payment_id]].append(payment)
        _send(chosen["approve"], now=now, detail="Approved by the screening")
        held = chosen["review"]
        for payment in held:
            payment.status = Payment.Status.REVIEW
            payment.updated_at = now
        Payment.objects.filter(pk__in=[p.id for p in held]).update(status=Payment.Status.REVIEW, updated_at=now)
        record_steps(held, PaymentStep.Step.REVIEW, now=now, detail="Held by the screening for an analyst")
        for payment in held:
            publish(
                PaymentHeldForReview(
                    **payment_fields(payment),  # type: ignore[arg-type]
                    customer_id=str(payment.customer_id),
                    held_at=rfc3339(now),
                ),
                occurred_at=now,
            )
        for payment in chosen["reject"]:
            _fail(payment, code="fraud_rejected", detail="Rejected by the screening", now=now)
    return [payments[payment_id] for payment_id in decisions]


REVIEW_OUTCOMES = {"approved": "", "rejected": "fraud_rejected", "expired": "review_expired"}


def payment_review_decide(
    *, payment_id: uuid.UUID, decision: str, decided_by: str, reason: str = "", now: datetime | None = None
) -> Payment:
    """An analyst (or the review's time-out) decided a payment held for review: approved sends
    it, rejected and expired fail it. A payment not in review (a decision delivered twice) is left
    as it is."""
    now = now or timezone.now()
    if decision not in REVIEW_OUTCOMES:
        raise ValueError(f"Unknown review decision {decision!r}.")
    with unit_of_work():
        payment = _payments_for_update([payment_id])[payment_id]
        if payment.status != Payment.Status.REVIEW:
            logger.info(
                "review decision for a payment not in review ignored",
                extra={"payment_id": str(payment_id), "status": payment.status, "decision": decision},
            )
            return payment
        detail = f"Review {decision} by {decided_by}" + (f": {reason}" if reason else "")
        if decision == "approved":
            payment.status = Payment.Status.PENDING
            _send([payment], now=now, detail=detail)
        else:
            _fail(payment, code=REVIEW_OUTCOMES[decision], detail=detail, now=now)
    return payment


def _send(payments: list[Payment], *, now: datetime, detail: str) -> None:
    """Move the held amounts to clearing and ask the network to pay. A payment whose account was
    blocked or closed while it waited fails instead (its hold is voided)."""
    if not payments:
        return
    snapshots = accounts.account_snapshots([p.account_id for p in payments])
    leaving = []
    for payment in payments:
        account = snapshots.get(payment.account_id)
        if account is None or account.status != "active":
            code = "account_closed" if account is None or account.status == "closed" else "account_blocked"
            _fail(payment, code=code, detail="The account is no longer active.", now=now)
        else:
            leaving.append(payment)
    if not leaving:
        return
    journals = ledger.payments_send(payment_ids=[p.id for p in leaving])
    voided = [str(payment_id) for payment_id, journal in journals.items() if journal is None]
    if voided:
        # Only a failed payment's hold is voided, and a failed payment is never sent.
        raise PaymentStateError(f"Payment {voided[0]} is being sent but its hold was voided.")
    for payment in leaving:
        payment.status = Payment.Status.PENDING
        payment.sent_at = now
        payment.updated_at = now
    Payment.objects.filter(pk__in=[p.id for p in leaving]).update(
        status=Payment.Status.PENDING, sent_at=now, updated_at=now
    )
    record_steps(leaving, PaymentStep.Step.SENT, now=now, detail=detail)
    for payment in leaving:
        payee = beneficiary_of(payment)
        publish(
            PaymentRequested(
                **payment_fields(payment),  # type: ignore[arg-type]
                end_to_end_id=payment.end_to_end_id,
                payer_ispb=settings.FINTECH_BANK_ISPB,
                beneficiary_kind=payment.beneficiary_kind,
                beneficiary_bank_code=payment.beneficiary_bank_code or None,
                beneficiary_ref=payment.beneficiary_ref,
                beneficiary_sealed=seal_beneficiary(payee.sealed_block(), payment_id=payment.id),
                requested_at=rfc3339(now),
            ),
            occurred_at=now,
        )


def _fail(payment: Payment, *, code: str, detail: str, now: datetime) -> None:
    ledger.payment_hold_release(payment_id=payment.id)
    payment.status = Payment.Status.FAILED
    payment.failure_code = code
    payment.failure_detail = detail[:280]
    payment.updated_at = now
    payment.save(update_fields=["status", "failure_code", "failure_detail", "updated_at"])
    record_steps([payment], PaymentStep.Step.FAILED, now=now, detail=detail)
    publish(
        PaymentFailed(
            **payment_fields(payment),  # type: ignore[arg-type]
            customer_id=str(payment.customer_id),
            failure_code=code,
            failed_at=rfc3339(now),
        ),
        occurred_at=now,
    )
