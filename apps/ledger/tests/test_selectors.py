from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection

from apps.ledger import selectors, services
from apps.ledger.models import JournalEntry
from apps.ledger.services import JournalRequest, Posting

pytestmark = pytest.mark.django_db


def customer_account(funds: int = 0):
    owner = uuid.uuid4()
    account = services.customer_ledger_account_open(owner_ref=owner, currency="BRL")
    if funds:
        services.deposit_post(owner_ref=owner, amount=funds, currency="BRL", posting_key=f"d-{owner}", reference="r")
    return account


def test_a_statement_page_is_the_accounts_entries_newest_first_before_the_cursor():
    mine, other = customer_account(10_000), customer_account(10_000)
    for n in range(6):
        source, destination = (mine, other) if n % 2 else (other, mine)
        services.post_transaction(
            JournalRequest(
                posting_key=f"t-{n}",
                kind="transfer",
                postings=[
                    Posting(account_id=source.id, side="debit", amount=10 + n, currency="BRL"),
                    Posting(account_id=destination.id, side="credit", amount=10 + n, currency="BRL"),
                ],
            )
        )
    everything = list(JournalEntry.objects.filter(account_id=mine.id).order_by("-id"))
    first = selectors.statement_entries(ledger_account_id=mine.id, limit=3)
    assert [e.id for e in first] == [e.id for e in everything[:3]]
    rest = selectors.statement_entries(ledger_account_id=mine.id, before_id=first[-1].id, limit=10)
    assert [e.id for e in rest] == [e.id for e in everything[3:]]


BULK_SQL = """
INSERT INTO ledger_journaltransaction (id, posting_key, kind, reference, description, posted_at)
SELECT gen_random_uuid(), %(prefix)s || g, 'adjustment', '', '', now() FROM generate_series(1, %(count)s) g;
INSERT INTO ledger_journalentry (entry_id, transaction_id, account_id, side, amount, currency, balance_after, posted_at)
SELECT gen_random_uuid(), t.id, CASE WHEN s.side = 'debit' THEN %(debit)s::uuid ELSE %(credit)s::uuid END,
       s.side, 1, 'BRL', 0, now()
  FROM ledger_journaltransaction t CROSS JOIN (VALUES ('debit'), ('credit')) AS s(side)
 WHERE t.posting_key LIKE %(prefix)s || '%%';
"""


@pytest.mark.postgres
@pytest.mark.corrupts_books  # entries written straight into the journal, without their balances
def test_a_statement_page_is_read_through_the_accounts_index_whatever_the_statistics():
    """With `account_id = X ORDER BY id DESC` the planner walks the whole journal's primary key
    backwards when it believes the account's entries are common among the newest: measured, 11 s
    for one page of an account whose 1,000,000 entries were older than 3 million others. The
    selector's query can be ordered only by the account's index, whatever the statistics say."""
    old, other, newer, newest = (customer_account() for _ in range(4))
    with connection.cursor() as cursor:
        # The account's entries first (the oldest ids), then as many of other accounts after them.
        cursor.execute(BULK_SQL, {"prefix": "old-", "count": 20_000, "debit": old.id, "credit": other.id})
        cursor.execute(BULK_SQL, {"prefix": "new-", "count": 20_000, "debit": newer.id, "credit": newest.id})
        cursor.execute("ANALYZE ledger_journalentry")

        def plan(sql: str, params: Any) -> str:
            cursor.execute("EXPLAIN " + sql, params)
            return "\n".join(row[0] for row in cursor.fetchall())

        # The trap the selector avoids: the plain query goes through the primary key.
        naive = plan("SELECT * FROM ledger_journalentry WHERE account_id = %s ORDER BY id DESC LIMIT 50", [old.id])
        assert "ledger_journalentry_pkey" in naive, naive
        query = selectors.statement_query(ledger_account_id=old.id, limit=50)
        sql, params = query.query.sql_with_params()
        chosen = plan(sql, params)
    assert "entries_by_account" in chosen, chosen
    assert "ledger_journalentry_pkey" not in chosen, chosen
    assert len(selectors.statement_entries(ledger_account_id=old.id, limit=50)) == 50
