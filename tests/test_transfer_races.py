"""Transfers under contention and crashes: concurrent requests against one balance, crossing
transfers between accounts, a dispatcher that dies between any two steps of the choreography,
and one Idempotency-Key sent by many clients at once.

The concurrent tests go through the real HTTP stack (authentication, Idempotency-Key, the
view, the services and, in the embedded mode, the handlers that run after the commit), one
thread and one database connection per client, all released together by a barrier.
"""

from __future__ import annotations

import io
import textwrap
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.db.models import Max
from rest_framework.test import APIClient

from apps.ledger.models import Hold, JournalEntry, JournalTransaction, LedgerAccount
from apps.transactions.models import Transfer
from fintech import bus
from fintech.api.models import IdempotencyRecord
from outbox.models import DeadLetter, DeliveryAttempt, InboxRecord, OutboxEvent
from tests.factories import open_account
from tests.spine.support import run_python, start_manage

pytestmark = pytest.mark.django_db(transaction=True)

FUNDS = 10_000
AMOUNT = 300
REQUEST_TIMEOUT = 60.0  # seconds for every request of a burst to answer; a deadlock never does

# The transfer choreography, in the order a single transfer goes through it.
CHAIN = (
    "fraud.screen_transfer",  # transaction.initiated -> fraud.screened
    "transactions.continue_screened_transfer",  # fraud.screened (approve) -> transaction.validated
    "payments.continue_screened_payment",  # fraud.screened: a transfer's screening is nothing to payments
    "ledger.post_validated_transfer",  # transaction.validated -> ledger.entry_written
    "accounts.publish_balance_updates",  # ledger.entry_written -> account.balance.updated
    "transactions.complete_posted_transfer",  # ledger.entry_written -> transaction.completed
)


# --- helpers ------------------------------------------------------------------------------------


@dataclass
class Request:
    client: APIClient
    body: dict[str, object]
    key: str | None  # None: a POST without an Idempotency-Key


def transfer_body(source, destination, amount: int) -> dict[str, object]:
    return {
        "from_account_id": str(source.id),
        "to_account_id": str(destination.id),
        "amount": amount,
        "currency": "BRL",
    }


def post_all_at_once(requests: list[Request], path: str = "/api/v1/transfers") -> list[Any]:
    """POST every request to `path` from its own thread, all released together; returns the
    responses in request order. Fails if any request is still running after REQUEST_TIMEOUT
    (that is a deadlock or a stall), raised, or was answered with a 5xx."""
    barrier = threading.Barrier(len(requests))
    results: list[Any] = [None] * len(requests)

    def run(index: int, request: Request) -> None:
        try:
            # Connect before the start line, as a server's workers are connected before a burst
            # comes in. Fifty threads of one interpreter connecting while the others already run
            # Python code can starve a connect past its 5 s timeout: a GIL effect of the test.
            connections["default"].ensure_connection()
            barrier.wait(timeout=REQUEST_TIMEOUT)
            headers: dict[str, Any] = {} if request.key is None else {"HTTP_IDEMPOTENCY_KEY": request.key}
            results[index] = request.client.post(path, request.body, format="json", **headers)
        except BaseException as error:  # an exception that escaped the view: the test client re-raises it
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, r), daemon=True) for i, r in enumerate(requests)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, REQUEST_TIMEOUT - (time.monotonic() - started)))
    stuck = sum(thread.is_alive() for thread in threads)
    assert not stuck, f"{stuck} of {len(threads)} requests did not answer within {REQUEST_TIMEOUT}s"
    errors = [result for result in results if isinstance(result, BaseException)]
    assert not errors, f"{len(errors)} request(s) raised, e.g. {errors[0]!r}"
    server_errors = [r for r in results if r.status_code >= 500]
    assert not server_errors, [(r.status_code, r.content[:300]) for r in server_errors]
    return results


def staff_clients(client_with, count: int) -> list[APIClient]:
    """One back-office client per thread (each its own test client), all with the same subject."""
    return [client_with("transfers:read transfers:write") for _ in range(count)]


def ledger_of(account) -> LedgerAccount:
    return LedgerAccount.objects.get(owner_ref=account.id)


def assert_problem(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["code"] == code


def assert_books_reconcile() -> None:
    out = io.StringIO()
    call_command("reconcile", "--quiet", stdout=out)  # raises CommandError when they do not
    assert "the books reconcile" in out.getvalue()


def assert_every_event_handled_once() -> None:
    """Every committed event was offered to all its subscribers, each applied it exactly once,
    and nothing is left to retry or dead-lettered."""
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    assert not DeliveryAttempt.objects.exists()
    assert not DeadLetter.objects.exists()
    handled = Counter(InboxRecord.objects.values_list("event_id", "handler"))
    assert set(handled.values()) <= {1}
    for event_id, event_type in OutboxEvent.objects.values_list("event_id", "event_type"):
        expected = {sub.name for sub in bus.subscriptions_for(event_type)}
        got = {handler for (eid, handler) in handled if eid == event_id}
        assert got == expected, (event_type, event_id)


def assert_transfers_posted_once(transfers) -> None:
    for transfer in transfers:
        assert transfer.status == Transfer.Status.COMPLETED, (transfer.id, transfer.status, transfer.failure_code)
        journal = JournalTransaction.objects.get(posting_key=f"transfer:{transfer.id}")
        assert transfer.journal_transaction_id == journal.id
        assert sorted(JournalEntry.objects.filter(transaction=journal).values_list("side", "amount")) == [
            ("credit", transfer.amount),
            ("debit", transfer.amount),
        ]
        assert Hold.objects.get(hold_key=f"transfer:{transfer.id}").status == Hold.Status.POSTED
    ids = [str(t.id) for t in transfers]
    completed_events = OutboxEvent.objects.filter(event_type="transaction.completed", aggregate_id__in=ids)
    assert completed_events.count() == len(ids)


# --- 1 and 2: many transfers against one balance ------------------------------------------------


def race_for_one_balance(client_with, *, threads: int, funds: int, amount: int) -> None:
    """`threads` transfers of `amount` out of one account holding `funds`, all at once: exactly
    funds // amount complete and the others are refused whole, with nothing written."""
    source, destination = open_account(balance=funds), open_account()
    winners_expected = min(threads, funds // amount)
    assert winners_expected < threads, "the race needs losers to prove anything"
    clients = staff_clients(client_with, threads)
    requests = [Request(c, transfer_body(source, destination, amount), str(uuid.uuid4())) for c in clients]

    responses = post_all_at_once(requests)

    completed = [r for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(completed) == winners_expected, Counter(r.status_code for r in responses)
    for response in completed:
        assert response.json()["status"] == "completed"
    for response in refused:
        assert_problem(response, 422, "insufficient_funds")

    # The refused ones wrote nothing: no transfer, hold, event or stored idempotent response.
    transfers = list(Transfer.objects.all())
    assert len(transfers) == winners_expected
    assert {str(t.id) for t in transfers} == {r.json()["id"] for r in completed}
    assert Hold.objects.count() == winners_expected
    assert OutboxEvent.objects.filter(event_type="transaction.initiated").count() == winners_expected
    assert IdempotencyRecord.objects.count() == winners_expected
    assert_transfers_posted_once(transfers)

    moved = winners_expected * amount
    source_ledger, destination_ledger = ledger_of(source), ledger_of(destination)
    assert (source_ledger.balance, source_ledger.held) == (funds - moved, 0)
    assert (destination_ledger.balance, destination_ledger.held) == (moved, 0)
    assert_every_event_handled_once()
    assert_books_reconcile()


@pytest.mark.postgres
def test_fifty_concurrent_transfers_out_of_one_account_never_overdraw_it(client_with):
    race_for_one_balance(client_with, threads=50, funds=FUNDS, amount=AMOUNT)  # 33 complete, 17 refused


def test_concurrent_transfers_out_of_one_account_queue_instead_of_failing(client_with):
    # On SQLite the IMMEDIATE transactions queue on the busy timeout: no "database is locked".
    race_for_one_balance(client_with, threads=12, funds=FUNDS, amount=900)  # 11 complete, 1 refused


@pytest.mark.postgres
def test_crossing_transfers_between_five_accounts_do_not_deadlock(client_with):
    """A->B and B->A (and around the ring) at once: every lock is taken in one order, so all
    50 requests answer, each completes in its own request, and the books reconcile."""
    ring = 5
    routes = [(i, (i + 1) % ring) for i in range(ring)] + [((i + 1) % ring, i) for i in range(ring)]
    plan = [(*routes[n % len(routes)], 100 + n) for n in range(50)]  # (from, to, amount): distinct amounts
    outgoing: Counter[Any] = Counter()
    incoming: Counter[Any] = Counter()
    for source, destination, amount in plan:
        outgoing[source] += amount
        incoming[destination] += amount
    # Each account holds exactly what it sends: every transfer is covered whatever the order.
    accounts = [open_account(balance=outgoing[i]) for i in range(ring)]
    clients = staff_clients(client_with, len(plan))
    requests = [
        Request(client, transfer_body(accounts[s], accounts[d], amount), str(uuid.uuid4()))
        for client, (s, d, amount) in zip(clients, plan, strict=True)
    ]

    responses = post_all_at_once(requests)

    assert Counter(r.status_code for r in responses) == {201: len(plan)}
    assert all(r.json()["status"] == "completed" for r in responses)
    transfers = list(Transfer.objects.all())
    assert len(transfers) == len(plan)
    assert_transfers_posted_once(transfers)
    for i, account in enumerate(accounts):
        ledger = ledger_of(account)
        assert (ledger.balance, ledger.held) == (incoming[i], 0)  # funded with what it sends
    assert_every_event_handled_once()
    assert_books_reconcile()


# --- 3: a dispatcher that dies inside a unit of work, or between two steps -----------------------

# The happy path: the dispatcher runs the whole chain in one unit of work. It dies inside a step,
# after the step's work and before the unit commits.
CRASH_INSIDE_STEP = """
import dataclasses
import os
from django.conf import settings
from django.core.management import call_command
from fintech import bus

settings.FINTECH_EVENT_DISPATCH = "worker"  # this dispatcher is the only one that delivers
target = bus.subscription_named({handler!r})


def crashing(event):
    target.handler(event)  # the step did its work; its unit of work has not committed
    os._exit(17)


subs = bus._subscriptions[target.event_type]
subs[subs.index(target)] = dataclasses.replace(target, handler=crashing)
call_command("dispatch_events", "--once", "--grace", "0")
"""

# The slow path, taken once a handler has failed: one handler per transaction. It dies right
# after one handler's transaction committed.
CRASH_AFTER_HANDLER = """
import os
from django.conf import settings
from django.core.management import call_command
from outbox import dispatcher

settings.FINTECH_EVENT_DISPATCH = "worker"  # this dispatcher is the only one that delivers
real_run_handler = dispatcher.run_handler


def no_batch(deliveries, now):
    raise RuntimeError("a handler failed in the batch")  # sends every event down the slow path


def run_handler(sub, event, **options):
    applied = real_run_handler(sub, event, **options)  # its transaction has committed when it returns
    if applied and sub.name == {handler!r}:
        os._exit(17)  # die before anything after this step runs
    return applied


dispatcher._apply_batch = no_batch
dispatcher.run_handler = run_handler
call_command("dispatch_events", "--once", "--grace", "0")
"""


# What the reactions to a transfer publish (notifications, analytics): not part of the chain.
REACTION_OUTPUTS = ("notification.send", "analytics.event")


def chain_order() -> list[str]:
    """The steps in the order one sequential dispatcher applies them to one transfer (the
    reactions to the same events, notifications and analytics, run between them there)."""
    return [
        *(s.name for s in bus.steps_for("transaction.initiated")),
        *(s.name for s in bus.steps_for("fraud.screened")),
        *(s.name for s in bus.steps_for("transaction.validated")),
        *(s.name for s in bus.steps_for("ledger.entry_written")),
    ]


def test_the_chain_is_the_one_the_crash_tests_cover():
    # A handler added to the choreography must be added to CHAIN, so a crash after it is tested too.
    order = chain_order()
    assert len(order) == len(set(order))
    assert set(order) == set(CHAIN)
    assert all(sub.same_unit_of_work for sub in map(bus.subscription_named, CHAIN) if sub is not None)


def accepted_transfer(staff, source, destination) -> Transfer:
    response = staff.post(
        "/api/v1/transfers",
        transfer_body(source, destination, AMOUNT),
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert response.status_code == 202, response.content
    return Transfer.objects.get(pk=response.json()["id"])


def crashed_dispatcher(staff, settings, script: str, handler: str):
    """A transfer accepted while only dispatchers deliver, and a dispatcher that ran `script`
    for `handler` and died: the accounts, the transfer, and the last outbox id before it."""
    source, destination = open_account(balance=FUNDS), open_account()
    settings.FINTECH_EVENT_DISPATCH = "worker"  # the request commits; only dispatchers deliver
    before = OutboxEvent.objects.aggregate(last=Max("id"))["last"]
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    transfer = accepted_transfer(staff, source, destination)

    crash = run_python(textwrap.dedent(script.format(handler=handler)))
    assert crash.returncode == 17, crash.stderr[-3000:]
    return source, destination, transfer, before


def chain_handled_since(before) -> list[str]:
    """The steps of the chain that committed since `before`, in order."""
    return list(
        InboxRecord.objects.filter(
            event_id__in=OutboxEvent.objects.filter(id__gt=before).values("event_id"), handler__in=CHAIN
        )
        .order_by("id")
        .values_list("handler", flat=True)
    )


def assert_resumes_and_posts_once(transfer, source, destination, before) -> None:
    call_command("dispatch_events", "--once", "--grace", "0", stdout=io.StringIO())

    transfer.refresh_from_db()
    assert_transfers_posted_once([transfer])
    assert JournalTransaction.objects.filter(kind="transfer").count() == 1
    source_ledger, destination_ledger = ledger_of(source), ledger_of(destination)
    assert (source_ledger.balance, source_ledger.held) == (FUNDS - AMOUNT, 0)
    assert (destination_ledger.balance, destination_ledger.held) == (AMOUNT, 0)
    chain_events = Counter(
        OutboxEvent.objects.filter(id__gt=before)
        .exclude(event_type__in=REACTION_OUTPUTS)
        .values_list("event_type", flat=True)
    )
    assert chain_events == {
        "transaction.initiated": 1,
        "fraud.screened": 1,
        "transaction.validated": 1,
        "ledger.entry_written": 1,
        "account.balance.updated": 2,
        "transaction.completed": 1,
    }
    assert_every_event_handled_once()
    assert_books_reconcile()

    # A second sweep finds nothing to do.
    out = io.StringIO()
    call_command("dispatch_events", "--once", "--grace", "0", stdout=out)
    assert "events=0 handled=0" in out.getvalue()


@pytest.mark.parametrize("crash_inside", CHAIN)
def test_a_dispatcher_killed_inside_any_step_commits_nothing_of_the_chain_and_resumes_once(
    crash_inside, staff, settings
):
    source, destination, transfer, before = crashed_dispatcher(staff, settings, CRASH_INSIDE_STEP, crash_inside)

    # The unit of work died whole: not one step of the chain committed.
    assert chain_handled_since(before) == []
    transfer.refresh_from_db()
    assert transfer.status == Transfer.Status.INITIATED
    assert Hold.objects.get(hold_key=f"transfer:{transfer.id}").status == Hold.Status.ACTIVE
    assert not JournalTransaction.objects.filter(kind="transfer").exists()
    assert list(OutboxEvent.objects.filter(id__gt=before).values_list("event_type", flat=True)) == [
        "transaction.initiated"
    ]

    assert_resumes_and_posts_once(transfer, source, destination, before)


@pytest.mark.parametrize("crash_after", CHAIN)
def test_a_dispatcher_killed_between_two_steps_on_the_slow_path_resumes_without_posting_twice(
    crash_after, staff, settings
):
    source, destination, transfer, before = crashed_dispatcher(staff, settings, CRASH_AFTER_HANDLER, crash_after)

    # Exactly the steps up to and including the crashed one committed, each once.
    order = chain_order()
    ran = chain_handled_since(before)
    assert ran == order[: order.index(crash_after) + 1]
    posted_before_resume = JournalTransaction.objects.filter(posting_key=f"transfer:{transfer.id}").count()
    assert posted_before_resume == (1 if "ledger.post_validated_transfer" in ran else 0)

    assert_resumes_and_posts_once(transfer, source, destination, before)


def test_a_dispatcher_killed_with_sigkill_mid_flight_loses_and_doubles_nothing(settings):
    from apps.transactions import services

    count = 30
    source, destination = open_account(balance=FUNDS), open_account()
    settings.FINTECH_EVENT_DISPATCH = "worker"
    before = OutboxEvent.objects.aggregate(last=Max("id"))["last"]
    transfers = [
        services.transfer_initiate(
            from_account_id=source.id,
            to_account_id=destination.id,
            amount=AMOUNT,
            currency="BRL",
            initiated_by="race-tester",
        )
        for _ in range(count)
    ]
    chain_records = InboxRecord.objects.filter(
        event_id__in=OutboxEvent.objects.filter(id__gt=before).values("event_id")
    )
    assert not chain_records.exists()

    # Small batches: one unit of work commits every two transfers, so the kill lands between commits.
    worker = start_manage(
        "dispatch_events",
        "--grace",
        "0",
        "--idle",
        "0.05",
        "--batch-size",
        "2",
        env={"FINTECH_EVENT_DISPATCH": "worker"},
    )
    try:
        # Kill it once it is well into the work (Django's start-up alone takes longer than a fixed 0.3 s).
        deadline = time.monotonic() + 60
        while chain_records.count() < count + 10:
            assert worker.poll() is None, worker.output()[-3000:]
            assert time.monotonic() < deadline, "the dispatcher made no progress"
            time.sleep(0.005)
        worker.kill()  # SIGKILL: no cleanup, the transaction in progress is simply gone
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
    assert worker.returncode == -9
    completed_at_kill = Transfer.objects.filter(status=Transfer.Status.COMPLETED).count()
    assert completed_at_kill < count, "the kill came too late to interrupt anything"

    call_command("dispatch_events", "--once", "--grace", "0", stdout=io.StringIO())

    transfers = [Transfer.objects.get(pk=t.pk) for t in transfers]
    assert_transfers_posted_once(transfers)
    assert JournalTransaction.objects.filter(kind="transfer").count() == count
    source_ledger, destination_ledger = ledger_of(source), ledger_of(destination)
    assert (source_ledger.balance, source_ledger.held) == (FUNDS - count * AMOUNT, 0)
    assert (destination_ledger.balance, destination_ledger.held) == (count * AMOUNT, 0)
    assert_every_event_handled_once()
    assert_books_reconcile()


# --- 4: one Idempotency-Key, many clients at once -----------------------------------------------


def test_one_idempotency_key_sent_by_ten_clients_at_once_moves_money_once(client_with):
    source, destination = open_account(balance=FUNDS), open_account()
    key = str(uuid.uuid4())
    # One caller (one token subject) retrying from ten connections at once.
    clients = staff_clients(client_with, 10)
    body = transfer_body(source, destination, AMOUNT)

    responses = post_all_at_once([Request(client, body, key) for client in clients])

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 202, 409}, statuses
    accepted = [r for r in responses if r.status_code in (201, 202)]
    originals = [r for r in accepted if r.get("Idempotent-Replayed") != "true"]
    assert len(originals) == 1, statuses
    original = originals[0]
    for response in accepted:
        # A replay is the original response: the same status and the same body.
        assert (response.status_code, response.json()) == (original.status_code, original.json())
    for response in responses:
        if response.status_code == 409:
            assert_problem(response, 409, "idempotency_request_in_progress")
            assert int(response["Retry-After"]) >= 1

    transfer = Transfer.objects.get()
    assert str(transfer.id) == originals[0].json()["id"]
    assert IdempotencyRecord.objects.count() == 1
    assert_transfers_posted_once([transfer])
    assert JournalTransaction.objects.filter(kind="transfer").count() == 1
    assert (ledger_of(source).balance, ledger_of(destination).balance) == (FUNDS - AMOUNT, AMOUNT)
    assert_books_reconcile()

    # Once the first has finished, the same key answers with the same response, not a new transfer.
    late = clients[0].post("/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert late.status_code == 201
    assert late["Idempotent-Replayed"] == "true"
    assert late.json()["id"] == str(transfer.id)
    assert late.json()["status"] == "completed"
    assert Transfer.objects.count() == 1


CRASH_AFTER_RESERVING = """
import json, os
from rest_framework.test import APIClient
from apps.transactions import services
from fintech.auth.tokens import issue_dev_token


def die(**kwargs):
    os._exit(17)  # the key is reserved (committed), the transfer never commits


services.transfer_initiate = die
client = APIClient()
client.credentials(HTTP_AUTHORIZATION="Bearer " + issue_dev_token(subject="staff-tester", scopes="transfers:write"))
client.post("/api/v1/transfers", json.loads({body!r}), format="json", HTTP_IDEMPOTENCY_KEY={key!r})
"""


@pytest.mark.postgres
def test_a_key_whose_request_died_is_taken_over_at_once(staff):
    """The process that reserved a key died mid-request: its database session ended, and with it
    the key's lock, so the client's retry goes through at once instead of waiting the lock out."""
    import json

    source, destination = open_account(balance=FUNDS), open_account()
    key, body = str(uuid.uuid4()), transfer_body(source, destination, AMOUNT)
    crash = run_python(textwrap.dedent(CRASH_AFTER_RESERVING.format(body=json.dumps(body), key=key)))
    assert crash.returncode == 17, crash.stderr[-3000:]
    assert IdempotencyRecord.objects.get(key=key).state == IdempotencyRecord.State.IN_PROGRESS
    assert not Transfer.objects.exists()

    retry = staff.post("/api/v1/transfers", body, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert retry.status_code == 201, retry.content
    assert retry.get("Idempotent-Replayed") is None
    assert_transfers_posted_once([Transfer.objects.get()])
