"""Payments to and from other banks through the services: the hold, the screening's decisions,
the network's answers (and what must never be booked), credits from other banks, the overdue
flag, and the books after each of them (the suite's autouse reconcile also proves that clearing
holds exactly the payments in the network's hands)."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.accounts import public as accounts_public
from apps.accounts import services as accounts
from apps.fraud.events import FraudScreened
from apps.ledger import public as ledger
from apps.ledger.errors import InsufficientFunds
from apps.ledger.models import Hold, JournalTransaction, LedgerAccount
from apps.ledger.reconciliation import reconcile_ledger
from apps.payments import services
from apps.payments.errors import SameBankBeneficiary
from apps.payments.models import IgnoredNetworkMessage, InboundCredit, Payment
from fintech.events import rfc3339
from fintech.payment_network import unseal_beneficiary
from outbox.models import OutboxEvent
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work
from tests.factories import open_account
from tests.payments_support import (
    ACCOUNT_BENEFICIARY,
    PIX_BENEFICIARY,
    answer,
    credit_order,
    decide_review,
    initiate,
    screen,
    sent_payment,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("payments_answered_by_the_test")]


def available(account) -> int:
    return ledger.balances_of([account.id])[account.id].available


def posted(account) -> int:
    return ledger.balances_of([account.id])[account.id].balance


def clearing(currency: str = "BRL") -> int:
    return LedgerAccount.objects.get(code=f"system:clearing:{currency}").balance


def settlement(currency: str = "BRL") -> int:
    return LedgerAccount.objects.get(code=f"system:settlement:{currency}").balance


def published(event_type: str) -> list[dict[str, Any]]:
    return [row.envelope for row in OutboxEvent.objects.filter(event_type=event_type).order_by("id")]


def ignored(reason: str) -> list[IgnoredNetworkMessage]:
    return list(IgnoredNetworkMessage.objects.filter(reason=reason))


def counted(reason: str, message_type: str = "payment.processed") -> float:
    value = REGISTRY.get_sample_value(
        "fintech_payment_network_messages_ignored_total", {"message_type": message_type, "reason": reason}
    )
    return value or 0.0


# -- accepted -----------------------------------------------------------------------------------


def test_a_payment_holds_its_amount_and_names_its_beneficiary_only_by_a_pseudonymous_reference():
    account = open_account(balance=10_000)
    payment = initiate(account, 2_500)
    assert payment.status == Payment.Status.PENDING
    assert payment.sent_at is None
    assert (posted(account), available(account)) == (10_000, 7_500)
    [event] = published("payment.initiated")
    assert event["data"]["payment_id"] == str(payment.id)
    assert event["data"]["beneficiary_ref"] == payment.beneficiary_ref
    text = json.dumps(event)
    for personal in ("Maria", "Oliveira", "52998224725", "529.982.247-25", "123456-7"):
        assert personal not in text
    assert list(payment.history.values_list("step", "status")) == [("initiated", "pending")]


def test_the_beneficiary_is_encrypted_at_rest():
    payment = initiate(open_account(balance=10_000), 100, PIX_BENEFICIARY)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT beneficiary_name, beneficiary_document, beneficiary_account_number, beneficiary_pix_key "
            "FROM payments_payment WHERE id = %s",
            [payment.id.hex if connection.vendor == "sqlite" else payment.id],
        )
        stored = cursor.fetchone()
    assert stored[3].startswith("v1.")
    assert "example.com" not in stored[3]
    assert Payment.objects.get(pk=payment.id).beneficiary_pix_key == "maria.oliveira@example.com"


def test_the_same_beneficiary_always_gets_the_same_reference_and_another_one_another():
    account = open_account(balance=10_000)
    first, again = initiate(account, 100), initiate(account, 100)
    other = initiate(account, 100, {**ACCOUNT_BENEFICIARY, "account_number": "654321-0"})
    assert first.beneficiary_ref == again.beneficiary_ref != other.beneficiary_ref


def test_insufficient_funds_refuse_the_payment_whole():
    account = open_account(balance=1_000)
    before = (Payment.objects.count(), Hold.objects.count(), OutboxEvent.objects.count())
    with pytest.raises(InsufficientFunds) as refused:
        initiate(account, 1_001)
    assert refused.value.code == "insufficient_funds"
    assert refused.value.status == 422
    assert (Payment.objects.count(), Hold.objects.count(), OutboxEvent.objects.count()) == before


@pytest.mark.parametrize(
    ("change", "code"),
    [("block", "account_blocked"), ("close", "account_closed"), ("currency", "currency_mismatch")],
)
def test_an_account_that_cannot_pay_refuses_the_payment(change, code):
    account = open_account(balance=0 if change == "close" else 1_000)
    currency = "BRL"
    if change == "block":
        accounts.account_block(account_id=account.id, reason="test", changed_by="ops")
    elif change == "close":
        accounts.account_close(account_id=account.id, reason="test", changed_by="ops")
    else:
        currency = "USD"
    refusals = (accounts_public.AccountBlocked, accounts_public.AccountClosed, accounts_public.CurrencyMismatch)
    with pytest.raises(refusals) as refused:
        services.payment_initiate(
            account_id=account.id, amount=100, currency=currency, beneficiary=ACCOUNT_BENEFICIARY, initiated_by="t"
        )
    assert refused.value.code == code
    assert not Payment.objects.exists()


def test_a_customer_pays_only_from_its_own_accounts():
    account = open_account(balance=1_000)
    with pytest.raises(accounts_public.AccountNotFound):
        services.payment_initiate(
            account_id=account.id,
            amount=100,
            currency="BRL",
            beneficiary=ACCOUNT_BENEFICIARY,
            initiated_by="stranger",
            on_behalf_of=uuid.uuid4(),
        )
    assert not Payment.objects.exists()


def test_a_beneficiary_at_this_bank_is_refused(settings):
    with pytest.raises(SameBankBeneficiary) as refused:
        initiate(open_account(balance=1_000), 100, {**ACCOUNT_BENEFICIARY, "bank_code": settings.FINTECH_BANK_ISPB})
    assert refused.value.code == "same_bank_beneficiary"
    assert refused.value.status == 422


# -- screened and sent --------------------------------------------------------------------------


def test_an_approved_payment_moves_to_clearing_and_asks_the_network_with_the_beneficiary_sealed():
    account = open_account(balance=10_000)
    payment = sent_payment(account, 2_500)
    assert (posted(account), available(account)) == (7_500, 7_500)
    assert clearing() == 2_500
    [request] = published("payment.requested")
    data = request["data"]
    assert data["payment_id"] == str(payment.id)
    assert data["end_to_end_id"] == payment.end_to_end_id
    assert data["beneficiary_bank_code"] == "00000000"
    text = json.dumps(request)
    for personal in ("Maria", "52998224725", "123456-7"):
        assert personal not in text
    block = unseal_beneficiary(data["beneficiary_sealed"], payment_id=payment.id)
    assert block == {
        "kind": "account",
        "name": "Maria Oliveira",
        "document_type": "cpf",
        "document": "52998224725",
        "bank_code": "00000000",
        "branch": "1234",
        "account_number": "123456-7",
    }
    # Sealed for this payment: under another payment's id it does not open.
    with pytest.raises(Exception, match="does not authenticate"):
        unseal_beneficiary(data["beneficiary_sealed"], payment_id=uuid.uuid4())
    assert [step for step, _ in payment.history.values_list("step", "status")] == ["initiated", "sent"]


def test_a_screening_delivered_twice_sends_once():
    account = open_account(balance=10_000)
    payment = sent_payment(account, 1_000)
    screen(payment, "approve")
    screen(payment, "reject")  # too late: the payment left
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert len(published("payment.requested")) == 1
    assert clearing() == 1_000
    assert JournalTransaction.objects.filter(posting_key=f"payment:{payment.id}").count() == 1


def test_a_rejected_payment_fails_and_its_hold_is_voided():
    account = open_account(balance=10_000)
    payment = initiate(account, 4_000)
    screen(payment, "reject")
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == ("failed", "fraud_rejected")
    assert (posted(account), available(account)) == (10_000, 10_000)
    assert not published("payment.requested")
    assert published("payment.failed")[0]["data"]["failure_code"] == "fraud_rejected"


@pytest.mark.parametrize(
    ("decision", "status", "failure_code"),
    [("approved", "pending", ""), ("rejected", "failed", "fraud_rejected"), ("expired", "failed", "review_expired")],
)
def test_a_payment_held_for_review_waits_and_then_goes_as_the_analyst_decides(decision, status, failure_code):
    account = open_account(balance=10_000)
    payment = initiate(account, 3_000)
    screen(payment, "review")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REVIEW
    assert available(account) == 7_000
    assert clearing() == 0
    assert published("payment.held_for_review")[0]["data"]["payment_id"] == str(payment.id)

    decide_review(payment, decision)
    decide_review(payment, "rejected")  # a second decision changes nothing
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == (status, failure_code)
    if decision == "approved":
        assert payment.sent_at is not None
        assert clearing() == 3_000
        assert len(published("payment.requested")) == 1
    else:
        assert available(account) == 10_000
        assert clearing() == 0


def test_a_payment_whose_account_was_blocked_during_its_review_fails_instead_of_leaving():
    account = open_account(balance=10_000)
    payment = initiate(account, 3_000)
    screen(payment, "review")
    accounts.account_block(account_id=account.id, reason="court order", changed_by="ops")
    decide_review(payment, "approved")
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == ("failed", "account_blocked")
    assert clearing() == 0


def test_screenings_of_transfers_are_not_the_payments_business():
    with unit_of_work():
        publish(
            FraudScreened(
                screening_id=str(uuid.uuid4()),
                subject_type="transfer",
                subject_id=str(uuid.uuid4()),
                account_id=str(uuid.uuid4()),
                amount=100,
                currency="BRL",
                decision="approve",
                score=0,
                rules=[],
                screened_at=rfc3339(timezone.now()),
            )
        )
    assert not Payment.objects.exists()


# -- the network's answers ----------------------------------------------------------------------


def test_settled_moves_the_money_from_clearing_to_settlement():
    account = open_account(balance=10_000)
    payment = sent_payment(account, 2_500)
    before = settlement()
    services.payment_answer_record(answer=answer(payment, "settled", network_reference="NET-77"))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SETTLED
    assert payment.network_reference == "NET-77"
    assert (clearing(), settlement() - before) == (0, -2_500)
    assert posted(account) == 7_500
    [event] = published("payment.settled")
    assert event["data"]["journal_transaction_id"] == str(payment.journal_transaction_id)
    assert [step for step, _ in payment.history.values_list("step", "status")] == ["initiated", "sent", "settled"]


def test_returned_gives_the_money_back_to_the_customer():
    account = open_account(balance=10_000)
    payment = sent_payment(account, 2_500)
    services.payment_answer_record(answer=answer(payment, "returned", return_reason="AC04 closed account number"))
    payment.refresh_from_db()
    assert (payment.status, payment.return_reason) == ("returned", "AC04 closed account number")
    assert (posted(account), available(account), clearing()) == (10_000, 10_000, 0)
    assert published("payment.returned")[0]["data"]["return_reason"] == "AC04 closed account number"


def test_the_same_answer_twice_is_booked_once():
    account = open_account(balance=10_000)
    payment = sent_payment(account, 2_500)
    first = answer(payment, "settled")
    before = counted("duplicate")
    services.payment_answer_record(answer=first)
    services.payment_answer_record(answer=first)  # the very same message
    services.payment_answer_record(answer=answer(payment, "settled"))  # the network said it again
    assert counted("duplicate") - before == 2
    assert JournalTransaction.objects.filter(posting_key=f"payment-settlement:{payment.id}").count() == 1
    assert len(published("payment.settled")) == 1
    assert posted(account) == 7_500
    assert not IgnoredNetworkMessage.objects.exists()


def test_an_answer_that_contradicts_the_first_is_kept_and_not_booked():
    account = open_account(balance=10_000)
    payment = sent_payment(account, 2_500)
    services.payment_answer_record(answer=answer(payment, "settled"))
    services.payment_answer_record(answer=answer(payment, "returned"))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SETTLED
    assert posted(account) == 7_500
    assert len(ignored("conflicting_answer")) == 1


def test_an_answer_for_an_unknown_payment_is_kept_logged_and_counted_not_booked(caplog):
    before = counted("unknown_payment")
    payment_id = uuid.uuid4()
    message = services.NetworkAnswer(
        message_id=uuid.uuid4(),
        payment_id=payment_id,
        status="settled",
        network_reference="NET-9",
        return_reason=None,
        processed_at=timezone.now(),
        data={"payment_id": str(payment_id), "status": "settled"},
    )
    journals = JournalTransaction.objects.count()
    assert services.payment_answer_record(answer=message) is None
    [kept] = ignored("unknown_payment")
    assert (kept.subject, kept.message_type, kept.message_id) == (
        str(payment_id),
        "payment.processed",
        message.message_id,
    )
    assert counted("unknown_payment") - before == 1
    assert "payment network message not booked" in caplog.text
    assert JournalTransaction.objects.count() == journals


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount": 2_499}, "amount_mismatch"),
        ({"currency": "USD"}, "currency_mismatch"),
        ({"end_to_end_id": "E88888888202611300000AAAAAAAAAAA"}, "end_to_end_mismatch"),
    ],
)
def test_an_answer_with_other_terms_is_kept_and_the_payment_keeps_waiting(changes, reason):
    account = open_account(balance=10_000)
    payment = sent_payment(account, 2_500)
    services.payment_answer_record(answer=answer(payment, "settled", **changes))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert clearing() == 2_500
    assert len(ignored(reason)) == 1
    # The right answer still settles it.
    services.payment_answer_record(answer=answer(payment, "settled"))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SETTLED


def test_an_answer_for_a_payment_never_sent_is_kept_not_booked():
    account = open_account(balance=10_000)
    payment = initiate(account, 2_500)  # not screened yet: nothing went to the network
    services.payment_answer_record(answer=answer(payment, "settled"))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.PENDING
    assert (posted(account), available(account)) == (10_000, 7_500)
    assert len(ignored("not_sent")) == 1


# -- credits from other banks -------------------------------------------------------------------


def test_a_credit_is_booked_against_settlement_once_per_end_to_end_id():
    account = open_account(balance=1_000)
    order = credit_order(account, 700)
    before = settlement()
    services.payment_credit_receive(credit=order)
    services.payment_credit_receive(credit=order)
    services.payment_credit_receive(credit=credit_order(account, 700, end_to_end_id=order.end_to_end_id))
    assert posted(account) == 1_700
    assert settlement() - before == 700
    credit = InboundCredit.objects.get(end_to_end_id=order.end_to_end_id)
    assert (credit.status, credit.account_id) == ("credited", account.id)
    assert len(published("payment.credited")) == 1
    assert counted("duplicate", "payment.received") >= 2


def test_a_credit_under_a_booked_end_to_end_id_with_other_terms_is_kept_not_booked():
    account = open_account(balance=1_000)
    order = credit_order(account, 700)
    services.payment_credit_receive(credit=order)
    services.payment_credit_receive(credit=credit_order(account, 9_000, end_to_end_id=order.end_to_end_id))
    assert posted(account) == 1_700
    assert len(ignored("conflicting_credit")) == 1


@pytest.mark.parametrize("case", ["unknown", "closed", "blocked", "currency", "other bank"])
def test_a_credit_that_cannot_be_booked_is_returned_to_the_network(case):
    account = open_account(balance=0)
    changes: dict[str, Any] = {}
    reason = {"unknown": "account_not_found", "closed": "account_closed", "blocked": "account_blocked"}.get(case)
    if case == "closed":
        accounts.account_close(account_id=account.id, reason="left the bank", changed_by="ops")
    elif case == "blocked":
        accounts.account_block(account_id=account.id, reason="court order", changed_by="ops")
    elif case == "currency":
        changes, reason = {"currency": "USD"}, "currency_mismatch"
    elif case == "other bank":
        changes, reason = {"creditor_ispb": "12345678"}, "account_not_found"
    order = credit_order(None if case == "unknown" else account, 500, **changes)
    journals = JournalTransaction.objects.count()
    services.payment_credit_receive(credit=order)
    services.payment_credit_receive(credit=order)
    credit = InboundCredit.objects.get(end_to_end_id=order.end_to_end_id)
    assert (credit.status, credit.return_reason, credit.journal_transaction_id) == ("returned", reason, None)
    assert JournalTransaction.objects.count() == journals
    [returned] = published("payment.credit_returned")
    assert returned["subject"] == order.end_to_end_id
    assert returned["data"]["return_reason"] == reason


# -- no answer in time --------------------------------------------------------------------------


def test_a_payment_without_an_answer_in_time_is_flagged_once_and_never_returned_by_itself(settings, caplog):
    settings.FINTECH_PAYMENT_ANSWER_TIMEOUT_SECONDS = 60
    account = open_account(balance=10_000)
    late, recent = sent_payment(account, 1_000), sent_payment(account, 2_000)
    Payment.objects.filter(pk=late.id).update(sent_at=timezone.now() - timedelta(seconds=61))
    flagged_before = REGISTRY.get_sample_value("fintech_payments_flagged_overdue_total") or 0

    assert [p.id for p in services.payments_flag_overdue()] == [late.id]
    assert services.payments_flag_overdue() == []  # flagged once
    late.refresh_from_db()
    assert late.status == Payment.Status.PENDING
    assert late.overdue_since is not None
    assert late.history.filter(step="flagged_overdue").count() == 1
    assert (REGISTRY.get_sample_value("fintech_payments_flagged_overdue_total") or 0) - flagged_before == 1
    assert REGISTRY.get_sample_value("fintech_payments_overdue") == 1
    assert "no answer from the network in time" in caplog.text
    assert clearing() == 3_000  # still owed to the network
    recent.refresh_from_db()
    assert recent.overdue_since is None

    # The network answers after all: booked as any answer, and the gauge goes down.
    services.payment_answer_record(answer=answer(late, "settled"))
    services.payments_flag_overdue()
    assert REGISTRY.get_sample_value("fintech_payments_overdue") == 0


@pytest.mark.corrupts_books
def test_reconcile_finds_clearing_that_does_not_hold_the_payments_in_flight():
    account = open_account(balance=10_000)
    payment = sent_payment(account, 2_500)
    assert reconcile_ledger().ok
    Payment.objects.filter(pk=payment.id).update(status=Payment.Status.SETTLED)  # behind the services' back
    problems = reconcile_ledger().problems
    assert problems == ["clearing holds 2500 BRL but the payments sent to the network and not answered sum to 0"]
