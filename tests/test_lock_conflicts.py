"""A request that loses a deadlock is run again by the bank, not answered 503.

Requests lock the ledger accounts they touch in one statement, in id order; a worker's unit of
work may lock them in several (the dispatcher posts the transfers of one batch in waves, as the
choreography reaches them). So a worker can hold a higher account while it asks for a lower one
that a request holds, while the request waits for the higher one: PostgreSQL breaks the cycle by
aborting one transaction. When it aborts the request's, nothing of it stayed: the bank runs it
again once the worker is done, and the client gets its answer. (`make chaos` met this as a 503
"database unavailable" under load: docs/reliability.md.)

Each test plays the worker on a thread of its own connection: it locks the higher account, waits
until the request waits for it, then asks for the lower one, which the request holds. The request
started waiting first, so its deadlock check runs first and it is the one aborted.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from django.db import connections, transaction

from apps.ledger.models import LedgerAccount
from apps.transactions.models import Deposit, Transfer
from tests.factories import open_account

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

FUNDS = 100_000
HOLD_AFTER_DEADLOCK_SECONDS = 1.0

REQUEST_WAITS_ON_LEDGER = """
SELECT count(*) FROM pg_stat_activity
 WHERE pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE '%%ledger_ledgeraccount%%'
   AND datname = current_database()
"""


class Worker(threading.Thread):
    """Locks `higher`, then `lower` once a request waits for `higher`; holds both a moment, commits."""

    def __init__(self, lower: uuid.UUID, higher: uuid.UUID) -> None:
        super().__init__(daemon=True)
        self.lower, self.higher = lower, higher
        self.holding = threading.Event()
        self.error: BaseException | None = None
        self.deadlocked = False

    def run(self) -> None:
        try:
            with transaction.atomic():
                LedgerAccount.objects.select_for_update().get(pk=self.higher)
                self.holding.set()
                with connections["default"].cursor() as cursor:
                    deadline = time.monotonic() + 30
                    while True:
                        # pg_stat_activity is read once per transaction unless its snapshot is cleared.
                        cursor.execute("SELECT pg_stat_clear_snapshot()")
                        cursor.execute(REQUEST_WAITS_ON_LEDGER)
                        if cursor.fetchone()[0]:
                            break
                        assert time.monotonic() < deadline, "the request never waited for the worker's lock"
                        time.sleep(0.02)
                LedgerAccount.objects.select_for_update().get(pk=self.lower)  # the request holds it: a cycle
                time.sleep(HOLD_AFTER_DEADLOCK_SECONDS)
        except BaseException as error:
            self.error = error
        finally:
            connections.close_all()


@pytest.fixture
def worker_between() -> Iterator[type[Worker]]:
    started: list[Worker] = []

    class Started(Worker):
        def __init__(self, lower: uuid.UUID, higher: uuid.UUID) -> None:
            super().__init__(lower, higher)
            started.append(self)
            self.start()
            assert self.holding.wait(30)

    yield Started
    for worker in started:
        worker.join(timeout=60)
        assert not worker.is_alive()
        assert worker.error is None, repr(worker.error)  # the worker was never the one aborted


def ledger_ids(*accounts) -> list[uuid.UUID]:
    return sorted(LedgerAccount.objects.get(owner_ref=account.id).pk for account in accounts)


def test_a_batch_aborted_by_a_deadlock_with_a_worker_is_run_again_and_answered(staff, worker_between):
    sources, destination = [open_account(balance=FUNDS), open_account(balance=FUNDS)], open_account()
    lower, higher = ledger_ids(*sources)
    items = [
        {"id": str(uuid.uuid4()), "from_account_id": str(source.id), "to_account_id": str(destination.id)}
        | {"amount": 1_000, "currency": "BRL"}
        for source in sources
    ]
    worker_between(lower, higher)

    response = staff.post("/api/v1/transfers/batch", {"transfers": items}, format="json")

    assert response.status_code == 207, response.content
    assert [result["status"] for result in response.json()["results"]] in ([201, 201], [202, 202])
    assert Transfer.objects.count() == 2


def test_a_deposit_aborted_by_a_deadlock_with_a_worker_is_run_again_and_answered(staff, worker_between):
    account = open_account(balance=100)  # its deposit opens the settlement account too
    settlement = LedgerAccount.objects.get(code="system:settlement:BRL")
    lower, higher = sorted([LedgerAccount.objects.get(owner_ref=account.id).pk, settlement.pk])
    body = {"account_id": str(account.id), "amount": 4_200, "currency": "BRL", "reference": f"cash-{uuid.uuid4()}"}
    worker_between(lower, higher)

    response = staff.post("/api/v1/deposits", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()))

    assert response.status_code == 201, response.content
    assert Deposit.objects.filter(reference=body["reference"]).count() == 1
    assert LedgerAccount.objects.get(owner_ref=account.id).balance == 4_300
