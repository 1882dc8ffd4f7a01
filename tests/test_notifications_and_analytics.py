"""A day at the bank seen by its last two contexts: customers onboarded (one refused), deposits,
a transfer completed and one failed, a transfer held for review and approved, payments settled,
returned, and held for review and rejected, a credit from another bank booked and one refused,
fraud screenings and alerts. Notifications and analytics must produce exactly the expected
messages (count, channel, recipient, language, content) and figures; a second delivery of every
event changes nothing; `rebuild_analytics` gives the same figures.

Everything goes through the contexts' services: the fraud context screens the transfers and the
payments, the payments context books them, and the payment network simulated in process
(outbox/network_simulator/inline.py) answers the payments and brings the credits, its messages
delivered to the payments context like records of its topics. Notifications and analytics hear
only what the bank booked: an answer the bank refuses to book (an unknown payment, another
amount, a duplicate) tells nobody and counts nothing.
"""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from apps.accounts import services as accounts
from apps.analytics.models import DailyFigure, Fact
from apps.customers import services as customers
from apps.fraud import services as fraud
from apps.notifications import channels
from apps.notifications import services as notifications
from apps.notifications.models import Notification
from apps.notifications.tests.providers import push_provider
from apps.payments.models import IgnoredNetworkMessage, InboundCredit, Payment
from apps.transactions import services as transactions
from fintech import bus
from fintech.events import rfc3339
from fintech.payment_network import new_end_to_end_id
from outbox.dispatcher import deliver, dispatch, received_from_envelope
from outbox.models import DeadLetter, DeliveryAttempt, InboxRecord, OutboxEvent
from outbox.network_simulator import inline
from outbox.network_simulator.network import network_message
from outbox.unit_of_work import unit_of_work
from tests.factories import deposit, new_cpf
from tests.payments_support import ACCOUNT_BENEFICIARY, CLOSED_BENEFICIARY, initiate, network_in_process

pytestmark = pytest.mark.django_db

SECRET = "w" * 40


def deliver_everything() -> None:
    """What the dispatchers would do: deliver until nothing is left (handlers publish too)."""
    for _ in range(20):
        if not dispatch(limit=1000).events:
            return
    raise AssertionError("events kept coming")


def onboard(name: str, email: str, *, language: str = "pt-BR", verify: bool = True):
    document = new_cpf()
    customer = customers.customer_create(name=name, email=email, document=document, language=language)
    if verify:
        customers.customer_verify(customer_id=customer.id, reviewer="kyc-analyst")
    return customer, document


def credit_from_another_bank(account, amount: int) -> list[dict[str, Any]]:
    """The simulated network's credit for `account`, handed to the bank as its message."""
    messages = inline.network().credit(account_number=account.number, amount=amount, currency="BRL", now=timezone.now())
    for message in messages:
        inline.deliver(message)
    return messages


def figures() -> dict[tuple[str, str], tuple[int, int]]:
    return {(f.metric, f.currency): (f.count, f.volume) for f in DailyFigure.objects.all()}


@pytest.fixture
def network(settings, tmp_path):
    with network_in_process(settings, str(tmp_path / "settlement-{date}.csv")):
        yield


@pytest.fixture
def bank_day(settings, network):
    settings.FINTECH_EVENT_DISPATCH = "worker"  # the dispatcher below delivers, in order
    settings.FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL = "fraud-desk@bank.example"
    settings.FINTECH_NOTIFICATIONS_WEBHOOK_SECRET = SECRET
    settings.FINTECH_NOTIFICATIONS_WEBHOOK_URL = "http://127.0.0.1:9/push"  # set properly when delivering

    ana, ana_doc = onboard("Ana Souza", "ana@example.com")
    bob, bob_doc = onboard("Bob Stone", "bob@example.com", language="en")
    carla, carla_doc = onboard("Carla Dias", "carla@example.com")
    davi, davi_doc = onboard("Davi Reis", "davi@example.com", verify=False)
    customers.customer_reject(customer_id=davi.id, reviewer="kyc-analyst", reason="documents do not match")
    notifications.channel_opt_out(customer_id=carla.id, channel="push")

    ana_account = accounts.account_open(customer_id=ana.id, currency="BRL")
    bob_account = accounts.account_open(customer_id=bob.id, currency="BRL")
    carla_account = accounts.account_open(customer_id=carla.id, currency="BRL")
    deposit(ana_account, 100_000)
    deposit(carla_account, 5_000)

    completed = transactions.transfer_initiate(
        from_account_id=ana_account.id, to_account_id=bob_account.id, amount=12_345, currency="BRL", initiated_by="ana"
    )
    deliver_everything()
    failing = transactions.transfer_initiate(
        from_account_id=ana_account.id, to_account_id=carla_account.id, amount=7_000, currency="BRL", initiated_by="ana"
    )
    # Carla's account is blocked before the screening: the transfer fails, Ana's hold is voided.
    accounts.account_block(account_id=carla_account.id, reason="court order", changed_by="ops")
    deliver_everything()

    # The fraud context screened both (approved; the second then met the blocked account). A third,
    # above the amount rule as it is set for the day, waits for an analyst, who approves it.
    fraud.rule_change(name="amount", parameters={"threshold": 49_999}, changed_by="fraud-admin", changer_kind="staff")
    reviewed = transactions.transfer_initiate(
        from_account_id=ana_account.id, to_account_id=bob_account.id, amount=50_000, currency="BRL", initiated_by="ana"
    )
    deliver_everything()
    fraud.review_approve(
        subject_id=reviewed.id, decided_by="analyst-7", decider_kind="staff", reason="called the customer"
    )
    deliver_everything()

    # Payments to other banks, screened and answered by the network: Bob's settles; Ana's goes to
    # an account closed at the other bank and comes back; Bob's large one waits for an analyst,
    # who rejects it, so it never leaves.
    settled = initiate(bob_account, 5_000, ACCOUNT_BENEFICIARY)
    returned = initiate(ana_account, 3_000, CLOSED_BENEFICIARY)
    deliver_everything()
    refused = initiate(bob_account, 55_000, ACCOUNT_BENEFICIARY)
    deliver_everything()
    fraud.review_reject(subject_id=refused.id, decided_by="analyst-7", decider_kind="staff", reason="not the customer")
    deliver_everything()
    # Credits from another bank: one for Ana, booked; one for Carla's blocked account, returned.
    credit_from_another_bank(ana_account, 8_000)
    credit_from_another_bank(carla_account, 2_500)
    deliver_everything()

    payments = {p.id: p for p in Payment.objects.all()}
    assert [payments[p.id].status for p in (settled, returned, refused)] == ["settled", "returned", "failed"]
    assert payments[refused.id].failure_code == "fraud_rejected"
    assert sorted(InboundCredit.objects.values_list("status", flat=True)) == ["credited", "returned"]
    return {
        "ana": ana,
        "bob": bob,
        "carla": carla,
        "davi": davi,
        "documents": [ana_doc, bob_doc, carla_doc, davi_doc],
        "failing": failing,
        "completed": completed,
        "payments": (settled, returned, refused),
    }


BOOKED_PAYMENT_EVENTS = ("payment.settled", "payment.returned", "payment.failed", "payment.credited")
PAYMENT_NOTICES = ("payment_settled", "payment_returned", "payment_in_review", "payment_failed", "credit_received")


def kinds(customer) -> Counter[tuple[str, str]]:
    return Counter(Notification.objects.filter(customer_id=customer.id).values_list("notice", "channel"))


EXPECTED_FIGURES = {
    ("customers.created", "XXX"): (4, 0),
    ("customers.verified", "XXX"): (3, 0),
    ("customers.rejected", "XXX"): (1, 0),
    ("accounts.blocked", "XXX"): (1, 0),
    ("deposits", "BRL"): (2, 105_000),
    ("transfers.initiated", "BRL"): (3, 69_345),
    ("transfers.completed", "BRL"): (2, 62_345),
    ("transfers.failed", "BRL"): (1, 7_000),
    ("transfers.review", "BRL"): (1, 50_000),
    # The two transfers and the two payments approved at once; a transfer and a payment reviewed.
    ("fraud.decisions.approve", "BRL"): (4, 27_345),
    ("fraud.decisions.review", "BRL"): (2, 105_000),
    ("fraud.alerts", "BRL"): (2, 105_000),
    ("fraud.reviews.approved", "BRL"): (1, 50_000),
    ("fraud.reviews.rejected", "BRL"): (1, 55_000),
    ("payments.initiated", "BRL"): (3, 63_000),
    ("payments.review", "BRL"): (1, 55_000),
    ("payments.settled", "BRL"): (1, 5_000),
    ("payments.returned", "BRL"): (1, 3_000),
    ("payments.failed", "BRL"): (1, 55_000),
    ("credits.credited", "BRL"): (1, 8_000),
    ("credits.returned", "BRL"): (1, 2_500),
    ("notifications", "XXX"): (37, 0),
}


def test_a_day_at_the_bank_notifies_exactly_whom_it_must(bank_day):
    ana, bob, carla, davi = (bank_day[name] for name in ("ana", "bob", "carla", "davi"))
    assert bank_day["failing"].id  # the failed transfer exists
    both = ("email", "push")

    # Two transfers completed (the second after its review): two sent, two received.
    assert kinds(ana) == Counter(
        {
            (notice, channel): 2 if notice == "transfer_sent" else 1
            for channel in both
            for notice in (
                "kyc_verified",
                "deposit_received",
                "transfer_sent",
                "transfer_failed",
                "transfer_in_review",
                "payment_returned",
                "credit_received",
            )
        }
    )
    assert kinds(bob) == Counter(
        {
            (notice, channel): 2 if notice == "transfer_received" else 1
            for channel in both
            for notice in (
                "kyc_verified",
                "transfer_received",
                "payment_settled",
                "payment_in_review",
                "payment_failed",
            )
        }
    )
    # Carla turned push off: her deposit comes by e-mail only; security notices come on both. The
    # credit her blocked account could not take went back to the other bank: nothing to tell.
    assert kinds(carla) == Counter(
        {
            ("kyc_verified", "email"): 1,
            ("kyc_verified", "push"): 1,
            ("deposit_received", "email"): 1,
            ("account_blocked", "email"): 1,
            ("account_blocked", "push"): 1,
        }
    )
    assert kinds(davi) == Counter({("kyc_rejected", "email"): 1, ("kyc_rejected", "push"): 1})
    desk = Notification.objects.filter(customer_id__isnull=True)
    assert (
        sorted(desk.values_list("notice", "channel", "recipient", "language"))
        == [("fraud_alert", "email", "backoffice", "pt-BR")] * 2
    )
    assert Notification.objects.count() == 37

    # Language and content: each in the customer's language, money in their locale.
    sent = Notification.objects.get(
        customer_id=ana.id, notice="transfer_sent", channel="email", subject__contains="123,45"
    )
    assert (sent.language, sent.recipient) == ("pt-BR", f"customer:{ana.id}")
    assert sent.subject == "Transferência de R$ 123,45 enviada"
    assert sent.body.startswith("Olá, Ana!")
    received = Notification.objects.get(
        customer_id=bob.id, notice="transfer_received", channel="push", subject__contains="123.45"
    )
    assert received.language == "en"
    assert received.subject == "You received R$123.45"
    assert received.body.startswith("Hello, Bob!")
    failed = Notification.objects.get(customer_id=ana.id, notice="transfer_failed", channel="email")
    assert "R$ 70,00" in failed.subject
    assert "conta bloqueada" in failed.body
    returned = Notification.objects.get(customer_id=ana.id, notice="payment_returned", channel="email")
    assert returned.subject == "Seu pagamento de R$ 30,00 foi devolvido"
    assert "(AC04 closed account number)" in returned.body
    credited = Notification.objects.get(customer_id=ana.id, notice="credit_received", channel="push")
    assert credited.subject == "Você recebeu R$ 80,00 de outro banco"
    settled = Notification.objects.get(customer_id=bob.id, notice="payment_settled", channel="email")
    assert settled.subject == "Payment of R$50.00 completed"
    held = Notification.objects.get(customer_id=bob.id, notice="payment_in_review", channel="email")
    assert held.subject == "Your payment of R$550.00 is under review"
    refused = Notification.objects.get(customer_id=bob.id, notice="payment_failed", channel="push")
    assert refused.subject == "Your payment of R$550.00 was not sent"
    assert "(refused by our security review)" in refused.body
    # Each tells of the event the payments context booked, never of the network's message.
    assert set(Notification.objects.filter(notice__in=PAYMENT_NOTICES).values_list("event_type", flat=True)) == {
        "payment.settled",
        "payment.returned",
        "payment.held_for_review",
        "payment.failed",
        "payment.credited",
    }

    # Never a document number, an e-mail address or a secret in what the bank writes.
    texts = " ".join(Notification.objects.values_list("subject", flat=True)) + " ".join(
        Notification.objects.values_list("body", flat=True)
    )
    for secret in [*bank_day["documents"], "@example.com", SECRET]:
        assert secret not in texts

    # Delivered: e-mails to the customers' addresses, push to the provider, each once.
    with push_provider() as provider:
        from django.conf import settings

        settings.FINTECH_NOTIFICATIONS_WEBHOOK_URL = provider.url
        report = notifications.notifications_deliver(limit=100)
        assert notifications.notifications_deliver(limit=100).attempted == 0
    assert (report.sent, report.failed, report.retrying) == (37, 0, 0)
    assert sorted(address for message in mail.outbox for address in message.to) == sorted(
        ["ana@example.com"] * 8
        + ["bob@example.com"] * 6
        + ["carla@example.com"] * 3
        + ["davi@example.com"]
        + ["fraud-desk@bank.example"] * 2
    )
    assert len(provider.seen) == 17
    for request in provider.seen:
        assert channels.verify_signature(SECRET, request.headers[channels.SIGNATURE_HEADER], request.body)
    pushed = {json.loads(request.body)["customer_id"] for request in provider.seen}
    assert pushed == {str(ana.id), str(bob.id), str(carla.id), str(davi.id)}


def test_a_day_at_the_bank_adds_up_and_a_second_delivery_of_everything_changes_nothing(bank_day, staff):
    assert figures() == EXPECTED_FIGURES
    summary = staff.get("/api/v1/analytics/summary").json()
    [brl] = summary["totals"]
    assert brl["transfers"]["completed"] == {"count": 2, "volume": 62_345}
    assert brl["payments"]["settled"] == {"count": 1, "volume": 5_000}
    assert brl["payments"]["failed"] == {"count": 1, "volume": 55_000}
    assert brl["credits"] == {"credited": {"count": 1, "volume": 8_000}, "returned": {"count": 1, "volume": 2_500}}
    assert brl["fraud"]["screened"] == 6
    assert brl["fraud"]["rate"] == round(2 / 6, 6)
    assert summary["customers"] == {"created": 4, "verified": 3, "rejected": 1}
    assert len(summary["days"]) == 1

    notified = sorted(Notification.objects.values_list("id", "event_id", "channel", "recipient", "subject"))
    outbox = OutboxEvent.objects.count()
    envelopes = list(OutboxEvent.objects.order_by("id"))

    # Every event again, by the dispatcher's slow path (the inbox answers for each handler) ...
    for row in envelopes:
        deliver(row)
    # ... and handed straight to every handler again, as a consumer without the inbox would.
    for row in envelopes:
        event = received_from_envelope(row.envelope, row.headers)
        for sub in bus.subscriptions_for(event.type):
            if sub.context in ("notifications", "analytics"):
                with unit_of_work():
                    sub.apply([event])
    deliver_everything()

    assert figures() == EXPECTED_FIGURES
    assert sorted(Notification.objects.values_list("id", "event_id", "channel", "recipient", "subject")) == notified
    assert OutboxEvent.objects.count() == outbox  # not one notification.send or analytics.event more
    assert Fact.objects.count() == sum(count for count, _ in EXPECTED_FIGURES.values())

    # The figures rebuilt from the facts are the same.
    DailyFigure.objects.all().update(count=0, volume=0)
    out = io.StringIO()
    call_command("rebuild_analytics", stdout=out)
    assert f"rebuilt {len(EXPECTED_FIGURES)} daily figures" in out.getvalue()
    assert "1/1 days" in out.getvalue()
    assert figures() == EXPECTED_FIGURES

    # And exported as CSV.
    out = io.StringIO()
    call_command("export_analytics", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "day,currency,metric,count,volume"
    assert f"{timezone.now().date().isoformat()},BRL,transfers.completed,2,62345" in lines
    assert len(lines) == 1 + len(EXPECTED_FIGURES)


def test_an_erased_customer_keeps_no_personal_data_in_notifications(bank_day):
    davi = bank_day["davi"]  # refused at KYC: no accounts, so the erasure goes through
    assert Notification.objects.filter(customer_id=davi.id, body__contains="Davi").count() == 2

    customers.customer_erase(customer_id=davi.id, erased_by="dpo")
    deliver_everything()

    texts = list(Notification.objects.filter(customer_id=davi.id).values_list("subject", "body", "status", "erased_at"))
    assert len(texts) == 2
    for subject, body, status, erased_at in texts:
        assert (subject, body, status) == ("", "", "cancelled")
        assert erased_at is not None
    assert not Notification.objects.filter(body__contains="Davi").exists()
    # The others' notifications are untouched, and nothing is sent to the erased customer.
    assert Notification.objects.filter(customer_id=bank_day["ana"].id, body__contains="Ana").exists()
    mail.outbox.clear()
    notifications.notifications_deliver(limit=100)
    assert all("davi@example.com" not in message.to for message in mail.outbox)


# -- what the network says and the bank does not book ------------------------------------------


@pytest.fixture
def ana_account(settings, network):
    """Ana (e-mail only: one notification per message) with an account of R$ 100,00."""
    settings.FINTECH_EVENT_DISPATCH = "worker"
    settings.FINTECH_NOTIFICATIONS_WEBHOOK_URL = ""
    ana, _ = onboard("Ana Souza", "ana@example.com")
    account = accounts.account_open(customer_id=ana.id, currency="BRL")
    deposit(account, 10_000)
    deliver_everything()
    return account


def network_answer(payment_id, **changes) -> dict[str, Any]:
    """A `payment.processed` of the network, under a message id of its own."""
    data = {
        "payment_id": str(payment_id),
        "status": "settled",
        "network_reference": "NET-9",
        "return_reason": None,
        "processed_at": rfc3339(timezone.now()),
        **changes,
    }
    return network_message("payment.processed", subject=str(payment_id), data=data, now=timezone.now())


def told_and_counted() -> tuple[list[tuple[Any, ...]], dict[tuple[str, str], tuple[int, int]]]:
    told = sorted(Notification.objects.values_list("event_id", "notice", "channel", "recipient"))
    return told, figures()


def test_answers_the_bank_refuses_to_book_tell_nobody_and_count_nothing(ana_account):
    payment = initiate(ana_account, 2_500, ACCOUNT_BENEFICIARY)
    deliver_everything()  # screened, sent, settled by the network, told and counted
    payment.refresh_from_db()
    assert payment.status == "settled"
    assert Notification.objects.filter(notice="payment_settled").count() == 1
    assert figures()[("payments.settled", "BRL")] == (1, 2_500)
    before = told_and_counted()
    booked = OutboxEvent.objects.filter(event_type__in=BOOKED_PAYMENT_EVENTS).count()
    [first] = OutboxEvent.objects.filter(event_type="payment.processed")

    refused = [
        network_answer(uuid.uuid4()),  # a payment the bank never had
        network_answer(payment.id, amount=2_600, currency="BRL"),  # another amount
        network_answer(payment.id, end_to_end_id=new_end_to_end_id(ispb="00000000", at=timezone.now())),
        network_answer(payment.id, status="returned", return_reason="AC04 closed account number"),  # contradicts
        network_answer(payment.id, amount=2_500, currency="BRL"),  # the same outcome under a new message id
    ]
    with unit_of_work():
        for message in refused:
            inline.deliver(message)
    deliver_everything()
    deliver(first)  # and the very first answer again

    assert told_and_counted() == before
    assert OutboxEvent.objects.filter(event_type__in=BOOKED_PAYMENT_EVENTS).count() == booked
    # The payments context did read each of them, and kept the ones it could not book.
    answered = InboxRecord.objects.filter(handler="payments.record_network_answer")
    assert set(answered.values_list("event_id", flat=True)) >= {uuid.UUID(m["id"]) for m in refused}
    assert sorted(IgnoredNetworkMessage.objects.values_list("reason", flat=True)) == [
        "amount_mismatch",
        "conflicting_answer",
        "end_to_end_mismatch",
        "unknown_payment",
    ]
    # Nothing failed on its way: no handler retries an answer it cannot place, none is dead-lettered.
    assert not DeadLetter.objects.exists()
    assert not DeliveryAttempt.objects.exists()
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()


def test_an_inbound_credit_is_told_once_and_counted_once(ana_account):
    messages = credit_from_another_bank(ana_account, 8_000)
    deliver_everything()
    [credit] = InboundCredit.objects.all()
    assert credit.status == "credited"
    [told] = Notification.objects.filter(notice="credit_received")
    assert (told.customer_id, told.channel, told.event_type) == (
        ana_account.customer_id,
        "email",
        "payment.credited",
    )
    assert told.subject == "Você recebeu R$ 80,00 de outro banco"
    assert figures()[("credits.credited", "BRL")] == (1, 8_000)
    before = told_and_counted()

    # The network sends it again: the same message, and the same credit under a new message id.
    again = network_message(
        "payment.received", subject=messages[0]["subject"], data=messages[0]["data"], now=timezone.now()
    )
    with unit_of_work():
        inline.deliver(again)
    deliver_everything()
    for row in OutboxEvent.objects.filter(event_type="payment.received"):
        deliver(row)

    assert told_and_counted() == before
    assert InboundCredit.objects.count() == 1
    assert OutboxEvent.objects.filter(event_type="payment.credited").count() == 1
    assert Fact.objects.filter(metric="credits.credited").count() == 1
