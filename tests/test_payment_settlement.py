"""`manage.py reconcile_settlement`: the network's settlement file against our payments and
credits; missing, extra, mismatched and unreadable items are reported and fail the command."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.payments import services
from apps.payments.models import InboundCredit, Payment
from fintech.payment_network import INBOUND, OUTBOUND, SettlementItem, new_end_to_end_id, write_settlement_file
from tests.factories import open_account
from tests.payments_support import answer, credit_order, sent_payment

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("payments_answered_by_the_test")]


def today() -> str:
    return timezone.now().date().isoformat()


def row_of_payment(payment: Payment) -> SettlementItem:
    return SettlementItem(
        date=today(),
        end_to_end_id=payment.end_to_end_id,
        payment_id=str(payment.id),
        direction=OUTBOUND,
        status=payment.status,
        amount=payment.amount,
        currency=payment.currency,
        network_reference=payment.network_reference,
        return_reason=payment.return_reason,
    )


def row_of_credit(credit: InboundCredit) -> SettlementItem:
    return SettlementItem(
        date=today(),
        end_to_end_id=credit.end_to_end_id,
        payment_id="",
        direction=INBOUND,
        status=credit.status,
        amount=credit.amount,
        currency=credit.currency,
        network_reference=credit.network_reference,
        return_reason=credit.return_reason,
    )


@pytest.fixture
def day():
    """A day of the network: a settled and a returned payment, a credit booked and one returned."""
    account = open_account(balance=10_000)
    settled, returned = sent_payment(account, 1_000), sent_payment(account, 2_000)
    services.payment_answer_record(answer=answer(settled, "settled"))
    services.payment_answer_record(answer=answer(returned, "returned"))
    credited = services.payment_credit_receive(credit=credit_order(account, 700))
    refused = services.payment_credit_receive(credit=credit_order(None, 300))
    for payment in (settled, returned):
        payment.refresh_from_db()
    return [row_of_payment(settled), row_of_payment(returned), row_of_credit(credited), row_of_credit(refused)]


def reconcile(path) -> tuple[str, str, CommandError | None]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("reconcile_settlement", str(path), stdout=out, stderr=err)
    except CommandError as error:
        return out.getvalue(), err.getvalue(), error
    return out.getvalue(), err.getvalue(), None


def test_a_file_that_lists_what_we_booked_reconciles(tmp_path, day):
    path = tmp_path / "settlement.csv"
    write_settlement_file(path, day)
    out, err, error = reconcile(path)
    assert error is None, out
    assert "read 4 rows" in out
    assert "4 match our books" in out
    assert "the settlement file reconciles" in out
    assert "rows [" in err


def test_missing_extra_mismatched_and_unreadable_items_are_each_reported_and_fail(tmp_path, day):
    settled, returned, credited, _refused = day  # the refused credit is missing from the file
    stranger = SettlementItem(
        date=today(),
        end_to_end_id=new_end_to_end_id(ispb="88888888", at=timezone.now()),
        payment_id=str(uuid.uuid4()),
        direction=OUTBOUND,
        status="settled",
        amount=5,
        currency="BRL",
        network_reference="NET-X",
    )
    rows = [
        replace(settled, amount=settled.amount + 1),
        replace(returned, status="settled", return_reason=""),
        credited,
        credited,  # listed twice
        stranger,
    ]
    path = tmp_path / "settlement.csv"
    write_settlement_file(path, rows)
    with open(path, "a") as handle:
        handle.write("yesterday,E1,,inbound,credited,10,BRL,NET,\n")
    out, _, error = reconcile(path)
    assert error is not None
    assert str(error) == "the settlement file does not reconcile: 1 missing, 2 extra, 2 mismatched, 1 unreadable"
    assert f"inbound {_refused.end_to_end_id}: returned 300 BRL in our books, not in the file" in out
    assert f"outbound {stranger.payment_id}: in the file (settled 5 BRL), not ours" in out
    assert f"inbound {credited.end_to_end_id}: listed twice in the file" in out
    assert f"outbound {settled.payment_id}: amount 1001 in the file, 1000 in our books" in out
    assert f"outbound {returned.payment_id}: settled in the file, returned in our books" in out
    assert "line 7: date is not YYYY-MM-DD" in out


def test_a_payment_the_network_settled_while_we_still_wait_is_a_mismatch(tmp_path):
    payment = sent_payment(open_account(balance=10_000), 1_000)
    path = tmp_path / "settlement.csv"
    write_settlement_file(path, [replace(row_of_payment(payment), status="settled")])
    out, _, error = reconcile(path)
    assert error is not None
    assert f"outbound {payment.id}: settled in the file, pending in our books" in out


def test_a_large_file_is_read_in_chunks_with_a_progress_bar(tmp_path):
    rows = [
        SettlementItem(
            date=today(),
            end_to_end_id=new_end_to_end_id(ispb="88888888", at=timezone.now()),
            payment_id="",
            direction=INBOUND,
            status="credited",
            amount=10,
            currency="BRL",
            network_reference=f"NET-{index}",
        )
        for index in range(2_500)
    ]
    path = tmp_path / "settlement.csv"
    write_settlement_file(path, rows)
    _, err, error = reconcile(path)
    assert error is not None
    assert "2500 extra" in str(error)
    assert "rows [##########" in err
    assert err.rstrip().endswith("2500/2500")
    assert "1000/2500" in err


def test_an_unreadable_file_is_a_command_error(tmp_path):
    path = tmp_path / "settlement.csv"
    path.write_text("not,a,settlement\n")
    _, _, error = reconcile(path)
    assert error is not None
    assert "header lacks" in str(error)
    _, _, error = reconcile(tmp_path / "absent.csv")
    assert error is not None
    assert "cannot read the settlement file" in str(error)
