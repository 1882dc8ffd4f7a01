"""The handlers as the spine runs them: events published in a unit of work, delivered by the
dispatcher, delivered again. (Customers' notifications need the customers and accounts
contexts: tests/test_notifications_and_analytics.py plays those scenarios.)"""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from apps.notifications import services
from apps.notifications.errors import PaymentNotYetKnown
from apps.notifications.models import Notification, PaymentOrder
from fintech.events import rfc3339
from outbox.dispatcher import deliver, dispatch, received_from_envelope
from outbox.models import OutboxEvent
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work
from tests.contracts import FraudAlert, PaymentInitiated, PaymentProcessed

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


def test_the_networks_answer_waits_for_the_payment_it_answers():
    payment_id = str(uuid.uuid4())
    processed = PaymentProcessed(
        payment_id=payment_id,
        status="settled",
        network_reference="NET-1",
        return_reason=None,
        processed_at=rfc3339(timezone.now()),
    )
    with unit_of_work():
        publish(processed)
    row = OutboxEvent.objects.get(event_type="payment.processed")
    with pytest.raises(PaymentNotYetKnown):
        services.notify(events=[received_from_envelope(row.envelope, row.headers)])

    with unit_of_work():
        publish(
            PaymentInitiated(
                payment_id=payment_id,
                account_id=str(uuid.uuid4()),
                customer_id=str(uuid.uuid4()),
                amount=990,
                currency="BRL",
                beneficiary_ref="ben-1",
                initiated_by_customer=True,
                initiated_at=rfc3339(timezone.now()),
            )
        )
    dispatch()
    order = PaymentOrder.objects.get(payment_id=payment_id)
    assert (order.amount, order.currency) == (990, "BRL")
    # Its customer is unknown to the customers context here: nobody to write to, and no error.
    assert services.notify(events=[received_from_envelope(row.envelope, row.headers)]) == []
