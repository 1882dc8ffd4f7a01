"""Commands of the payments context: payments to other banks through the payment network, the
network's answers to them, and the credits the network brings for our customers.

An outbound payment: `payment_initiate` holds its amount and publishes `payment.initiated`; the
fraud context screens it (`fraud.screened`, later `fraud.review_decided` for one held for review)
and `payments_screen` or `payment_review_decide` sends it (customer -> clearing, `payment.requested`
for the network), holds it for review, or fails it (hold voided). The network's answer
(`payment.processed`) is booked by `payment_answer_record`: settled (clearing -> settlement) or
returned (clearing -> customer). A credit from another bank (`payment.received`) is booked by
`payment_credit_receive` (settlement -> customer) or returned to the network.

Whatever the network sends is checked before anything is booked: an answer for a payment we do
not know or never sent, with another amount or currency, or contradicting an earlier answer is
not booked but logged, counted and kept (`IgnoredNetworkMessage`) for operations; the same answer
or credit twice is booked once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.accounts import public as accounts
from apps.ledger import public as ledger
from apps.payments import selectors
from apps.payments.beneficiaries import ACCOUNT, Beneficiary, beneficiary_from
from apps.payments.errors import PaymentNotFound, PaymentStateError, SameBankBeneficiary
from apps.payments.events import (
    PaymentCredited,
    PaymentCreditReturned,
    PaymentFailed,
    PaymentHeldForReview,
    PaymentInitiated,
    PaymentRequested,
    PaymentReturned,
    PaymentSettled,
)
from apps.payments.metrics import (
    INBOUND_CREDITS,
    NETWORK_MESSAGES_IGNORED,
    PAYMENTS_ANSWERED,
    PAYMENTS_FLAGGED_OVERDUE,
    PAYMENTS_OVERDUE,
)
from apps.payments.models import IgnoredNetworkMessage, InboundCredit, Payment, PaymentStep
from fintech.events import rfc3339
from fintech.money import validate_amount
from fintech.payment_network import new_end_to_end_id, seal_beneficiary
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work

logger = logging.getLogger("fintech.payments")

ANSWER_TYPE = "payment.processed"
CREDIT_TYPE = "payment.received"


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
        _record_steps([payment], PaymentStep.Step.INITIATED, now=now, detail="Amount held on the account")
        publish(
            PaymentInitiated(
                **_payment_fields(payment),  # type: ignore[arg-type]
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


def _payment_fields(payment: Payment) -> dict[str, object]:
    return {
        "payment_id": str(payment.id),
        "account_id": str(payment.account_id),
        "amount": payment.amount,
        "currency": payment.currency,
    }


def _record_steps(payments: Sequence[Payment], step: str, *, now: datetime, detail: str = "") -> None:
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
        _record_steps(held, PaymentStep.Step.REVIEW, now=now, detail="Held by the screening for an analyst")
        for payment in held:
            publish(
                PaymentHeldForReview(
                    **_payment_fields(payment),  # type: ignore[arg-type]
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
    _record_steps(leaving, PaymentStep.Step.SENT, now=now, detail=detail)
    for payment in leaving:
        payee = beneficiary_of(payment)
        publish(
            PaymentRequested(
                **_payment_fields(payment),  # type: ignore[arg-type]
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
    _record_steps([payment], PaymentStep.Step.FAILED, now=now, detail=detail)
    publish(
        PaymentFailed(
            **_payment_fields(payment),  # type: ignore[arg-type]
            customer_id=str(payment.customer_id),
            failure_code=code,
            failed_at=rfc3339(now),
        ),
        occurred_at=now,
    )


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


def _ignore(
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


def _duplicate(*, message_id: uuid.UUID, message_type: str, subject: str) -> None:
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
            _ignore(
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
            _duplicate(message_id=answer.message_id, message_type=ANSWER_TYPE, subject=str(payment.id))
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
    _record_steps([payment], status, now=now, detail=detail)


def _settle(payment: Payment, answer: NetworkAnswer, *, now: datetime) -> None:
    journal_id = ledger.payment_settle(payment_id=payment.id, amount=payment.amount, currency=payment.currency)
    _answered(payment, answer, status=Payment.Status.SETTLED, journal_id=journal_id, now=now)
    publish(
        PaymentSettled(
            **_payment_fields(payment),  # type: ignore[arg-type]
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
            **_payment_fields(payment),  # type: ignore[arg-type]
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
        _record_steps(flagged, PaymentStep.Step.FLAGGED_OVERDUE, now=now, detail="No answer from the network in time")
    for payment in flagged:
        logger.warning(
            "payment flagged: no answer from the network in time",
            extra={"payment_id": str(payment.id), "sent_at": rfc3339(payment.sent_at or now)},
        )
    PAYMENTS_FLAGGED_OVERDUE.inc(len(flagged))
    PAYMENTS_OVERDUE.set(selectors.overdue(sent_before=deadline).count())
    return flagged


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
    accounts.BlockedAccount,
    accounts.ClosedAccount,
    accounts.AccountCurrencyMismatch,
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
        _duplicate(message_id=credit.message_id, message_type=CREDIT_TYPE, subject=credit.end_to_end_id)
        return
    _ignore(
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
