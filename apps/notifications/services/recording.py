"""What each event tells whom, recorded once per event, channel and recipient (with the
event's inbox record, in its unit of work)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.accounts import public as accounts
from apps.customers import public as customers
from apps.notifications import selectors
from apps.notifications.events import NotificationSend
from apps.notifications.models import Category, Channel, Notification
from apps.notifications.notices import account_ending, language_of, render
from fintech.events import ReceivedEvent, rfc3339
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work


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


def _accounts_named(events: Sequence[ReceivedEvent]) -> set[uuid.UUID]:
    names: set[uuid.UUID] = set()
    for event in events:
        for key in ("from_account_id", "to_account_id", "account_id"):
            if event.data.get(key):
                names.add(_uuid(event.data[key]))
    return names


# The payments context's booked events: (notice, category, the time the event names).
_PAYMENT_NOTICES = {
    "payment.settled": ("payment_settled", Category.ACTIVITY, "settled_at"),
    "payment.returned": ("payment_returned", Category.SECURITY, "returned_at"),
    "payment.failed": ("payment_failed", Category.SECURITY, "failed_at"),
    "payment.held_for_review": ("payment_in_review", Category.SECURITY, "held_at"),
    "payment.credited": ("credit_received", Category.ACTIVITY, "credited_at"),
}


def notices_of(events: Sequence[ReceivedEvent]) -> list[Notice]:
    """The messages these events call for (one statement for the accounts they name)."""
    named = _accounts_named(events)
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
            case payment_event if payment_event in _PAYMENT_NOTICES:
                # Booked by the payments context: the event names the customer and the account.
                notice, category, moment_field = _PAYMENT_NOTICES[payment_event]
                facts = {
                    **money,
                    "moment": _moment(event, moment_field),
                    "account_ending": ending(data["account_id"]),
                    "return_reason": data.get("return_reason") or "",
                    "failure_code": data.get("failure_code") or "",
                }
                notices.append(Notice(event, notice, category, _uuid(data["customer_id"]), facts))
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
