"""Bank state for the benchmark, made through the bank's own services (events, ledger rows and
all), so every figure runs against books that `manage.py reconcile` would accept."""

from __future__ import annotations

import uuid

from django.db import connection

from apps.accounts import services as accounts
from apps.customers import services as customers
from apps.fraud import services as fraud
from apps.ledger import services as ledger
from apps.ledger.models import JournalTransaction, LedgerAccount, Side
from apps.transactions import services as transactions
from tests.factories import new_cpf

CURRENCY = "BRL"
BENCH_ACTOR = "bench"


def screening_for_load() -> None:
    """The benchmark moves one centavo thousands of times a minute between the same accounts: the
    very pattern the velocity rule holds for review. Its count limit is lifted (the rule still
    runs, at the same cost), so that the figures are of transfers that complete."""
    fraud.rule_change(
        name="velocity", parameters={"max_count": 1_000_000_000}, changed_by=BENCH_ACTOR, changer_kind="system"
    )


def funded_accounts(count: int, *, balance: int, label: str) -> list[uuid.UUID]:
    """`count` active bank accounts of verified customers, each funded by a deposit."""
    screening_for_load()
    ids = []
    for index in range(count):
        customer = customers.customer_create(
            name=f"Bench {label} {index}", email=f"bench-{label}-{index}@example.com", document=new_cpf()
        )
        customers.customer_verify(customer_id=customer.id, reviewer=BENCH_ACTOR)
        account = accounts.account_open(customer_id=customer.id, currency=CURRENCY)
        if balance:
            transactions.deposit_make(
                account_id=account.id,
                amount=balance,
                currency=CURRENCY,
                reference=f"bench-{uuid.uuid4()}",
                made_by=BENCH_ACTOR,
            )
        ids.append(account.id)
    return ids


def ledger_accounts(count: int, *, balance: int) -> list[LedgerAccount]:
    """Customer ledger accounts (no bank account in front: the ledger section measures the
    ledger alone), funded against the settlement account in one posting."""
    opened = [ledger.customer_ledger_account_open(owner_ref=uuid.uuid4(), currency=CURRENCY) for _ in range(count)]
    settlement = ledger.system_account("settlement", CURRENCY)
    ledger.post_transactions(
        [
            ledger.JournalRequest(
                posting_key=f"bench-fund:{uuid.uuid4()}",
                kind=JournalTransaction.Kind.DEPOSIT,
                reference="bench",
                postings=[
                    ledger.Posting(account_id=settlement.id, side=Side.DEBIT, amount=balance, currency=CURRENCY),
                    ledger.Posting(account_id=account.id, side=Side.CREDIT, amount=balance, currency=CURRENCY),
                ],
            )
            for account in opened
        ]
    )
    return opened


def fresh_spine() -> None:
    """Empty the outbox and the inbox of the benchmark database, so that every run (and every
    section) writes its events into tables of the same size. The ledger is append-only and
    keeps growing; the outbox is a queue that production keeps short."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE outbox_outboxevent, outbox_inboxrecord, outbox_deliveryattempt")
