"""The event spine's guarantees, each measured by a probe context's handlers (tests.spine)."""

import json
import textwrap
import threading
import uuid

import pytest
from django.core.management import call_command
from django.db import connections, transaction

from apps.customers import services as customers
from fintech import bus
from outbox import dispatcher
from outbox.models import DeadLetter, DeliveryAttempt, InboxRecord, OutboxEvent
from tests.spine.models import FailureSwitch, Tally
from tests.spine.support import manage, run_python

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENTS = ["52998224725", "11144477735", "11222333000181", "11444777000161"]


def applied(handler, event_id):
    tally = Tally.objects.filter(handler=handler, event_id=event_id).first()
    return tally.applied if tally else 0


def created_event():
    return OutboxEvent.objects.get(event_type="customer.created")


def test_committed_events_are_dispatched_inline_after_commit():
    customers.customer_create(name="Ana", email="a@example.com", document=DOCUMENTS[0])
    event = created_event()
    assert event.dispatched_at is not None
    assert applied("probe.count", event.event_id) == 1
    # Every subscriber of customer.created applied it once: the probes, and the contexts that read it.
    subscribers = {sub.name for sub in bus.subscriptions_for("customer.created")}
    assert {"probe.count", "probe.fragile"} <= subscribers
    assert set(InboxRecord.objects.filter(event_id=event.event_id).values_list("handler", flat=True)) == subscribers


def test_an_event_published_in_a_rolled_back_transaction_never_appears(tmp_path):
    def onboard_then_change_mind():
        with transaction.atomic():
            customers.customer_create(name="Ana", email="a@example.com", document=DOCUMENTS[0])
            raise RuntimeError("the caller changed its mind")

    with pytest.raises(RuntimeError):
        onboard_then_change_mind()
    assert not OutboxEvent.objects.exists()
    assert not Tally.objects.exists()
    shipped = tmp_path / "shipped.jsonl"
    result = manage("relay_outbox", "--once", "--sink", "file", env={"FINTECH_RELAY_FILE": str(shipped)})
    assert result.returncode == 0, result.stderr
    assert not shipped.exists() or shipped.read_text() == ""


def test_a_crash_between_commit_and_dispatch_loses_no_event():
    crash = run_python(
        textwrap.dedent(
            f"""
            import os
            from outbox import dispatcher
            dispatcher.dispatch_after_commit = lambda event_ids: os._exit(17)  # die right after the commit
            from apps.customers.services import customer_create
            customer_create(name="Ana", email="a@example.com", document="{DOCUMENTS[0]}")
            """
        )
    )
    assert crash.returncode == 17, crash.stderr
    event = created_event()
    assert event.dispatched_at is None
    assert applied("probe.count", event.event_id) == 0

    call_command("dispatch_events", "--once", "--grace", "0")
    event.refresh_from_db()
    assert event.dispatched_at is not None
    assert applied("probe.count", event.event_id) == 1
    assert applied("probe.fragile", event.event_id) == 1

    call_command("dispatch_events", "--once", "--grace", "0")
    assert applied("probe.count", event.event_id) == 1


def test_redelivery_of_a_handled_event_is_a_no_op():
    customers.customer_create(name="Ana", email="a@example.com", document=DOCUMENTS[0])
    event = created_event()
    OutboxEvent.objects.filter(pk=event.pk).update(dispatched_at=None)
    event.refresh_from_db()
    dispatcher.deliver(event)
    dispatcher.deliver(event)
    assert applied("probe.count", event.event_id) == 1
    assert applied("probe.fragile", event.event_id) == 1


def test_a_failing_handler_is_retried_then_dead_lettered_then_replayed(settings):
    settings.FINTECH_HANDLER_MAX_ATTEMPTS = 3
    settings.FINTECH_HANDLER_RETRY_BASE_SECONDS = 0
    FailureSwitch.objects.create(handler="probe.fragile")
    customers.customer_create(name="Ana", email="a@example.com", document=DOCUMENTS[0])
    event = created_event()

    # First attempt ran inline after the commit; the healthy handler is unaffected.
    assert applied("probe.count", event.event_id) == 1
    assert DeliveryAttempt.objects.get(event_id=event.event_id, handler="probe.fragile").attempts == 1
    assert event.dispatched_at is None

    dispatcher.sweep(grace_seconds=0)
    assert DeliveryAttempt.objects.get(event_id=event.event_id, handler="probe.fragile").attempts == 2
    dispatcher.sweep(grace_seconds=0)
    letter = DeadLetter.objects.get(event_id=event.event_id)
    assert letter.handler == "probe.fragile"
    assert letter.attempts == 3
    assert "switched to fail" in letter.error
    assert not DeliveryAttempt.objects.exists()
    event.refresh_from_db()
    assert event.dispatched_at is not None  # given up on, not blocking the sweeper
    assert applied("probe.count", event.event_id) == 1
    assert applied("probe.fragile", event.event_id) == 0

    FailureSwitch.objects.all().delete()  # the bug is fixed
    call_command("replay_handler_dead_letters")
    assert applied("probe.fragile", event.event_id) == 1
    assert applied("probe.count", event.event_id) == 1
    letter.refresh_from_db()
    assert letter.replayed_at is not None
    call_command("replay_handler_dead_letters")
    assert applied("probe.fragile", event.event_id) == 1


def test_concurrent_dispatchers_apply_each_event_once(settings):
    settings.FINTECH_EVENT_DISPATCH = "worker"  # leave delivery to the dispatchers below
    for document in DOCUMENTS:
        customers.customer_create(name="Ana", email="a@example.com", document=document)
    assert OutboxEvent.objects.filter(dispatched_at__isnull=True).count() == len(DOCUMENTS)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run():
        barrier.wait()
        try:
            dispatcher.dispatch(limit=100)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for event in OutboxEvent.objects.filter(event_type="customer.created"):
        assert applied("probe.count", event.event_id) == 1
        assert applied("probe.fragile", event.event_id) == 1
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()


def test_two_relays_at_once_ship_each_event_once_and_in_order(tmp_path, settings):
    settings.FINTECH_EVENT_DISPATCH = "worker"
    customer = customers.customer_create(name="Ana", email="a@example.com", document=DOCUMENTS[0])
    for _ in range(30):
        with transaction.atomic():
            for _ in range(10):
                dispatcher_free_publish(customer.id)
    total = OutboxEvent.objects.count()
    assert total == 301
    # Read now: a row whose handlers are all done (none subscribe here) is deleted once shipped.
    expected = [str(e) for e in OutboxEvent.objects.order_by("id").values_list("event_id", flat=True)]

    shipped = tmp_path / "shipped.jsonl"
    from tests.spine.support import start_manage

    env = {"FINTECH_RELAY_FILE": str(shipped)}
    relays = [start_manage("relay_outbox", "--once", "--sink", "file", "--batch-size", "20", env=env) for _ in "ab"]
    for relay in relays:
        relay.wait(timeout=120)
        assert relay.returncode == 0, relay.output()

    records = [json.loads(line) for line in shipped.read_text().splitlines()]
    ids = [record["headers"]["ce_id"] for record in records]
    assert len(ids) == total
    assert len(set(ids)) == total
    assert ids == expected
    assert not OutboxEvent.objects.filter(sent_at__isnull=True).exists()
    first = records[0]
    assert first["key"] == str(customer.id)
    assert first["value"]["specversion"] == "1.0"
    assert first["headers"]["ce_type"] == "customer.created"
    assert first["headers"]["traceparent"].startswith("00-")


def dispatcher_free_publish(customer_id):
    from apps.customers.events import CustomerVerified
    from outbox.publisher import publish

    publish(CustomerVerified(customer_id=str(customer_id), reviewed_by="probe", verified_at="2026-01-01T00:00:00Z"))


@pytest.mark.postgres
def test_rows_of_transactions_that_commit_out_of_id_order_are_not_skipped(tmp_path, settings):
    """Transaction A writes its event first (smaller id) but commits last. The relay must not
    ship B's event past A's, and must ship A's once it commits: both, in order."""
    from outbox.relay import relay_pending
    from outbox.sinks import FileSink

    settings.FINTECH_EVENT_DISPATCH = "worker"
    customer = customers.customer_create(name="Ana", email="a@example.com", document=DOCUMENTS[0])
    ship_everything_committed(FileSink(tmp_path / "before.jsonl"))
    a_written, b_committed, a_may_commit = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def transaction_a():
        try:
            with transaction.atomic():
                dispatcher_free_publish(customer.id)
                a_written.set()
                a_may_commit.wait(30)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    def transaction_b():
        try:
            a_written.wait(30)
            with transaction.atomic():
                dispatcher_free_publish(customer.id)
            b_committed.set()
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=transaction_a), threading.Thread(target=transaction_b)]
    for thread in threads:
        thread.start()
    assert b_committed.wait(30)
    shipped = tmp_path / "shipped.jsonl"
    assert relay_pending(FileSink(shipped)) == 0  # B's row waits for A, which is still open
    a_may_commit.set()
    for thread in threads:
        thread.join()
    assert not errors
    # Read now: rows whose handlers are all done (none subscribe here) go once shipped.
    expected = [str(e) for e in OutboxEvent.objects.order_by("id").values_list("event_id", flat=True)][1:]
    ship_everything_committed(FileSink(shipped))
    ids = [json.loads(line)["headers"]["ce_id"] for line in shipped.read_text().splitlines()]
    assert ids == expected


def ship_everything_committed(sink) -> None:
    """Relay until nothing committed is left unsent. The relay waits behind any transaction of
    the server that is older than a row (its snapshot's xmin is the whole cluster's), so on a
    server other work shares it may take more than one pass."""
    import time

    from outbox.relay import relay_pending

    deadline = time.monotonic() + 60
    while OutboxEvent.objects.filter(sent_at__isnull=True).exists():
        assert time.monotonic() < deadline, "committed rows were never shipped"
        relay_pending(sink)
        time.sleep(0.1)


def write_dispatched_rows(count):
    from django.utils import timezone

    now = timezone.now()
    OutboxEvent.objects.bulk_create(
        OutboxEvent(
            event_type="probe.bulk",
            schema_version=1,
            source="test",
            aggregate_id=f"agg-{n % 7}",
            envelope={"specversion": "1.0", "type": "probe.bulk", "data": {"n": n}},
            headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
            dispatched_at=now,
        )
        for n in range(count)
    )


def plan_of(cursor, sql, params):
    cursor.execute("EXPLAIN " + sql, params)
    return "\n".join(row[0] for row in cursor.fetchall())


def test_a_sink_failing_half_way_marks_nothing_and_the_next_relay_ships_it_all(tmp_path):
    from outbox.relay import relay_batch, relay_pending
    from outbox.sinks import FileSink

    write_dispatched_rows(1_200)  # more than one chunk: the next is being read when the sink fails

    class BrokerGoneSink(FileSink):
        def send(self, events, handed_over=lambda: None):
            for count, _ in enumerate(events, 1):
                if count == 3:
                    raise ConnectionError("broker gone")

    with pytest.raises(ConnectionError):
        relay_batch(BrokerGoneSink(tmp_path / "never.jsonl"), batch_size=1_000)
    assert OutboxEvent.objects.filter(sent_at__isnull=True).count() == 1_200

    shipped = tmp_path / "shipped.jsonl"
    assert relay_pending(FileSink(shipped), batch_size=1_000) == 1_200
    assert [json.loads(line)["value"]["data"]["n"] for line in shipped.read_text().splitlines()] == list(range(1_200))
    assert not OutboxEvent.objects.exists()


@pytest.mark.postgres
def test_the_relay_reads_and_marks_through_indexes_whatever_the_statistics_say(tmp_path):
    """A queue's statistics lag behind it: analysed while empty, the outbox is believed empty
    when a backlog arrives. The relay's plans must not depend on them (each of the planner's
    own choices in that state read or matched the whole backlog per statement)."""
    from django.db import connection

    from outbox import relay
    from outbox.sinks import FileSink

    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")  # believed empty from now on
    write_dispatched_rows(3_000)

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(relay._READ_PLAN_SQL)
        read = plan_of(cursor, relay._CHUNK_SQL.format(table=table), [0, relay.FETCH_CHUNK])
        assert "Index Scan using outbox_unsent" in read, read
        assert "Sort" not in read, read
        assert "Bitmap" not in read, read
        cursor.execute(f"SELECT ctid::text, id FROM {table} ORDER BY id LIMIT 2")  # noqa: S608
        (first_ctid, first_id), (second_ctid, second_id) = cursor.fetchall()
        cursor.execute(relay._MARK_PLAN_SQL)
        mark = plan_of(
            cursor,
            relay._DELETE_SQL.format(table=table),
            [f'{{"{first_ctid}","{second_ctid}"}}', f"{{{first_id},{second_id}}}"],
        )
        assert "Tid Scan" in mark, mark

    shipped = tmp_path / "shipped.jsonl"
    assert relay.relay_pending(FileSink(shipped), batch_size=1_000) == 3_000
    assert not OutboxEvent.objects.exists()  # each shipped row, found by its address, is gone
    ids = [json.loads(line)["value"]["data"]["n"] for line in shipped.read_text().splitlines()]
    assert ids == list(range(3_000))


@pytest.mark.postgres
def test_a_row_whose_handlers_finish_while_it_ships_is_shipped_once_and_removed(tmp_path, settings):
    """Read as still being dispatched, finished by the dispatcher before the relay marks it
    (the dispatcher's update moved the row, so the relay's mark by address misses it): the
    relay finds it by id, and it is neither lost nor shipped a second time."""
    from django.utils import timezone

    from outbox.relay import relay_batch
    from outbox.sinks import FileSink

    settings.FINTECH_EVENT_DISPATCH = "worker"
    customer = customers.customer_create(name="Ana", email="a@example.com", document=DOCUMENTS[0])
    for _ in range(2):
        with transaction.atomic():
            dispatcher_free_publish(customer.id)
    OutboxEvent.objects.update(dispatched_at=None)  # all three still being dispatched when read
    raced, *_ = OutboxEvent.objects.order_by("id")
    errors: list[BaseException] = []

    def dispatcher_finishes_it():
        try:
            OutboxEvent.objects.filter(pk=raced.pk).update(dispatched_at=timezone.now())
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    class RacingSink(FileSink):
        def send(self, events, handed_over=lambda: None):
            def finish_then_mark():
                thread = threading.Thread(target=dispatcher_finishes_it)
                thread.start()
                thread.join()
                handed_over()

            super().send(events, finish_then_mark)

    shipped = tmp_path / "shipped.jsonl"
    assert relay_batch(RacingSink(shipped)) == 3
    assert not errors
    assert not OutboxEvent.objects.filter(pk=raced.pk).exists()  # shipped and done: gone
    assert OutboxEvent.objects.filter(sent_at__isnull=False).count() == 2  # shipped, still dispatching

    assert relay_batch(FileSink(shipped)) == 0  # nothing ships twice
    ids = [json.loads(line)["headers"]["ce_id"] for line in shipped.read_text().splitlines()]
    assert ids.count(str(raced.event_id)) == 1
    assert len(ids) == len(set(ids)) == 3


def test_housekeeping_removes_only_what_has_done_its_job(settings):
    from datetime import timedelta

    from django.utils import timezone

    from outbox.housekeeping import purge

    settings.FINTECH_EVENT_DISPATCH = "worker"
    for document in DOCUMENTS[:3]:
        customers.customer_create(name="Ana", email="a@example.com", document=document)
    old = timezone.now() - timedelta(days=settings.FINTECH_OUTBOX_RETENTION_DAYS + 1)
    done, unsent, undispatched = OutboxEvent.objects.order_by("id")
    OutboxEvent.objects.filter(pk=done.pk).update(created_at=old, sent_at=old, dispatched_at=old)
    OutboxEvent.objects.filter(pk=unsent.pk).update(created_at=old, dispatched_at=old)
    OutboxEvent.objects.filter(pk=undispatched.pk).update(created_at=old, sent_at=old)

    report = purge()
    assert report.outbox_events == 1
    assert set(OutboxEvent.objects.values_list("pk", flat=True)) == {unsent.pk, undispatched.pk}


def test_an_event_published_in_a_savepoint_that_rolls_back_is_forgotten_with_it():
    """Inside a unit of work events are written when it finishes: one published in a savepoint
    that rolled back must not be, one published beside it must."""
    from apps.customers.events import CustomerVerified
    from outbox.publisher import publish
    from outbox.unit_of_work import unit_of_work

    def verified(reviewer: str) -> CustomerVerified:
        return CustomerVerified(customer_id=str(uuid.uuid4()), reviewed_by=reviewer, verified_at="2026-01-01T00:00:00Z")

    with unit_of_work():
        publish(verified("kept-before"))
        try:
            with transaction.atomic():
                publish(verified("rolled-back"))
                raise RuntimeError("the savepoint rolls back")
        except RuntimeError:
            pass
        publish(verified("kept-after"))
    # (The reactions to them publish events of their own: analytics counts verified customers.)
    verified_events = OutboxEvent.objects.filter(event_type="customer.verified").order_by("id")
    assert [e.envelope["data"]["reviewed_by"] for e in verified_events] == ["kept-before", "kept-after"]


def test_a_consumer_group_applies_its_own_contexts_handlers_only(settings):
    """Kafka consumers of the `fraud` and `transactions` groups run their own context's handlers;
    the events they publish go to the outbox for the other groups, even when this process
    dispatches inline."""
    from apps.ledger.models import Hold
    from apps.transactions import services as transfers
    from apps.transactions.models import Transfer
    from fintech import bus
    from tests.factories import open_account

    source, destination = open_account(balance=1_000), open_account()
    settings.FINTECH_EVENT_DISPATCH = "worker"  # accepted, nothing continues
    transfer = transfers.transfer_initiate(
        from_account_id=source.id, to_account_id=destination.id, amount=100, currency="BRL", initiated_by="probe"
    )
    initiated = OutboxEvent.objects.get(event_type="transaction.initiated")

    settings.FINTECH_EVENT_DISPATCH = "inline"  # what the web process would do: irrelevant to a consumer
    screening = bus.subscription_named("fraud.screen_transfer")
    assert screening is not None
    event = dispatcher.received_from_envelope(initiated.envelope, initiated.headers)
    assert dispatcher.run_handler(screening, event, after_commit=False) is True
    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.INITIATED  # the transactions group has not run
    screened = OutboxEvent.objects.get(event_type="fraud.screened")
    assert screened.dispatched_at is None  # left for the transactions group

    going_on = bus.subscription_named("transactions.continue_screened_transfer")
    assert going_on is not None
    event = dispatcher.received_from_envelope(screened.envelope, screened.headers)
    assert dispatcher.run_handler(going_on, event, after_commit=False) is True
    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.VALIDATED
    validated = OutboxEvent.objects.get(event_type="transaction.validated")
    assert validated.dispatched_at is None  # left for the ledger's group
    assert not InboxRecord.objects.filter(event_id=validated.event_id).exists()
    assert Hold.objects.get(hold_key=f"transfer:{transfer.id}").status == Hold.Status.ACTIVE


def test_the_outbox_can_keep_every_shipped_event_as_an_audit(settings, tmp_path):
    from outbox.relay import relay_pending
    from outbox.sinks import FileSink

    settings.FINTECH_OUTBOX_KEEP_SHIPPED = True
    for document in DOCUMENTS[:2]:
        customers.customer_create(name="Ana", email="a@example.com", document=document)
    written = set(OutboxEvent.objects.values_list("event_id", flat=True))
    assert relay_pending(FileSink(tmp_path / "shipped.jsonl")) == len(written)
    kept = OutboxEvent.objects.all()
    assert set(kept.values_list("event_id", flat=True)) == written  # shipped and dispatched, still there
    assert all(row.sent_at and row.dispatched_at for row in kept)
