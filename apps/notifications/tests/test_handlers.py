"""The handlers as the spine runs them: events published in a unit of work, delivered by the
dispatcher, delivered again. (Customers' notifications need the customers and accounts
contexts: tests/test_notifications_and_analytics.py plays those scenarios.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from apps.notifications import services
from apps.notifications.models import Notification
from fintech import bus
from fintech.events import ReceivedEvent, rfc3339
from outbox.dispatcher import deliver, dispatch, received_from_envelope
from outbox.models import OutboxEvent
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work
from tests.contracts import FraudAlert, PaymentProcessed

pytestmark = pytest.mark.django_db


def alert() -> FraudAlert:
    return FraudAlert(
        alert_id=str(uuid.uuid4()),
        subject_type="transfer",
        subject_id=str(uuid.uuid4()),
        account_id=str(uuid.uuid4()),
        amount=250_000,
        currency="BRL",
        decision="review",
        score=85,
        rules=[{"rule": "large_amount", "version": 1, "score": 85, "reason": "above the customer's usual"}],
        raised_at=rfc3339(timezone.now()),
    )


def test_a_fraud_alert_tells_the_back_office_once_however_often_it_is_delivered(settings):
    settings.FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL = "fraud-desk@bank.example"
    with unit_of_work():
        event_id = publish(alert())
    dispatch()

    [notification] = Notification.objects.all()
    assert (notification.channel, notification.recipient, notification.category) == (
        "email",
        "backoffice",
        "backoffice",
    )
    assert notification.customer_id is None
    assert notification.subject == "Alerta de fraude: transfer de R$ 2.500,00 (review, pontuação 85)"
    assert "large_amount v1" in notification.body

    # Delivered again: by the dispatcher's slow path (the inbox answers), and straight to the service.
    row = OutboxEvent.objects.get(event_id=event_id)
    deliver(row)
    assert services.notify(events=[received_from_envelope(row.envelope, row.headers)]) == []
    assert Notification.objects.count() == 1

    # notification.send names the notification, never an address or a text.
    [sent] = OutboxEvent.objects.filter(event_type="notification.send")
    data = sent.envelope["data"]
    assert data["notification_id"] == str(notification.id)
    assert data["source_event_id"] == str(event_id)
    assert (data["recipient_kind"], data["customer_id"], data["channel"]) == ("backoffice", None, "email")
    assert "fraud-desk" not in str(sent.envelope)


def test_without_a_back_office_mailbox_an_alert_records_nothing(settings):
    settings.FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL = ""
    with unit_of_work():
        publish(alert())
    dispatch()
    assert not Notification.objects.exists()


def booked(event_type: str, **data) -> ReceivedEvent:
    """An event of the payments context as its schema has it (its code is another context's)."""
    customer_id, account_id = str(uuid.uuid4()), str(uuid.uuid4())
    return ReceivedEvent(
        id=uuid.uuid4(),
        type=event_type,
        version=1,
        source="/fintech/payments",
        subject=account_id,
        time=timezone.now(),
        data={"customer_id": customer_id, "account_id": account_id, "amount": 123_456, "currency": "BRL", **data},
    )


@pytest.mark.parametrize(
    ("event_type", "data", "notice", "category"),
    [
        ("payment.settled", {"settled_at": "2026-03-01T15:30:00Z"}, "payment_settled", "activity"),
        (
            "payment.returned",
            {"return_reason": "AC04 closed account number", "returned_at": "2026-03-01T15:30:00Z"},
            "payment_returned",
            "security",
        ),
        (
            "payment.failed",
            {"failure_code": "fraud_rejected", "failed_at": "2026-03-01T15:30:00Z"},
            "payment_failed",
            "security",
        ),
        ("payment.held_for_review", {"held_at": "2026-03-01T15:30:00Z"}, "payment_in_review", "security"),
        ("payment.credited", {"credited_at": "2026-03-01T15:30:00Z"}, "credit_received", "activity"),
    ],
)
def test_a_booked_payment_event_tells_the_customer_it_names_with_nothing_before_it(event_type, data, notice, category):
    event = booked(event_type, **data)
    [told] = services.notices_of([event])
    assert (told.notice, told.category, told.customer_id) == (notice, category, uuid.UUID(event.data["customer_id"]))
    assert (told.facts["amount"], told.facts["currency"]) == (123_456, "BRL")
    assert told.facts["moment"] == datetime(2026, 3, 1, 15, 30, tzinfo=UTC)
    assert told.facts["return_reason"] == data.get("return_reason", "")
    assert told.facts["failure_code"] == data.get("failure_code", "")


def test_the_networks_raw_answer_tells_nobody():
    """`payment.processed` is what the network says, which the bank may refuse to book: only what
    the payments context booked is told."""
    assert not [sub for sub in bus.subscriptions_for("payment.processed") if sub.context == "notifications"]
    processed = PaymentProcessed(
        payment_id=str(uuid.uuid4()),
        status="returned",
        network_reference="NET-1",
        return_reason="AC04 closed account number",
        processed_at=rfc3339(timezone.now()),
    )
    with unit_of_work():
        publish(processed)
    dispatch()
    row = OutboxEvent.objects.get(event_type="payment.processed")
    assert services.notices_of([received_from_envelope(row.envelope, row.headers)]) == []
    assert not Notification.objects.exists()
