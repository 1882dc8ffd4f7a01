"""The payments context's part of the screening choreography, and its readers of the payment
network's topics (run by `manage.py consume --group payments --topics payment.processed,payment.received`).

What the network sends is validated against its schema before it gets here (the consumer's
`read_event`: a record that does not match goes to its `dlq.` topic); these handlers translate it
and the services decide whether it can be booked."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from apps.payments import services
from fintech.bus import subscribe
from fintech.events import ReceivedEvent, moment


@subscribe("fraud.screened", name="payments.continue_screened_payment", same_unit_of_work=True, batch=True)
def continue_screened_payments(events: Sequence[ReceivedEvent]) -> None:
    decisions = {
        uuid.UUID(event.data["subject_id"]): event.data["decision"]
        for event in events
        if event.data["subject_type"] == "payment"
    }
    if decisions:  # transfers' screenings cost nothing here
        services.payments_screen(decisions=decisions)


@subscribe("fraud.review_decided", name="payments.apply_review_decision", same_unit_of_work=True)
def apply_review_decision(event: ReceivedEvent) -> None:
    if event.data["subject_type"] != "payment":
        return
    services.payment_review_decide(
        payment_id=uuid.UUID(event.data["subject_id"]),
        decision=event.data["decision"],
        decided_by=event.data["decided_by"],
        reason=event.data.get("reason") or "",
    )


@subscribe("payment.processed", name="payments.record_network_answer")
def record_network_answer(event: ReceivedEvent) -> None:
    data = event.data
    services.payment_answer_record(
        answer=services.NetworkAnswer(
            message_id=event.id,
            payment_id=uuid.UUID(data["payment_id"]),
            status=data["status"],
            network_reference=data["network_reference"],
            return_reason=data.get("return_reason"),
            processed_at=moment(data["processed_at"]),
            amount=data.get("amount"),
            currency=data.get("currency"),
            end_to_end_id=data.get("end_to_end_id"),
            data=data,
        )
    )


@subscribe("payment.received", name="payments.book_inbound_credit")
def book_inbound_credit(event: ReceivedEvent) -> None:
    data = event.data
    services.payment_credit_receive(
        credit=services.CreditOrder(
            message_id=event.id,
            end_to_end_id=data["end_to_end_id"],
            amount=data["amount"],
            currency=data["currency"],
            creditor_ispb=data["creditor_ispb"],
            creditor_branch=data["creditor_branch"],
            creditor_account_number=data["creditor_account_number"],
            debtor_ispb=data["debtor_ispb"],
            network_reference=data["network_reference"],
            sent_at=moment(data["sent_at"]),
            data=data,
        )
    )
