"""What a transfer costs the database: the statements and commits of one transfer through the
services, with the whole choreography (hold, fraud screening, posting, balances, completion, events).

A measurement pinned as a ceiling, not a timing: every step a new context adds to the
transfer's events shows up here first (docs/benchmarks.md has the figures and how they fell).
Reactions (notifications, analytics) run after the transfer's commit, in transactions of their
own, and must add nothing to its unit of work.
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

# A transfer's unit of work, fraud screening included (measured: 19 on PostgreSQL, which places a
# hold in one statement and writes the events and inbox records in one; SQLite needs a statement
# more for each, and no lock statement for the screening: its write transactions take turns).
MAX_STATEMENTS = {"postgresql": 20, "sqlite": 21}


def transfer(source, destination):
    return services.transfer_initiate(
        from_account_id=source.id, to_account_id=destination.id, amount=100, currency="BRL", initiated_by="cost"
    )


def test_a_transfer_through_the_services_costs_at_most_20_statements_and_one_commit():
    source, destination = open_account(balance=100_000), open_account()
    transfer(source, destination)  # the first one warms caches (content types, system accounts)

    with CaptureQueriesContext(connection) as queries:
        done = transfer(source, destination)

    captured = [query["sql"] for query in queries.captured_queries]
    # The transfer's own unit of work ends at its commit; what follows are the reactions.
    first_commit = next(index for index, statement in enumerate(captured) if statement.startswith("COMMIT"))
    statements, reactions = captured[: first_commit + 1], captured[first_commit + 1 :]
    listing = "\n".join(statement[:120] for statement in statements)
    assert Transfer.objects.get(pk=done.id).status == Transfer.Status.COMPLETED
    assert len(statements) <= MAX_STATEMENTS[connection.vendor], listing
    assert [s for s in statements if s.startswith("COMMIT")] == ["COMMIT"], listing
    # With the reactions' own transactions, a transfer costs at most three commits in all.
    assert len([s for s in captured if s.startswith("COMMIT")]) <= 3, "\n".join(s[:120] for s in captured)
    # The reactions touch no table of the transfer's contexts.
    touched = ("transactions_", "ledger_", 'accounts_bankaccount" SET', 'UPDATE "accounts_')
    assert not [s for s in reactions if s.startswith(("INSERT", "UPDATE", "DELETE")) and any(t in s for t in touched)]
    # Nothing of it is left for a dispatcher: the steps ran in the unit, the reactions right after.
    assert not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists()
    # initiated, fraud.screened, validated, completed
    assert OutboxEvent.objects.filter(aggregate_id=str(done.id)).count() == 4
