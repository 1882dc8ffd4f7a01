"""After a scenario: wait until the bank is quiet, then prove what it did.

Quiet means every transfer of the scenario is final, every event of the outbox is dispatched
and shipped, every notification sent, and every consumer group has committed what is on its
topics. Then, one row of the table:

- every request of the load got a definitive answer, and no answer refused it;
- each request is one effect: the transfers the bank holds for the scenario's accounts are
  exactly those the answers name, each posted once (one journal transaction per completed
  transfer, none for a failed one), each deposit once;
- `manage.py reconcile` passes;
- every event written to the outbox is on Kafka (distinct event ids = rows written, nothing on
  Kafka that was not written), and the duplicates there (records - distinct ids) are counted;
- every event the notifications context reacts to has its notifications, one per event, channel
  and recipient, all sent; the providers' repeats (a sender killed between sending and
  recording sends again under the same key) are counted;
- no 500 (or other 5xx, or a 503 without Retry-After) reached a client; 503s with Retry-After
  (the database away) and refused or reset connections (the web server killed) are counted;
- nothing dead-lettered, in the database or on a `dlq.` topic.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from django.db.models import Count, Max
from django.utils import timezone

from apps.ledger.models import JournalTransaction
from apps.notifications.models import Notification
from apps.payments.models import Payment
from apps.transactions.models import Deposit, Transfer
from chaos import topics
from chaos.load import LoadReport, Operation
from chaos.stack import say
from fintech import bus
from outbox.consumer import ConsumerRunner
from outbox.models import DeadLetter, OutboxEvent


@dataclass(frozen=True)
class Marks:
    """Where the bank stood before a scenario: what it wrote after these is the scenario's."""

    outbox_id: int
    offsets: topics.Offsets
    at: datetime

    @classmethod
    def now(cls) -> Marks:
        close_old_connections()
        last = OutboxEvent.objects.aggregate(last=Max("id"))["last"] or 0
        return cls(outbox_id=last, offsets=topics.end_offsets(), at=timezone.now())


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    faults: str
    requests: int = 0
    transfers: Counter[str] = field(default_factory=Counter)
    payments: Counter[str] = field(default_factory=Counter)
    reconcile: str = ""
    events_written: int = 0
    events_on_kafka: int = 0
    kafka_duplicates: int = 0
    postings: str = ""
    notifications: str = ""
    provider_repeats: int = 0
    http_5xx: Counter[str] = field(default_factory=Counter)
    connection_errors: int = 0
    restarts: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def _reset_connections() -> None:
    # The server may have been restarted under this process's connection.
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - a connection the restart broke cannot be closed politely
            connection.connection = None


def scenario_transfers(accounts: list[str]) -> Any:
    return Transfer.objects.filter(from_account_id__in=accounts)


def scenario_payments(accounts: list[str]) -> Any:
    return Payment.objects.filter(account_id__in=accounts)


def _topics_of(process: str) -> list[str] | None:
    """The topics a consumer process is told to read (`--topics a,b`), where its command names them."""
    argv = settings.FINTECH_PROCESSES.get(process, [])
    return argv[argv.index("--topics") + 1].split(",") if "--topics" in argv else None


def consumer_groups(processes: list[str]) -> dict[str, list[str]]:
    """The Kafka consumer groups the bank runs, and the topics each reads."""
    groups = [name.removeprefix("consumer-") for name in processes if name.startswith("consumer-")]
    return {
        f"fintech.{group}": ConsumerRunner(group, topics=_topics_of(f"consumer-{group}")).topics for group in groups
    }


def why_not_quiet(marks: Marks, accounts: list[str], groups: dict[str, list[str]]) -> str | None:
    """What the bank is still doing for this scenario, or None when it is done."""
    moving = scenario_transfers(accounts).exclude(status__in=Transfer.FINAL).count()
    if moving:
        return f"{moving} transfers not final"
    paying = scenario_payments(accounts).exclude(status__in=Payment.FINAL).count()
    if paying:
        return f"{paying} payments not final"
    events = OutboxEvent.objects.filter(id__gt=marks.outbox_id)
    undispatched = events.filter(dispatched_at__isnull=True).count()
    unsent = events.filter(sent_at__isnull=True).count()
    if undispatched or unsent:
        return f"outbox: {undispatched} undispatched, {unsent} unshipped"
    pending = Notification.objects.filter(created_at__gte=marks.at, status=Notification.Status.PENDING).count()
    if pending:
        return f"{pending} notifications unsent"
    for group, read in groups.items():
        lag = topics.group_lag(group, read)
        if lag:
            return f"consumer group {group} {lag} records behind"
    return None


def wait_until_quiet(
    marks: Marks,
    accounts: list[str],
    groups: dict[str, list[str]],
    *,
    timeout: float,
    resolve_reviews: Callable[[list[str]], None],
    tend: Callable[[], None] = lambda: None,
) -> str | None:
    """Wait for the scenario's work to finish (approving operations held for review, the way the
    back office resumes them, and calling `tend` to keep the outside world up); None once it has,
    else what was still going on at `timeout`."""
    started = time.monotonic()
    deadline, told = started + timeout, started
    reason: str | None = "not asked yet"
    while time.monotonic() < deadline:
        if time.monotonic() - told >= 15:
            say(f"  still working after {time.monotonic() - started:.0f}s: {reason}")
            told = time.monotonic()
        try:
            tend()
            _reset_connections()
            held = [
                str(pk)
                for operations in (scenario_transfers(accounts), scenario_payments(accounts))
                for pk in operations.filter(status="review").values_list("pk", flat=True)
            ]
            if held:
                resolve_reviews(held)
            reason = why_not_quiet(marks, accounts, groups)
        except Exception as error:  # noqa: BLE001 - a server still restarting answers with errors: ask again
            reason = f"{type(error).__name__}: {error}"
        if reason is None:
            return None
        time.sleep(1.0)
    return reason


def check(
    row: Row,
    marks: Marks,
    accounts: list[str],
    load: LoadReport,
    *,
    reconcile: Callable[[], tuple[bool, str]],
    pushed: Counter[str],
    emailed: Counter[str],
) -> Row:
    _reset_connections()
    problems = row.problems
    operations = load.operations
    row.requests = len(operations)

    # Every request answered, none refused.
    unanswered = [operation for operation in operations if operation.status is None]
    if unanswered:
        problems.append(f"{len(unanswered)} requests without a definitive answer ({unanswered[0].unanswered})")
    refused = [operation for operation in operations if operation.refused]
    if refused:
        problems.append(f"{len(refused)} requests refused, e.g. {refused[0].status} {refused[0].answer}")
    refused_items = [item for operation in operations for item in operation.refused_items()]
    if refused_items:
        problems.append(f"{len(refused_items)} batch items refused, e.g. {refused_items[0]['problem']}")

    # One transfer per request (or batch item), each final and posted once.
    answered = {transfer_id for operation in operations for transfer_id in operation.transfer_ids()}
    transfers = {str(t.id): t for t in scenario_transfers(accounts)}
    row.transfers = Counter(t.status for t in transfers.values())
    if set(transfers) != answered:
        extra, missing = set(transfers) - answered, answered - set(transfers)
        problems.append(f"transfers: {len(extra)} no answer names, {len(missing)} answered but absent")
    not_final = sum(count for status, count in row.transfers.items() if status not in Transfer.FINAL)
    if not_final:
        problems.append(f"{not_final} transfers not final")
    posted = Counter(
        JournalTransaction.objects.filter(posting_key__in=[f"transfer:{pk}" for pk in transfers]).values_list(
            "posting_key", flat=True
        )
    )
    completed = {pk for pk, t in transfers.items() if t.status == Transfer.Status.COMPLETED}
    wrongly = [pk for pk in transfers if posted[f"transfer:{pk}"] != (1 if pk in completed else 0)]
    deposits = Deposit.objects.filter(account_id__in=accounts, reference__startswith="chaos-")
    deposit_requests = [operation for operation in operations if operation.kind == "deposit"]
    deposit_postings = JournalTransaction.objects.filter(
        posting_key__in=[f"deposit:{pk}" for pk in deposits.values_list("pk", flat=True)]
    ).count()
    row.postings = f"{len(completed) - len([pk for pk in wrongly if pk in completed])}/{len(completed)} transfers"
    if wrongly:
        problems.append(f"{len(wrongly)} transfers not posted exactly once")
    if deposits.count() != len(deposit_requests) or deposit_postings != len(deposit_requests):
        problems.append(
            f"deposits: {len(deposit_requests)} requested, {deposits.count()} made, {deposit_postings} posted"
        )

    _check_payments(row, accounts, operations)

    ok, output = reconcile()
    row.reconcile = "ok" if ok else "FAILED"
    if not ok:
        problems.append("reconcile: " + output.strip().splitlines()[-1] if output.strip() else "reconcile failed")

    # Every event written is on Kafka, once or more.
    scenario_events = OutboxEvent.objects.filter(id__gt=marks.outbox_id)
    written = {str(event_id) for event_id in scenario_events.values_list("event_id", flat=True)}
    shipped = topics.read_between(marks.offsets, topics.end_offsets())
    row.events_written = len(written)
    row.events_on_kafka = len(written & set(shipped.ids))
    row.kafka_duplicates = shipped.duplicates
    if row.events_on_kafka != len(written):
        problems.append(f"{len(written) - row.events_on_kafka} events written never reached Kafka")
    strangers = set(shipped.ids) - written
    if strangers:
        problems.append(f"{len(strangers)} events on Kafka that the outbox never wrote")
    if shipped.dead_letters:
        problems.append(f"{shipped.dead_letters} records dead-lettered on dlq. topics")
    dead = DeadLetter.objects.filter(created_at__gte=marks.at).count()
    if dead:
        problems.append(f"{dead} deliveries dead-lettered")

    # Each notifying event has its notifications, one per event, channel and recipient, all sent.
    notifying = {sub.event_type for sub in bus.all_subscriptions() if sub.name.startswith("notifications.notify.")}
    expected = {
        str(event_id)
        for event_id in scenario_events.filter(event_type__in=notifying).values_list("event_id", flat=True)
    }
    notifications = Notification.objects.filter(event_id__in=expected)
    per_key = notifications.values("event_id", "channel", "recipient").annotate(n=Count("id"))
    doubled = sum(1 for entry in per_key if entry["n"] != 1)
    told = {str(event_id) for event_id in notifications.values_list("event_id", flat=True)}
    by_status = Counter(notifications.values_list("status", flat=True))
    row.notifications = f"{len(per_key)} for {len(told)} events, " + ", ".join(
        f"{count} {status}" for status, count in sorted(by_status.items())
    )
    if doubled:
        problems.append(f"{doubled} (event, channel, recipient) with more than one notification")
    if told != expected:
        problems.append(f"{len(expected - told)} notifying events without a notification")
    if set(by_status) - {Notification.Status.SENT}:
        problems.append(f"notifications not sent: {dict(by_status)}")
    keys = {notification.idempotency_key for notification in notifications.only("id", "resends")}
    delivered = Counter({key: pushed[key] + emailed[key] for key in keys})
    unseen = sum(1 for key in keys if not delivered[key])
    if unseen:
        problems.append(f"{unseen} notifications recorded as sent that no provider received")
    row.provider_repeats = sum(count - 1 for count in delivered.values() if count > 1)

    # What the clients met.
    row.http_5xx = load.server_errors
    row.connection_errors = load.connection_errors
    failures = {what: count for what, count in row.http_5xx.items() if what != "503"}
    if failures:
        problems.append(f"server errors reached clients: {failures}")
    return row


# The journal transactions of a payment by its final status: the hold posted to clearing when it
# left for the network, then clearing to settlement (settled) or back to the account (returned).
PAYMENT_POSTINGS = {
    Payment.Status.SETTLED: ("payment", "payment-settlement"),
    Payment.Status.RETURNED: ("payment", "payment-return"),
    Payment.Status.FAILED: (),
}


def _check_payments(row: Row, accounts: list[str], operations: list[Operation]) -> None:
    """One payment per request, each final and posted as its status says, each posting once."""
    problems = row.problems
    answered = {payment_id for operation in operations for payment_id in operation.payment_ids()}
    payments = {str(p.id): p for p in scenario_payments(accounts)}
    row.payments = Counter(p.status for p in payments.values())
    if set(payments) != answered:
        extra, missing = set(payments) - answered, answered - set(payments)
        problems.append(f"payments: {len(extra)} no answer names, {len(missing)} answered but absent")
    not_final = sum(count for status, count in row.payments.items() if status not in Payment.FINAL)
    if not_final:
        problems.append(f"{not_final} payments not final")
    kinds = {kind for postings in PAYMENT_POSTINGS.values() for kind in postings}
    posted = Counter(
        JournalTransaction.objects.filter(
            posting_key__in=[f"{kind}:{pk}" for pk in payments for kind in kinds]
        ).values_list("posting_key", flat=True)
    )
    wrongly = [
        pk
        for pk, payment in payments.items()
        if any(posted[f"{kind}:{pk}"] != (kind in PAYMENT_POSTINGS.get(payment.status, ())) for kind in kinds)
    ]
    row.postings += f", {len(payments) - len(wrongly)}/{len(payments)} payments"
    if wrongly:
        problems.append(f"{len(wrongly)} payments not posted exactly as their status says")


def say_row(row: Row) -> None:
    verdict = "PASS" if row.passed else "FAIL: " + "; ".join(row.problems)
    say(f"{row.scenario}: {verdict}")
