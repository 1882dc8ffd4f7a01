"""Notifications and analytics as Kafka consumer groups (`manage.py consume --group
notifications|analytics`): each applies an event once however often the topic delivers it."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.analytics.models import DailyFigure, Fact
from apps.fraud.events import FraudAlert
from apps.notifications.models import Notification
from fintech.events import rfc3339
from outbox.consumer import ConsumerRunner
from outbox.publisher import build_envelope
from tests.kafka_support import end_offsets
from tests.test_kafka_consumers import fresh_group, produce

pytestmark = [pytest.mark.kafka, pytest.mark.django_db(transaction=True)]

IDLE = 3.0


def test_each_group_applies_a_fraud_alert_delivered_twice_once(settings):
    settings.FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL = "fraud-desk@bank.example"
    call_command("kafka_topics")
    start = end_offsets(["fraud.alert"])
    alert = FraudAlert(
        alert_id=str(uuid.uuid4()),
        subject_type="transfer",
        subject_id=str(uuid.uuid4()),
        account_id=str(uuid.uuid4()),
        amount=77_700,
        currency="BRL",
        decision="reject",
        score=99,
        rules=[{"rule": "mule_account", "version": 3, "score": 99, "reason": "destination flagged"}],
        raised_at=rfc3339(timezone.now()),
    )
    event_id = uuid.uuid4()
    value = json.dumps(build_envelope(alert, event_id=event_id, occurred_at=timezone.now())).encode()
    produce(("fraud.alert", alert.subject_id, value), ("fraud.alert", alert.subject_id, value))

    for group in ("notifications", "analytics"):
        report = ConsumerRunner(group, ["fraud.alert"], group_id=fresh_group(start)).run(idle_timeout=IDLE)
        assert report.applied >= 1, group
        assert report.duplicates >= 1, group  # the second copy found its inbox record

    [notification] = Notification.objects.filter(event_id=event_id)
    assert (notification.recipient, notification.channel, notification.notice) == ("backoffice", "email", "fraud_alert")
    assert "R$ 777,00" in notification.subject
    assert list(Fact.objects.filter(event_id=event_id).values_list("metric", "amount")) == [("fraud.alerts", 77_700)]
    assert DailyFigure.objects.get(metric="fraud.alerts", currency="BRL").count == 1
