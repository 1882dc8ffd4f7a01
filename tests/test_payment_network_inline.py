"""The embedded default: the payment network simulated in process (FINTECH_PAYMENT_NETWORK=
simulator-inline). A payment that leaves is answered right after its commit through the same
handler and services as an answer read from Kafka; credits come in through the same command as
the Kafka simulator's; the network's day is a settlement file that reconciles."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.accounts import services as accounts
from apps.ledger import public as ledger
from apps.payments.models import InboundCredit, Payment
from fintech import bus
from outbox.models import InboxRecord
from outbox.network_simulator import inline
from tests.factories import open_account
from tests.payments_support import CLOSED_BENEFICIARY, initiate, screen, screening_by_the_test
from tests.spine.support import PRODUCTION_ENV, ROOT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def simulated_network(settings, tmp_path):
    settings.FINTECH_PAYMENT_NETWORK = "simulator-inline"
    settings.FINTECH_EVENT_DISPATCH = "inline"
    settings.KAFKA_BOOTSTRAP_SERVERS = ""
    settings.FINTECH_PAYMENT_SIMULATOR_SETTLEMENT_FILE = str(tmp_path / "settlement-{date}.csv")
    installed_here = not inline.installed()
    if installed_here:  # on a run with Kafka configured, the default is the real network
        inline.install()
    with screening_by_the_test():
        yield tmp_path / f"settlement-{timezone.now().date().isoformat()}.csv"
    if installed_here:
        inline.uninstall()


def reconciles(path) -> str:
    out = io.StringIO()
    call_command("reconcile_settlement", str(path), "--quiet", stdout=out)
    call_command("reconcile", "--quiet", stdout=out)
    return out.getvalue()


def balance(account) -> int:
    return ledger.balances_of([account.id])[account.id].balance


def test_an_approved_payment_is_settled_in_process_right_after_it_leaves(simulated_network):
    account = open_account(balance=10_000)
    payment = initiate(account, 2_500)
    screen(payment, "approve")
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SETTLED
    assert payment.network_reference.startswith("SIM")
    assert [step for step, _ in payment.history.values_list("step", "status")] == ["initiated", "sent", "settled"]
    assert balance(account) == 7_500
    assert str(payment.id) in simulated_network.read_text()
    assert "the settlement file reconciles" in reconciles(simulated_network)


def test_a_payment_to_an_account_closed_at_the_other_bank_comes_back(simulated_network):
    account = open_account(balance=10_000)
    payment = initiate(account, 2_500, CLOSED_BENEFICIARY)
    screen(payment, "approve")
    payment.refresh_from_db()
    assert (payment.status, payment.return_reason) == ("returned", "AC04 closed account number")
    assert balance(account) == 10_000
    assert "the settlement file reconciles" in reconciles(simulated_network)


def test_the_simulator_answers_through_the_inbox_like_a_consumer():
    account = open_account(balance=10_000)
    payment = initiate(account, 1_000)
    screen(payment, "approve")
    assert bus.subscription_named("payments.record_network_answer") is not None
    assert InboxRecord.objects.filter(handler="payments.record_network_answer").count() == 1


def test_credits_come_in_through_the_simulator_command_and_a_closed_account_sends_them_back(simulated_network):
    account, closed = open_account(balance=1_000), open_account(balance=0)
    accounts.account_close(account_id=closed.id, reason="left", changed_by="ops")
    out = io.StringIO()
    call_command(
        "simulate_payment_network",
        "--credit",
        account.number,
        "700",
        "--credit",
        closed.number,
        "300",
        "--credit",
        "00000000-0",
        "200",
        stdout=out,
    )
    assert out.getvalue().count("credit E88888888") == 3
    assert balance(account) == 1_700
    assert balance(closed) == 0
    statuses = dict(InboundCredit.objects.values_list("creditor_account_number", "status"))
    assert statuses == {account.number: "credited", closed.number: "returned", "00000000-0": "returned"}
    # The network took the returned credits back: its file says so, and it reconciles.
    assert simulated_network.read_text().count(",inbound,returned,") == 2
    assert "the settlement file reconciles" in reconciles(simulated_network)


def test_without_kafka_the_simulator_command_only_delivers_credits():
    with pytest.raises(CommandError, match="plays the network over Kafka"):
        call_command("simulate_payment_network")


def test_production_refuses_the_simulator():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **PRODUCTION_ENV, "FINTECH_PAYMENT_NETWORK": "simulator-inline"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "FINTECH_PAYMENT_NETWORK=simulator-inline is a simulator" in result.stderr
