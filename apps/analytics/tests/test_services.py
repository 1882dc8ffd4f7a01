"""Facts and figures: counted once however often an event arrives, money taken from an earlier
fact of the same subject, rebuilt the same from the facts."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime

import pytest
from django.db import connections

from apps.analytics import services
from apps.analytics.facts import SubjectNotYetKnown
from apps.analytics.handlers import OWN_EVENT
from apps.analytics.models import DailyFigure, Fact
from fintech import bus
from fintech.events import ReceivedEvent
from fintech.events.registry import known_types
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 3, 1, 23, 59, tzinfo=UTC)


def event(event_type: str, moment: datetime = DAY, **data) -> ReceivedEvent:
    return ReceivedEvent(
        id=uuid.uuid4(), type=event_type, version=1, source="/fintech/test", subject="s", time=moment, data=data
    )


def completed(amount: int, currency: str = "BRL", moment: datetime = DAY) -> ReceivedEvent:
    return event(
        "transaction.completed",
        moment,
        transfer_id=str(uuid.uuid4()),
        from_account_id=str(uuid.uuid4()),
        to_account_id=str(uuid.uuid4()),
        amount=amount,
        currency=currency,
        journal_transaction_id=str(uuid.uuid4()),
        completed_at="2026-03-01T23:59:00Z",
    )


def figures() -> dict[tuple[date, str, str], tuple[int, int]]:
    return {(f.day, f.metric, f.currency): (f.count, f.volume) for f in DailyFigure.objects.all()}


def test_each_fact_is_counted_once_however_often_its_event_arrives():
    one, two = completed(1_000), completed(2_500)
    services.facts_record(events=[one, two])
    services.facts_record(events=[one])
    services.facts_record(events=[two, one, two])
    assert figures() == {(date(2026, 3, 1), "transfers.completed", "BRL"): (2, 3_500)}
    # One analytics.event per fact counted, none for the redeliveries.
    published = OutboxEvent.objects.filter(event_type="analytics.event")
    assert sorted(row.envelope["data"]["source_event_id"] for row in published) == sorted([str(one.id), str(two.id)])


def test_figures_are_per_utc_day_and_currency():
    services.facts_record(
        events=[
            completed(100, moment=datetime(2026, 3, 1, 23, 59, tzinfo=UTC)),
            completed(200, moment=datetime(2026, 3, 2, 0, 0, tzinfo=UTC)),
            completed(300, currency="USD", moment=datetime(2026, 3, 2, 1, 0, tzinfo=UTC)),
        ]
    )
    assert figures() == {
        (date(2026, 3, 1), "transfers.completed", "BRL"): (1, 100),
        (date(2026, 3, 2), "transfers.completed", "BRL"): (1, 200),
        (date(2026, 3, 2), "transfers.completed", "USD"): (1, 300),
    }


def test_events_without_a_business_fact_count_nothing():
    quiet = event("transaction.validated", transfer_id=str(uuid.uuid4()))
    assert services.facts_record(events=[quiet]) == []
    assert not Fact.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_payments_are_counted_from_what_the_bank_booked_each_with_its_own_money():
    payment, other, credit = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    # Out of order (the outcome before the payment's initiation): nothing to wait for.
    services.facts_record(events=[event("payment.settled", payment_id=payment, amount=4_200, currency="EUR")])
    services.facts_record(
        events=[
            event("payment.initiated", payment_id=payment, amount=4_200, currency="EUR"),
            event("payment.initiated", payment_id=other, amount=800, currency="EUR"),
            event("payment.held_for_review", payment_id=other, amount=800, currency="EUR"),
            event("payment.failed", payment_id=other, amount=800, currency="EUR", failure_code="review_expired"),
            event("payment.returned", payment_id=str(uuid.uuid4()), amount=300, currency="EUR", return_reason="AC04"),
            event("payment.credited", credit_id=credit, amount=7_000, currency="BRL"),
            event("payment.credit_returned", credit_id=str(uuid.uuid4()), amount=50, currency="BRL"),
        ]
    )
    assert figures() == {
        (date(2026, 3, 1), "payments.initiated", "EUR"): (2, 5_000),
        (date(2026, 3, 1), "payments.review", "EUR"): (1, 800),
        (date(2026, 3, 1), "payments.settled", "EUR"): (1, 4_200),
        (date(2026, 3, 1), "payments.returned", "EUR"): (1, 300),
        (date(2026, 3, 1), "payments.failed", "EUR"): (1, 800),
        (date(2026, 3, 1), "credits.credited", "BRL"): (1, 7_000),
        (date(2026, 3, 1), "credits.returned", "BRL"): (1, 50),
    }
    assert Fact.objects.get(metric="credits.credited").subject_id == credit


def test_the_networks_messages_are_no_facts():
    """The network's answer and credit say what the network claims; the bank may refuse to book
    them. Only what the payments context booked counts (and analytics does not even read them)."""
    payment = str(uuid.uuid4())
    services.facts_record(events=[event("payment.initiated", payment_id=payment, amount=4_200, currency="EUR")])
    answer = event("payment.processed", payment_id=payment, status="settled", amount=4_200, currency="EUR")
    credit = event("payment.received", end_to_end_id="E8888888820260301235912345678901", amount=10, currency="BRL")
    assert services.facts_record(events=[answer, credit]) == []
    assert Fact.objects.count() == 1
    read = {sub.event_type for sub in bus.all_subscriptions() if sub.context == "analytics"}
    assert not read & {"payment.processed", "payment.received"}


def test_review_outcomes_take_the_money_of_the_alert_and_wait_for_it():
    transfer = str(uuid.uuid4())
    early = event("fraud.review_decided", subject_id=str(uuid.uuid4()), decision="approved")
    with pytest.raises(SubjectNotYetKnown):
        services.facts_record(events=[early])
    services.facts_record(
        events=[
            event("fraud.screened", subject_id=transfer, decision="review", amount=9_900, currency="BRL"),
            event("fraud.alert", subject_id=transfer, amount=9_900, currency="BRL"),
            event("fraud.review_decided", subject_id=transfer, decision="rejected"),
        ]
    )
    assert figures() == {
        (date(2026, 3, 1), "fraud.decisions.review", "BRL"): (1, 9_900),
        (date(2026, 3, 1), "fraud.alerts", "BRL"): (1, 9_900),
        (date(2026, 3, 1), "fraud.reviews.rejected", "BRL"): (1, 9_900),
    }


def test_rebuilding_gives_the_same_figures():
    services.facts_record(
        events=[
            completed(amount, moment=datetime(2026, 1, day, tzinfo=UTC)) for day in range(1, 29) for amount in (1, 2)
        ]
    )
    services.facts_record(events=[event("customer.created", customer_id=str(uuid.uuid4()))])
    live = figures()
    DailyFigure.objects.all().delete()
    DailyFigure.objects.create(day=date(2020, 1, 1), metric="stale", currency="BRL", count=9, volume=9)
    steps = []
    assert services.figures_rebuild(days_per_step=5, progress=lambda done, total: steps.append((done, total))) == 29
    assert figures() == live
    assert steps[-1] == (29, 29)
    assert len(steps) == 6


def test_analytics_reads_every_event_of_the_bank_but_its_own():
    subscribed = {sub.event_type for sub in bus.all_subscriptions() if sub.context == "analytics"}
    assert subscribed == set(known_types()) - {OWN_EVENT, "payment.processed", "payment.received"}
    assert all(not sub.same_unit_of_work for sub in bus.all_subscriptions() if sub.context == "analytics")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_consumers_count_each_fact_once():
    events = [completed(100 + index) for index in range(40)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def consume(batch: list[ReceivedEvent]) -> None:
        try:
            barrier.wait(timeout=30)
            services.facts_record(events=batch)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    # Four consumers, each with every event in another order: each fact must count once.
    orders = [events, events[::-1], events[10:] + events[:10], events[20:] + events[:20]]
    threads = [threading.Thread(target=consume, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert figures() == {(date(2026, 3, 1), "transfers.completed", "BRL"): (40, sum(100 + i for i in range(40)))}
    assert Fact.objects.count() == 40
