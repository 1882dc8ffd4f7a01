"""What a transfer costs the database: the statements and commits of one transfer through the
services, with the whole choreography (hold, fraud screening, posting, balances, completion, events).

A measurement pinned as a ceiling, not a timing: every handler a new context adds to the
transfer's events shows up here first (docs/benchmarks.md has the figures and how they fell).
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.transactions import services
from apps.transactions.models import Transfer
from outbox.models import OutboxEvent
from tests.factories import open_account

pytestmark = pytest.mark.django_db(transaction=True)

# PostgreSQL places a hold in one statement; SQLite needs two. The fraud screening (apps/fraud) raised
# the ceiling from 20 and 21: it costs three statements on PostgreSQL (the source account's row locked
# so that screenings of one account follow each other, the facts of the batch, the screening written)
# and two on SQLite, whose write transactions already follow each other; the transactions step it
# feeds is the old screening step's three statements, moved.
MAX_STATEMENTS = {"postgresql": 23, "sqlite": 23}


def transfer(source, destination):
    return services.transfer_initiate(
        from_account_id=source.id, to_account_id=destination.id, amount=100, currency="BRL", initiated_by="cost"
    )


def test_a_transfer_through_the_services_costs_at_most_23_statements_and_one_commit():
    source, destination = open_account(balance=100_000), open_account()
    transfer(source, destination)  # the first one warms caches (content types, system accounts)

    with CaptureQueriesContext(connection) as queries:
        done = transfer(source, destination)

    statements = [query["sql"] for query in queries.captured_queries]
    listing = "\n".join(statement[:120] for statement in statements)
    assert Transfer.objects.get(pk=done.id).status == Transfer.Status.COMPLETED
    commits = [s for s in statements if s.startswith("COMMIT")]
    assert len(commits) == 1, listing
    assert len(statements) <= MAX_STATEMENTS[connection.vendor], listing
    # Nothing of it is left for a dispatcher: every event was delivered in the unit of work.
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    # initiated, fraud.screened, validated, completed
    assert OutboxEvent.objects.filter(aggregate_id=str(done.id)).count() == 4
