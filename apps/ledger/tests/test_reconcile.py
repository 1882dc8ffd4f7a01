"""`manage.py reconcile`: silent on books that are right, loud and specific on books that are not.

The corrupted databases are made on purpose, behind the services' back, the way a bad script
or a manual fix would; the database's own guards are checked where they should refuse first.
"""

from __future__ import annotations

import io
import math
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, InternalError, connection, transaction
from django.db.models import F

from apps.ledger import services
from apps.ledger.models import Hold, JournalEntry, JournalTransaction, LedgerAccount, Side
from apps.ledger.reconciliation import reconcile_ledger
from outbox import dispatcher
from outbox.models import DeadLetter, OutboxEvent
from tests.factories import deposit, open_account
from tests.spine.support import manage

pytestmark = pytest.mark.django_db

# What a database trigger's refusal becomes in Django: IntegrityError for the codes the guards
# raise (SQLite's RAISE(ABORT), PostgreSQL's integrity and check violations), InternalError
# for any other code a PL/pgSQL trigger might raise.
DATABASE_REFUSALS = (IntegrityError, InternalError)


def reconcile(*args: str) -> str:
    out = io.StringIO()
    call_command("reconcile", "--quiet", *args, stdout=out)
    return out.getvalue()


def reconcile_fails(*args: str) -> str:
    """Run the command on broken books: it must raise CommandError; returns the report it printed."""
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"^the books do not reconcile: \d+ problem\(s\)$"):
        call_command("reconcile", "--quiet", *args, stdout=out)
    report = out.getvalue()
    assert "the books reconcile" not in report
    return report


def summary(report) -> tuple[object, ...]:
    return (
        report.ok,
        report.problems,
        report.totals_by_currency,
        report.journal_transactions_checked,
        report.entries_checked,
        report.accounts_checked,
    )


# --- a realistic day, through the API and the choreography ---------------------------------------


def dispatch_everything() -> None:
    for _ in range(20):
        if not OutboxEvent.objects.filter(dispatched_at__isnull=True).exists():
            return
        dispatcher.sweep(grace_seconds=0)
    pytest.fail("events were still undispatched after 20 sweeps")


@pytest.mark.django_db(transaction=True)
@pytest.mark.corrupts_books  # at its end, on purpose
def test_the_books_reconcile_after_deposits_transfers_a_failure_and_a_reversal(staff, settings):
    alice, bob, carol = open_account(balance=100_000), open_account(balance=50_000), open_account()
    deposit(carol, 7_000)

    def send(source, destination, amount: int) -> dict[str, Any]:
        request = {"from_account_id": str(source.id), "to_account_id": str(destination.id), "amount": amount}
        response = staff.post(
            "/api/v1/transfers", {**request, "currency": "BRL"}, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
        )
        assert response.status_code in (201, 202), response.content  # 202: left to the worker
        transfer: dict[str, Any] = response.json()
        return transfer

    completed = [send(alice, bob, 30_000), send(bob, carol, 12_345), send(carol, alice, 1)]
    assert [t["status"] for t in completed] == ["completed"] * 3
    # A transfer that fails in flight: its destination is blocked before the worker screens it.
    settings.FINTECH_EVENT_DISPATCH = "worker"
    doomed = send(alice, carol, 5_000)
    assert doomed["status"] == "initiated"
    assert staff.post(f"/api/v1/accounts/{carol.id}/block", {"reason": "court order"}, format="json").status_code == 200
    dispatch_everything()
    settings.FINTECH_EVENT_DISPATCH = "inline"
    assert staff.post(f"/api/v1/accounts/{carol.id}/unblock", format="json").status_code == 200
    failed = staff.get(f"/api/v1/transfers/{doomed['id']}").json()
    assert (failed["status"], failed["failure_code"]) == ("failed", "account_blocked")
    assert Hold.objects.get(hold_key=f"transfer:{doomed['id']}").status == Hold.Status.VOIDED
    # bob -> carol went to the wrong account: the back office reverses it.
    reversal = services.journal_reverse(transaction_id=completed[1]["journal_transaction_id"], reason="wrong account")
    assert not DeadLetter.objects.exists()

    ledger = {a.owner_ref: a for a in LedgerAccount.objects.filter(owner_ref__isnull=False)}
    assert (ledger[alice.id].balance, ledger[alice.id].held) == (70_001, 0)
    assert (ledger[bob.id].balance, ledger[bob.id].held) == (80_000, 0)
    assert (ledger[carol.id].balance, ledger[carol.id].held) == (6_999, 0)

    out = reconcile()
    # 3 deposits, 3 transfers and 1 reversal, two entries each.
    assert "checked 7 journal transactions, 14 entries," in out
    assert "BRL: debits - credits = 0" in out
    assert out.rstrip().endswith("the books reconcile")

    # The same books, broken, in a real process: exit status 1, the report on stdout, the
    # progress and the error on stderr.
    LedgerAccount.objects.filter(owner_ref=bob.id).update(balance=F("balance") - 80_000)
    result = manage("reconcile", "--chunk-size", "3")
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert f"account customer:{bob.id}: cached balance 0 but its entries sum to 80000" in result.stdout
    assert "the books do not balance in BRL" in result.stdout
    assert "CommandError: the books do not reconcile: 2 problem(s)" in result.stderr
    assert "entries [" in result.stderr
    assert "14/14" in result.stderr
    assert "entries [" not in result.stdout
    assert str(reversal.id) not in result.stdout  # the reversal itself is fine


# --- books corrupted on purpose -------------------------------------------------------------------


@dataclass
class Books:
    alice: LedgerAccount
    bob: LedgerAccount
    transfer: JournalTransaction


def owner_of(account: LedgerAccount) -> uuid.UUID:
    """The bank account a customer's ledger account backs."""
    assert account.owner_ref is not None
    return account.owner_ref


def customer(balance: int) -> LedgerAccount:
    owner = uuid.uuid4()
    account = services.customer_ledger_account_open(owner_ref=owner, currency="BRL")
    services.deposit_post(
        owner_ref=owner, amount=balance, currency="BRL", posting_key=f"deposit:{uuid.uuid4()}", reference="seed"
    )
    return LedgerAccount.objects.get(pk=account.pk)


@pytest.fixture
def books() -> Books:
    """Deposits, a posted transfer, a transfer on hold, a voided one and a reversal."""
    alice, bob = customer(10_000), customer(2_000)
    services.hold_place(owner_ref=owner_of(alice), amount=3_000, currency="BRL", hold_key="transfer:posted")
    transfer = services.hold_post(hold_key="transfer:posted", to_owner_ref=owner_of(bob), kind="transfer")
    services.hold_place(owner_ref=owner_of(bob), amount=500, currency="BRL", hold_key="transfer:pending")
    services.hold_place(owner_ref=owner_of(alice), amount=700, currency="BRL", hold_key="transfer:voided")
    services.hold_void(hold_key="transfer:voided")
    mistake = services.post_transaction(
        services.JournalRequest(
            posting_key="transfer:mistake",
            kind="transfer",
            postings=[
                services.Posting(account_id=bob.id, side=Side.DEBIT, amount=100, currency="BRL"),
                services.Posting(account_id=alice.id, side=Side.CREDIT, amount=100, currency="BRL"),
            ],
        )
    )
    services.journal_reverse(transaction_id=mistake.id, reason="mistake")
    alice, bob = LedgerAccount.objects.get(pk=alice.pk), LedgerAccount.objects.get(pk=bob.pk)
    assert (alice.balance, alice.held, bob.balance, bob.held) == (7_000, 0, 5_000, 500)
    return Books(alice=alice, bob=bob, transfer=transfer)


def rogue_journal(key: str, *legs: tuple[LedgerAccount, str, int, int]) -> JournalTransaction:
    """A journal transaction written straight to the tables, all its entries in one statement (the
    PostgreSQL guard checks each insert statement): legs of (account, side, amount, balance_after)."""
    rogue = JournalTransaction.objects.create(posting_key=key, kind=JournalTransaction.Kind.ADJUSTMENT)
    JournalEntry.objects.bulk_create(
        JournalEntry(transaction=rogue, account=account, side=side, amount=amount, currency="BRL", balance_after=after)
        for account, side, amount, after in legs
    )
    return rogue


def test_the_fixture_books_reconcile(books):
    out = reconcile()
    assert "checked 5 journal transactions, 10 entries" in out
    assert "the books reconcile" in out


@pytest.mark.corrupts_books
def test_a_cached_balance_changed_behind_the_ledgers_back_is_reported(books):
    LedgerAccount.objects.filter(pk=books.alice.pk).update(balance=F("balance") + 1)
    report = reconcile_fails()
    assert f"account {books.alice.code}: cached balance 7001 but its entries sum to 7000" in report
    assert "the books do not balance in BRL" in report
    assert "BRL: debits - credits = -1" in report


@pytest.mark.corrupts_books
def test_a_held_amount_changed_behind_the_ledgers_back_is_reported(books):
    LedgerAccount.objects.filter(pk=books.bob.pk).update(held=F("held") + 250)
    report = reconcile_fails()
    assert f"account {books.bob.code}: held 750 but its active holds sum to 500" in report
    assert "cached balance" not in report  # only what is wrong is reported
    assert "BRL: debits - credits = 0" in report


@pytest.mark.corrupts_books  # on SQLite; PostgreSQL refuses the damage
def test_an_unbalanced_journal_transaction_is_refused_by_postgresql_and_reported_on_sqlite(books):
    alice = books.alice

    def insert_one_legged_journal() -> JournalTransaction:
        return rogue_journal("adjustment:rogue", (alice, Side.CREDIT, 100, 7_100))

    if connection.vendor == "postgresql":
        with pytest.raises(DATABASE_REFUSALS, match="does not balance in BRL"), transaction.atomic():
            insert_one_legged_journal()
        assert not JournalTransaction.objects.filter(posting_key="adjustment:rogue").exists()
        assert "the books reconcile" in reconcile()
        return
    rogue = insert_one_legged_journal()
    report = reconcile_fails()
    assert f"journal transaction {rogue.id} does not balance in BRL: net -100" in report
    assert f"account {alice.code}: cached balance 7000 but its entries sum to 7100" in report


@pytest.mark.corrupts_books
def test_a_balanced_journal_with_a_broken_running_balance_is_reported(books):
    """The database guard checks only that entries balance: reconcile catches the rest, and says
    what the entries really sum to."""
    alice, bob = books.alice, books.bob
    rogue = rogue_journal("adjustment:sneaky", (bob, Side.DEBIT, 40, 4_960), (alice, Side.CREDIT, 40, 9))
    alice_entry = JournalEntry.objects.get(transaction=rogue, account=alice)

    report = reconcile_fails()
    assert f"entry {alice_entry.id} on {alice.code}: balance_after 9 but the entries before it sum to 7040" in report
    assert f"account {bob.code}: cached balance 5000 but its entries sum to 4960" in report
    assert f"account {alice.code}: cached balance 7000 but its entries sum to 7040" in report
    assert f"journal transaction {rogue.id}" not in report  # it balances

    # Cached balances brought in line with the entries: only the broken running balance is left.
    LedgerAccount.objects.filter(pk=bob.pk).update(balance=4_960)
    LedgerAccount.objects.filter(pk=alice.pk).update(balance=7_040)
    report = reconcile_fails()
    assert "cached balance" not in report
    assert f"entry {alice_entry.id} on {alice.code}: balance_after 9" in report
    assert "the books do not reconcile" not in report  # that is the CommandError's, not the report's


def test_posted_journal_rows_cannot_be_updated(books):
    entry = JournalEntry.objects.filter(transaction=books.transfer).order_by("id")[0]
    with pytest.raises(DATABASE_REFUSALS, match="immutable"), transaction.atomic():
        JournalEntry.objects.filter(pk=entry.pk).update(amount=F("amount") + 1)
    with pytest.raises(DATABASE_REFUSALS, match="immutable"), transaction.atomic():
        JournalEntry.objects.filter(pk=entry.pk).update(balance_after=0)
    with pytest.raises(DATABASE_REFUSALS, match="immutable"), transaction.atomic():
        JournalTransaction.objects.filter(pk=books.transfer.pk).update(description="edited")
    if connection.vendor == "postgresql":  # SQLite lets the test framework empty the tables with DELETE
        with pytest.raises(DATABASE_REFUSALS, match="immutable"), transaction.atomic():
            JournalEntry.objects.filter(pk=entry.pk).delete()
    unchanged = JournalEntry.objects.get(pk=entry.pk)
    assert (unchanged.amount, unchanged.balance_after) == (entry.amount, entry.balance_after)
    assert "the books reconcile" in reconcile()


# --- reading in chunks ----------------------------------------------------------------------------


@pytest.mark.corrupts_books
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7])
def test_small_chunks_give_the_same_report_as_the_default(books, chunk_size):
    assert summary(reconcile_ledger(chunk_size=chunk_size)) == summary(reconcile_ledger())
    assert reconcile_ledger(chunk_size=chunk_size).ok
    assert reconcile("--chunk-size", str(chunk_size)) == reconcile()

    # Broken books: the same problems, in the same order, whatever the chunk size.
    LedgerAccount.objects.filter(pk=books.alice.pk).update(balance=F("balance") + 5, held=F("held") + 5)
    rogue_journal("adjustment:rogue", (books.bob, Side.DEBIT, 3, 1), (books.alice, Side.CREDIT, 3, 7_003))
    chunked, whole = reconcile_ledger(chunk_size=chunk_size), reconcile_ledger()
    bob_entry = JournalEntry.objects.get(transaction__posting_key="adjustment:rogue", account=books.bob)
    alice, bob = books.alice.code, books.bob.code
    assert sorted(whole.problems) == sorted(
        [
            f"entry {bob_entry.id} on {bob}: balance_after 1 but the entries before it sum to 4997",
            f"account {alice}: cached balance 7005 but its entries sum to 7003",
            f"account {alice}: held 5 but its active holds sum to 0",
            f"account {bob}: cached balance 5000 but its entries sum to 4997",
            "the books do not balance in BRL: debits exceed credits by -5",
        ]
    )
    assert summary(chunked) == summary(whole)
    assert reconcile_fails("--chunk-size", str(chunk_size)) == reconcile_fails()


def test_progress_goes_to_stderr_and_the_verdict_to_stdout(books, capsys):
    total = JournalEntry.objects.count()
    out = io.StringIO()
    call_command("reconcile", "--chunk-size", "3", stdout=out)
    err = capsys.readouterr().err
    assert err.count("\rentries [") == math.ceil(total / 3)  # one update per chunk
    assert f"] {total}/{total}\n" in err
    assert "entries [" not in out.getvalue()
    assert "the books reconcile" in out.getvalue()
    assert "the books reconcile" not in err

    call_command("reconcile", "--quiet", stdout=io.StringIO())
    assert capsys.readouterr().err == ""
