"""Delivery of recorded notifications: real SMTP and webhook servers, retries with backoff,
failure after the last attempt, a crash between sending and recording, resends, erasure."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.notifications import channels, services
from apps.notifications.errors import NotificationNotResendable, UnknownChannel
from apps.notifications.models import ChannelOptOut, Notification
from apps.notifications.services import delivery
from apps.notifications.tests.providers import push_provider, smtp_server

pytestmark = pytest.mark.django_db

SECRET = "s" * 40


def recorded(*, channel: str = "push", customer_id: uuid.UUID | None = None, **fields) -> Notification:
    now = timezone.now()
    values = {
        "event_id": uuid.uuid4(),
        "event_type": "transaction.completed",
        "notice": "transfer_sent",
        "category": "activity",
        "channel": channel,
        "recipient": f"customer:{customer_id}" if customer_id else "backoffice",
        "customer_id": customer_id,
        "language": "pt-BR",
        "subject": "Transferência de R$ 12,34 enviada",
        "body": "Olá, Ana!",
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return Notification.objects.create(**values)


@pytest.fixture
def webhook(settings):
    def configure(url: str) -> None:
        settings.FINTECH_NOTIFICATIONS_WEBHOOK_URL = url
        settings.FINTECH_NOTIFICATIONS_WEBHOOK_SECRET = SECRET

    return configure


def test_email_reaches_a_real_smtp_server_with_the_idempotency_key_as_message_id(settings):
    settings.FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL = "fraud-desk@bank.example"
    notification = recorded(channel="email", subject="Alerta de fraude", body="Revise a transferência.")
    with smtp_server() as (mailbox, port):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        report = services.notifications_deliver()

    assert report.sent == 1
    [message] = mailbox.messages
    assert mailbox.recipients == [["fraud-desk@bank.example"]]
    assert message["Message-ID"] == f"<{notification.id}@notifications.fintech>"
    assert message["Idempotency-Key"] == str(notification.id)
    assert message["Subject"] == "Alerta de fraude"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert body.decode().strip() == "Revise a transferência."
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 1)
    assert notification.sent_at is not None


def test_a_webhook_that_fails_twice_gets_the_notification_once_on_the_third_try_signed(webhook, settings):
    customer = uuid.uuid4()
    notification = recorded(customer_id=customer)
    start = timezone.now()
    with push_provider(failures=2) as provider:
        webhook(provider.url)
        moments = [start, start + timedelta(minutes=10), start + timedelta(minutes=20)]
        reports = [services.notifications_deliver(now=moment) for moment in moments]
        assert services.notifications_deliver(now=start + timedelta(hours=1)).attempted == 0

    assert [r.retrying for r in reports] == [1, 1, 0]
    assert reports[2].sent == 1
    assert [request.answered for request in provider.seen] == [500, 500, 200]
    # The same delivery every time: one key, a valid signature over the exact body.
    assert {request.headers["Idempotency-Key"] for request in provider.seen} == {str(notification.id)}
    for request in provider.seen:
        assert channels.verify_signature(SECRET, request.headers[channels.SIGNATURE_HEADER], request.body)
        assert not channels.verify_signature(
            "another-secret" * 3, request.headers[channels.SIGNATURE_HEADER], request.body
        )
    payload = json.loads(provider.seen[2].body)
    assert payload["customer_id"] == str(customer)
    assert payload["title"] == "Transferência de R$ 12,34 enviada"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 3)


def test_retries_back_off_exponentially_with_jitter_then_fail_with_the_error(webhook, settings):
    settings.FINTECH_NOTIFICATIONS_MAX_ATTEMPTS = 3
    settings.FINTECH_NOTIFICATIONS_RETRY_BASE_SECONDS = 10
    notification = recorded(customer_id=uuid.uuid4())
    now = timezone.now()
    delays = []
    with push_provider(failures=99) as provider:
        webhook(provider.url)
        for _ in range(3):
            services.notifications_deliver(now=now)
            notification.refresh_from_db()
            delays.append((notification.next_attempt_at - now).total_seconds())
            now = notification.next_attempt_at
    assert len(provider.seen) == 3
    assert 5 <= delays[0] <= 15  # 10 s, jittered by half either way
    assert 10 <= delays[1] <= 30  # 20 s
    assert notification.status == "failed"
    assert notification.attempts == 3
    assert "HTTP 500" in notification.last_error
    assert delays[2] == 0  # a failed notification is not scheduled again
    assert services.notifications_deliver(now=now + timedelta(days=1)).attempted == 0


def test_a_crash_between_sending_and_recording_sends_again_under_the_same_key(webhook, settings, monkeypatch):
    notification = recorded(customer_id=uuid.uuid4())
    now = timezone.now()
    with push_provider() as provider:
        webhook(provider.url)
        real_update = Notification.objects.filter

        def crash_after_send(*args, **kwargs):
            if provider.seen:  # the provider has it: the worker dies before marking it sent
                raise SystemExit("worker killed")
            return real_update(*args, **kwargs)

        monkeypatch.setattr(Notification.objects, "filter", crash_after_send)
        with pytest.raises(SystemExit):
            services.notifications_deliver(now=now)
        monkeypatch.undo()

        # While the dead worker's lease runs, nobody sends it; after it, the next worker does.
        assert services.notifications_deliver(now=now + timedelta(seconds=1)).attempted == 0
        later = now + timedelta(seconds=settings.FINTECH_NOTIFICATIONS_LEASE_SECONDS + 1)
        assert services.notifications_deliver(now=later).sent == 1

    keys = [request.headers["Idempotency-Key"] for request in provider.seen]
    assert keys == [str(notification.id), str(notification.id)]
    notification.refresh_from_db()
    assert notification.status == "sent"


def test_two_workers_never_send_one_notification_at_once(webhook):
    notification = recorded(customer_id=uuid.uuid4())
    now = timezone.now()
    assert delivery._lease(notification, now) is not None
    assert delivery._lease(notification, now) is None  # the second worker finds it taken


def test_a_resend_is_a_new_delivery_with_a_new_key(webhook):
    notification = recorded(customer_id=uuid.uuid4())
    with push_provider() as provider:
        webhook(provider.url)
        services.notifications_deliver()
        with pytest.raises(NotificationNotResendable):
            services.notification_resend(notification_id=recorded(customer_id=uuid.uuid4(), status="cancelled").id)
        services.notification_resend(notification_id=notification.id)
        services.notifications_deliver()
    keys = [request.headers["Idempotency-Key"] for request in provider.seen]
    assert keys[0] == str(notification.id)
    assert keys[-1] == f"{notification.id}.1"
    notification.refresh_from_db()
    assert (notification.status, notification.resends, notification.attempts) == ("sent", 1, 1)


def test_erasure_empties_the_texts_and_cancels_what_was_not_sent():
    customer, other = uuid.uuid4(), uuid.uuid4()
    sent = recorded(customer_id=customer, status="sent")
    pending = recorded(customer_id=customer)
    untouched = recorded(customer_id=other)

    assert services.customers_notifications_erase(customer_ids=[customer]) == 2

    sent.refresh_from_db()
    pending.refresh_from_db()
    untouched.refresh_from_db()
    assert (sent.subject, sent.body, sent.status) == ("", "", "sent")
    assert (pending.subject, pending.body, pending.status) == ("", "", "cancelled")
    assert sent.erased_at is not None
    assert untouched.body == "Olá, Ana!"


def test_opting_out_and_back_in_of_a_channel():
    customer = uuid.uuid4()
    services.channel_opt_out(customer_id=customer, channel="push")
    services.channel_opt_out(customer_id=customer, channel="push")
    assert list(ChannelOptOut.objects.values_list("customer_id", "channel")) == [(customer, "push")]
    services.channel_opt_in(customer_id=customer, channel="push")
    assert not ChannelOptOut.objects.exists()
    with pytest.raises(UnknownChannel):
        services.channel_opt_out(customer_id=customer, channel="pigeon")
