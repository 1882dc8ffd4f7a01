"""A day at the bank seen by its last two contexts: customers onboarded (one refused), deposits,
a transfer completed and one failed, a transfer held for review and approved, payments settled
and returned, fraud screenings and an alert. Notifications and analytics must produce exactly
the expected messages (count, channel, recipient, language, content) and figures; a second
delivery of every event changes nothing; `rebuild_analytics` gives the same figures.

The payment events are published here through their committed schemas (tests/contracts.py):
that context is being built elsewhere. The fraud context screens the transfers and those
payments for real.
"""

from __future__ import annotations

import io
import json
import uuid
from collections import Counter

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
from apps.transactions import services as transactions
from fintech import bus
from fintech.events import rfc3339
from outbox.dispatcher import deliver, dispatch, received_from_envelope
from outbox.models import OutboxEvent
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work
from tests.contracts import PaymentInitiated, PaymentProcessed
from tests.factories import deposit, new_cpf

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


def publish_one(event) -> uuid.UUID:
    with unit_of_work():
        return publish(event)


def figures() -> dict[tuple[str, str], tuple[int, int]]:
    return {(f.metric, f.currency): (f.count, f.volume) for f in DailyFigure.objects.all()}


@pytest.fixture
def bank_day(settings):
    settings.FINTECH_EVENT_DISPATCH = "worker"  # the dispatcher below delivers, in order
    settings.FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL = "fraud-desk@bank.example"
    settings.FINTECH_NOTIFICATIONS_WEBHOOK_SECRET = SECRET
    settings.FINTECH_NOTIFICATIONS_WEBHOOK_URL = "http://127.0.0.1:9/push"  # set properly when delivering
    now = timezone.now()

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
    # Payments: Bob's settles, Ana's comes back.
    payments = {"bob": str(uuid.uuid4()), "ana": str(uuid.uuid4())}
    for who, account, customer, amount in (("bob", bob_account, bob, 5_000), ("ana", ana_account, ana, 3_000)):
        publish_one(
            PaymentInitiated(
                payment_id=payments[who],
                account_id=str(account.id),
                customer_id=str(customer.id),
                amount=amount,
                currency="BRL",
                beneficiary_ref=f"ben-{who}",
                initiated_by_customer=True,
                initiated_at=rfc3339(now),
            )
        )
    deliver_everything()
    publish_one(
        PaymentProcessed(
            payment_id=payments["bob"],
            status="settled",
            network_reference="NET-1",
            return_reason=None,
            processed_at=rfc3339(now),
        )
    )
    publish_one(
        PaymentProcessed(
            payment_id=payments["ana"],
            status="returned",
            network_reference="NET-2",
            return_reason="conta inexistente",
            processed_at=rfc3339(now),
        )
    )
    deliver_everything()
    return {
        "ana": ana,
        "bob": bob,
        "carla": carla,
        "davi": davi,
        "documents": [ana_doc, bob_doc, carla_doc, davi_doc],
        "failing": failing,
        "completed": completed,
    }


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
    # The two transfers approved at once and the two payments.
    ("fraud.decisions.approve", "BRL"): (4, 27_345),
    ("fraud.decisions.review", "BRL"): (1, 50_000),
    ("fraud.alerts", "BRL"): (1, 50_000),
    ("fraud.reviews.approved", "BRL"): (1, 50_000),
    ("payments.initiated", "BRL"): (2, 8_000),
    ("payments.settled", "BRL"): (1, 5_000),
    ("payments.returned", "BRL"): (1, 3_000),
    ("notifications", "XXX"): (30, 0),
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
            )
        }
    )
    assert kinds(bob) == Counter(
        {
            (notice, channel): 2 if notice == "transfer_received" else 1
            for channel in both
            for notice in ("kyc_verified", "transfer_received", "payment_settled")
        }
    )
    # Carla turned push off: her deposit comes by e-mail only; security notices come on both.
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
    [desk] = Notification.objects.filter(customer_id__isnull=True)
    assert (desk.notice, desk.channel, desk.recipient, desk.language) == ("fraud_alert", "email", "backoffice", "pt-BR")
    assert Notification.objects.count() == 30

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
    assert "R$ 30,00" in returned.subject
    assert "conta inexistente" in returned.body

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
    assert (report.sent, report.failed, report.retrying) == (30, 0, 0)
    assert sorted(address for message in mail.outbox for address in message.to) == sorted(
        ["ana@example.com"] * 7
        + ["bob@example.com"] * 4
        + ["carla@example.com"] * 3
        + ["davi@example.com"]
        + ["fraud-desk@bank.example"]
    )
    assert len(provider.seen) == 14
    for request in provider.seen:
        assert channels.verify_signature(SECRET, request.headers[channels.SIGNATURE_HEADER], request.body)
    pushed = {json.loads(request.body)["customer_id"] for request in provider.seen}
    assert pushed == {str(ana.id), str(bob.id), str(carla.id), str(davi.id)}


def test_a_day_at_the_bank_adds_up_and_a_second_delivery_of_everything_changes_nothing(bank_day, staff):
    assert figures() == EXPECTED_FIGURES
    summary = staff.get("/api/v1/analytics/summary").json()
    [brl] = summary["totals"]
    assert brl["transfers"]["completed"] == {"count": 2, "volume": 62_345}
    assert brl["fraud"]["screened"] == 5
    assert brl["fraud"]["rate"] == 0.2
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
    assert "rebuilt 17 daily figures" in out.getvalue()
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
