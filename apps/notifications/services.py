"""Commands of the notifications context: what each event tells whom (recorded once), the
delivery of what was recorded, resends, opt-outs and erasure.

Exactly one notification per event, channel and recipient, also when events are redelivered or
a sender crashes: the handler records the intent (unique per event, channel and recipient) in
its unit of work, with the event's inbox record; the delivery worker sends outside any
transaction, under an idempotency key the provider sees, and then marks it sent. A worker that
dies between sending and marking leaves a lease that runs out, and the next attempt sends the
same message under the same key, which the provider recognises.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.accounts import public as accounts
from apps.customers import public as customers
from apps.notifications import channels, selectors
from apps.notifications.errors import (
    NotificationNotFound,
    NotificationNotResendable,
    PaymentNotYetKnown,
    UnknownChannel,
)
from apps.notifications.events import NotificationSend
from apps.notifications.metrics import NOTIFICATION_DELIVERIES
from apps.notifications.models import Category, Channel, ChannelOptOut, Notification, PaymentOrder
from apps.notifications.notices import account_ending, language_of, render
from fintech.events import ReceivedEvent, rfc3339
from fintech.faults import crash_point
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    """One message an event calls for, to one customer (or to the back office when None)."""

    event: ReceivedEvent
    notice: str
    category: str
    customer_id: uuid.UUID | None
    facts: dict[str, Any] = field(default_factory=dict)


def _moment(event: ReceivedEvent, name: str) -> datetime:
    return parse_datetime(str(event.data.get(name, ""))) or event.time


def _uuid(value: object) -> uuid.UUID:
    return uuid.UUID(str(value))


# -- what each event tells whom -------------------------------------------------------------------


def _accounts_named(events: Sequence[ReceivedEvent], orders: dict[uuid.UUID, PaymentOrder]) -> set[uuid.UUID]:
    names: set[uuid.UUID] = set()
    for event in events:
        for key in ("from_account_id", "to_account_id", "account_id"):
            if event.data.get(key):
                names.add(_uuid(event.data[key]))
        if event.type == "payment.processed":
            order = orders.get(_uuid(event.data["payment_id"]))
            if order is not None:
                names.add(order.account_id)
    return names


def notices_of(events: Sequence[ReceivedEvent]) -> list[Notice]:
    """The messages these events call for (one statement for the accounts they name, one for
    the payments they answer)."""
    payment_ids = [_uuid(e.data["payment_id"]) for e in events if e.type == "payment.processed"]
    orders = selectors.payment_orders(payment_ids=payment_ids) if payment_ids else {}
    missing = [payment_id for payment_id in payment_ids if payment_id not in orders]
    if missing:
        raise PaymentNotYetKnown(f"payment.processed for payment {missing[0]}, whose payment.initiated is not here yet")
    named = _accounts_named(events, orders)
    snapshots = accounts.account_snapshots(sorted(named)) if named else {}

    def holder(account_id: object) -> uuid.UUID | None:
        snapshot = snapshots.get(_uuid(account_id))
        return snapshot.customer_id if snapshot else None

    def ending(account_id: object) -> str:
        snapshot = snapshots.get(_uuid(account_id))
        return account_ending(snapshot.number if snapshot else None)

    notices: list[Notice] = []
    for event in events:
        data = event.data
        facts: dict[str, Any]
        money: dict[str, Any] = {"amount": data.get("amount"), "currency": data.get("currency")}
        match event.type:
            case "customer.verified":
                facts = {"moment": _moment(event, "verified_at")}
                notices.append(Notice(event, "kyc_verified", Category.SECURITY, _uuid(data["customer_id"]), facts))
            case "customer.rejected":
                facts = {"moment": _moment(event, "rejected_at")}
                notices.append(Notice(event, "kyc_rejected", Category.SECURITY, _uuid(data["customer_id"]), facts))
            case "transaction.completed":
                moment = _moment(event, "completed_at")
                sender, receiver = holder(data["from_account_id"]), holder(data["to_account_id"])
                sent: dict[str, Any] = {**money, "moment": moment, "account_ending": ending(data["from_account_id"])}
                notices.append(Notice(event, "transfer_sent", Category.ACTIVITY, sender, sent))
                if receiver != sender:  # between one's own accounts, one message says it all
                    received: dict[str, Any] = {
                        **money,
                        "moment": moment,
                        "account_ending": ending(data["to_account_id"]),
                    }
                    notices.append(Notice(event, "transfer_received", Category.ACTIVITY, receiver, received))
            case "transaction.failed":
                facts = {
                    **money,
                    "moment": _moment(event, "failed_at"),
                    "account_ending": ending(data["from_account_id"]),
                    "failure_code": data["failure_code"],
                }
                notices.append(
                    Notice(event, "transfer_failed", Category.SECURITY, holder(data["from_account_id"]), facts)
                )
            case "transaction.held_for_review":
                facts = {
                    **money,
                    "moment": _moment(event, "held_at"),
                    "account_ending": ending(data["from_account_id"]),
                }
                notices.append(
                    Notice(event, "transfer_in_review", Category.SECURITY, _uuid(data["customer_id"]), facts)
                )
            case "deposit.completed":
                facts = {
                    **money,
                    "moment": _moment(event, "completed_at"),
                    "account_ending": ending(data["account_id"]),
                }
                notices.append(Notice(event, "deposit_received", Category.ACTIVITY, holder(data["account_id"]), facts))
            case "payment.processed":
                order = orders[_uuid(data["payment_id"])]
                facts = {
                    "amount": order.amount,
                    "currency": order.currency,
                    "moment": _moment(event, "processed_at"),
                    "account_ending": ending(order.account_id),
                    "return_reason": data.get("return_reason") or "",
                }
                if data["status"] == "settled":
                    notices.append(Notice(event, "payment_settled", Category.ACTIVITY, order.customer_id, facts))
                else:
                    notices.append(Notice(event, "payment_returned", Category.SECURITY, order.customer_id, facts))
            case "account.blocked":
                facts = {"moment": _moment(event, "changed_at"), "account_ending": ending(data["account_id"])}
                notices.append(Notice(event, "account_blocked", Category.SECURITY, _uuid(data["customer_id"]), facts))
            case "fraud.alert":
                facts = {
                    **money,
                    "moment": _moment(event, "raised_at"),
                    **{key: data[key] for key in ("alert_id", "subject_type", "subject_id", "account_id", "decision")},
                    "score": data["score"],
                    "rules": data["rules"],
                }
                notices.append(Notice(event, "fraud_alert", Category.BACKOFFICE, None, facts))
    return [notice for notice in notices if notice.customer_id is not None or notice.category == Category.BACKOFFICE]


# -- recording -----------------------------------------------------------------------------------


def _customer_recipient(customer_id: uuid.UUID) -> str:
    return f"customer:{customer_id}"


def notify(*, events: Sequence[ReceivedEvent], now: datetime | None = None) -> list[Notification]:
    """Record the notifications these events call for, each once per channel and recipient,
    and publish `notification.send` for each. An event whose notifications are recorded already
    (a redelivery) records nothing."""
    now = now or timezone.now()
    with unit_of_work():
        return _record(notices_of(events), now=now)


def _record(notices: Sequence[Notice], *, now: datetime) -> list[Notification]:
    if not notices:
        return []
    customer_ids = {notice.customer_id for notice in notices if notice.customer_id is not None}
    contacts = customers.customer_contacts(customer_ids) if customer_ids else {}
    opted = selectors.opted_out(customer_ids=customer_ids) if customer_ids else set()
    push = bool(settings.FINTECH_NOTIFICATIONS_WEBHOOK_URL)
    rows: dict[tuple[uuid.UUID, str, str], Notification] = {}
    for notice in notices:
        if notice.customer_id is None:
            if not settings.FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL:
                continue
            language = language_of(settings.FINTECH_NOTIFICATIONS_BACKOFFICE_LANGUAGE)
            recipient, wanted, first_name = Notification.BACKOFFICE, [Channel.EMAIL], ""
        else:
            contact = contacts.get(notice.customer_id)
            if contact is None or contact.erased:
                continue  # nobody to write to
            language = language_of(contact.language)
            recipient, first_name = _customer_recipient(notice.customer_id), contact.first_name
            wanted = ([Channel.EMAIL] if contact.email else []) + ([Channel.PUSH] if push else [])
            if notice.category == Category.ACTIVITY:
                wanted = [channel for channel in wanted if (notice.customer_id, channel.value) not in opted]
        if not wanted:
            continue
        text = render(notice.notice, language, {**notice.facts, "first_name": first_name})
        for channel in wanted:
            key = (notice.event.id, channel.value, recipient)
            rows.setdefault(
                key,
                Notification(
                    event_id=notice.event.id,
                    event_type=notice.event.type,
                    notice=notice.notice,
                    category=notice.category,
                    channel=channel.value,
                    recipient=recipient,
                    customer_id=notice.customer_id,
                    language=language,
                    subject=text.subject,
                    body=text.body,
                    next_attempt_at=now,
                    created_at=now,
                    updated_at=now,
                ),
            )
    recorded = selectors.recorded_keys(event_ids={key[0] for key in rows})
    fresh = [row for key, row in rows.items() if key not in recorded]
    Notification.objects.bulk_create(fresh)
    for row in fresh:
        publish(
            NotificationSend(
                notification_id=str(row.id),
                source_event_id=str(row.event_id),
                source_event_type=row.event_type,
                notice=row.notice,
                category=row.category,
                channel=row.channel,
                recipient_kind="backoffice" if row.customer_id is None else "customer",
                customer_id=str(row.customer_id) if row.customer_id else None,
                language=row.language,
                recorded_at=rfc3339(now),
            ),
            occurred_at=now,
        )
    return fresh


def payment_orders_record(*, events: Sequence[ReceivedEvent]) -> None:
    """Keep what `payment.initiated` says of each payment, for the network's answer later."""
    with unit_of_work():
        PaymentOrder.objects.bulk_create(
            [
                PaymentOrder(
                    payment_id=_uuid(event.data["payment_id"]),
                    customer_id=_uuid(event.data["customer_id"]),
                    account_id=_uuid(event.data["account_id"]),
                    amount=int(event.data["amount"]),
                    currency=str(event.data["currency"]),
                    initiated_at=_moment(event, "initiated_at"),
                )
                for event in events
            ],
            ignore_conflicts=True,
        )


# -- delivery ------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0  # another worker held them

    @property
    def attempted(self) -> int:
        return self.sent + self.retrying + self.failed


def backoff_seconds(attempts: int) -> float:
    """Exponential in the attempts made, with jitter so a burst of failures does not retry in step."""
    base = settings.FINTECH_NOTIFICATIONS_RETRY_BASE_SECONDS
    delay = min(settings.FINTECH_NOTIFICATIONS_RETRY_MAX_SECONDS, base * 2.0 ** max(attempts - 1, 0))
    return float(delay * random.uniform(0.5, 1.5))


def _lease(notification: Notification, now: datetime) -> datetime | None:
    """Take the notification for sending (one statement); None when another worker has it."""
    until = now + timedelta(seconds=settings.FINTECH_NOTIFICATIONS_LEASE_SECONDS)
    taken = (
        Notification.objects.filter(pk=notification.pk, status=Notification.Status.PENDING, next_attempt_at__lte=now)
        .exclude(lease_until__gte=now)
        .update(lease_until=until)
    )
    return until if taken else None


def _address(notification: Notification) -> str | None:
    if notification.customer_id is None:
        return str(settings.FINTECH_NOTIFICATIONS_BACKOFFICE_EMAIL) or None
    contact = customers.customer_contacts([notification.customer_id]).get(notification.customer_id)
    return contact.email if contact is not None and not contact.erased else None


def _push_payload(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.idempotency_key,
        "notification_id": str(notification.id),
        "event_id": str(notification.event_id),
        "event_type": notification.event_type,
        "notice": notification.notice,
        "category": notification.category,
        "customer_id": str(notification.customer_id) if notification.customer_id else None,
        "language": notification.language,
        "title": notification.subject,
        "body": notification.body,
        "created_at": rfc3339(notification.created_at),
    }


def send(notification: Notification) -> bool:
    """Hand the notification to its channel's provider; False when there is nobody to send to
    any more (erased). Raises `channels.DeliveryFailed`."""
    if notification.channel == Channel.EMAIL:
        address = _address(notification)
        if address is None:
            return False
        channels.send_email(
            key=notification.idempotency_key, to=address, subject=notification.subject, body=notification.body
        )
    else:
        channels.send_push(key=notification.idempotency_key, payload=_push_payload(notification))
    return True


def notifications_deliver(*, now: datetime | None = None, limit: int = 100) -> DeliveryReport:
    """Send the notifications that are due, one at a time and outside any transaction: take a
    lease, send, then record the outcome. A failure is tried again after a backoff with jitter
    and, after `FINTECH_NOTIFICATIONS_MAX_ATTEMPTS`, marked failed with the error."""
    now = now or timezone.now()
    report = DeliveryReport()
    for notification in selectors.notifications_due(now=now, limit=limit):
        lease = _lease(notification, now)
        if lease is None:
            report.skipped += 1
            continue
        try:
            delivered = send(notification)
        except channels.DeliveryFailed as error:
            _record_failure(notification, error=str(error), now=now)
            if notification.status == Notification.Status.FAILED:
                report.failed += 1
            else:
                report.retrying += 1
            continue
        if not delivered:
            _cancel(notification, now=now)
            report.cancelled += 1
            continue
        crash_point("after_send_before_record")  # the provider has it; the lease runs out, it goes again
        Notification.objects.filter(pk=notification.pk).update(
            status=Notification.Status.SENT,
            attempts=F("attempts") + 1,
            sent_at=timezone.now(),
            lease_until=None,
            updated_at=timezone.now(),
        )
        NOTIFICATION_DELIVERIES.labels(notification.channel, "sent").inc()
        report.sent += 1
    return report


def _record_failure(notification: Notification, *, error: str, now: datetime) -> None:
    notification.attempts += 1
    notification.last_error = error[:2000]
    notification.lease_until = None
    notification.updated_at = now
    if notification.attempts >= settings.FINTECH_NOTIFICATIONS_MAX_ATTEMPTS:
        notification.status = Notification.Status.FAILED
        outcome = "failed"
        logger.error(
            "notification given up",
            extra={"notification_id": str(notification.id), "channel": notification.channel, "error": error},
        )
    else:
        notification.next_attempt_at = now + timedelta(seconds=backoff_seconds(notification.attempts))
        outcome = "retry"
    notification.save(
        update_fields=["attempts", "last_error", "lease_until", "updated_at", "status", "next_attempt_at"]
    )
    NOTIFICATION_DELIVERIES.labels(notification.channel, outcome).inc()


def _cancel(notification: Notification, *, now: datetime) -> None:
    Notification.objects.filter(pk=notification.pk).update(
        status=Notification.Status.CANCELLED, lease_until=None, updated_at=now
    )


def notification_resend(*, notification_id: uuid.UUID, now: datetime | None = None) -> Notification:
    """Deliver a sent or failed notification again (the back office's resend): a new delivery,
    with a new idempotency key, so the provider does not take it for the first one."""
    now = now or timezone.now()
    with unit_of_work():
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None:
            raise NotificationNotFound(f"No notification {notification_id}.")
        if notification.status not in (Notification.Status.SENT, Notification.Status.FAILED):
            raise NotificationNotResendable(f"The notification is {notification.status}.")
        notification.resends += 1
        notification.status = Notification.Status.PENDING
        notification.attempts = 0
        notification.last_error = ""
        notification.sent_at = None
        notification.lease_until = None
        notification.next_attempt_at = now
        notification.updated_at = now
        notification.save()
    return notification


# -- preferences and erasure -----------------------------------------------------------------------


def _channel(value: str) -> Channel:
    if value not in Channel.values:
        raise UnknownChannel(f"No channel {value!r}.", errors={"channel": [f"One of {', '.join(Channel.values)}."]})
    return Channel(value)


def channel_opt_out(*, customer_id: uuid.UUID, channel: str, now: datetime | None = None) -> None:
    """The customer no longer wants activity notices on `channel`; security notices still come."""
    with unit_of_work():
        ChannelOptOut.objects.get_or_create(
            customer_id=customer_id, channel=_channel(channel).value, defaults={"created_at": now or timezone.now()}
        )


def channel_opt_in(*, customer_id: uuid.UUID, channel: str) -> None:
    with unit_of_work():
        ChannelOptOut.objects.filter(customer_id=customer_id, channel=_channel(channel).value).delete()


def customers_notifications_erase(*, customer_ids: Iterable[uuid.UUID], now: datetime | None = None) -> int:
    """The customers' personal data was erased: their notifications keep ids, channels and
    outcomes, lose their text (which greets them by name), and the unsent ones are cancelled."""
    now = now or timezone.now()
    ids = set(customer_ids)
    with unit_of_work():
        Notification.objects.filter(customer_id__in=ids, status=Notification.Status.PENDING).update(
            status=Notification.Status.CANCELLED
        )
        return Notification.objects.filter(customer_id__in=ids).update(
            subject="", body="", erased_at=now, lease_until=None, updated_at=now
        )
