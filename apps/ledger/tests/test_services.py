"""The ledger's commands: postings, holds and reversals, and the refusals that write nothing."""

from __future__ import annotations

import random
import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from apps.ledger import services
from apps.ledger.errors import (
    AlreadyReversed,
    CurrencyMismatch,
    HoldNotActive,
    HoldNotFound,
    InsufficientFunds,
    InvalidPosting,
    LedgerAccountNotFound,
    UnbalancedTransaction,
)
from apps.ledger.models import Hold, JournalEntry, JournalTransaction, LedgerAccount, Side
from apps.ledger.reconciliation import reconcile_ledger
from apps.ledger.services import JournalRequest, Posting
from outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

DEBIT, CREDIT = Side.DEBIT, Side.CREDIT


# --- helpers ------------------------------------------------------------------------------------


def customer_account(balance: int = 0, currency: str = "BRL") -> LedgerAccount:
    """A customer's ledger account (a liability that may not go negative), funded by a deposit."""
    owner = uuid.uuid4()
    account = services.customer_ledger_account_open(owner_ref=owner, currency=currency)
    if balance:
        services.deposit_post(
            owner_ref=owner, amount=balance, currency=currency, posting_key=f"deposit:{uuid.uuid4()}", reference="seed"
        )
    account.refresh_from_db()
    return account


def owner_of(account: LedgerAccount) -> uuid.UUID:
    """The bank account a customer's ledger account backs."""
    assert account.owner_ref is not None
    return account.owner_ref


def settlement(currency: str = "BRL") -> LedgerAccount:
    return LedgerAccount.objects.get(code=services.system_account_code("settlement", currency))


def transfer_request(source: LedgerAccount, destination: LedgerAccount, amount: int, key: str | None = None):
    return JournalRequest(
        posting_key=key or f"transfer:{uuid.uuid4()}",
        kind=JournalTransaction.Kind.TRANSFER,
        postings=[
            Posting(account_id=source.id, side=DEBIT, amount=amount, currency=source.currency),
            Posting(account_id=destination.id, side=CREDIT, amount=amount, currency=destination.currency),
        ],
    )


def balances(*accounts: LedgerAccount) -> list[tuple[int, int]]:
    return [(a.balance, a.held) for a in (LedgerAccount.objects.get(pk=a.pk) for a in accounts)]


def snapshot() -> tuple[object, ...]:
    """Everything a refused command could have written."""
    return (
        JournalTransaction.objects.count(),
        JournalEntry.objects.count(),
        Hold.objects.count(),
        OutboxEvent.objects.count(),
        sorted(LedgerAccount.objects.values_list("code", "balance", "held", "updated_at")),
        sorted(Hold.objects.values_list("hold_key", "status")),
    )


# --- system accounts ----------------------------------------------------------------------------


def test_the_migrations_open_the_banks_system_accounts_in_every_currency():
    for currency in ("BRL", "USD", "EUR"):
        for purpose, (account_type, normal_side, allow_negative) in services.SYSTEM_PURPOSES.items():
            account = LedgerAccount.objects.get(code=f"system:{purpose}:{currency}")
            assert (account.account_type, account.normal_side, account.currency) == (
                account_type,
                normal_side,
                currency,
            )
            assert account.is_system
            assert account.allow_negative is allow_negative
            assert account.owner_ref is None
    assert LedgerAccount.objects.filter(is_system=True).count() == 12
    # Asking for one by purpose finds the migration's row rather than opening a second one.
    assert services.system_account("settlement", "USD") == LedgerAccount.objects.get(code="system:settlement:USD")
    assert LedgerAccount.objects.filter(is_system=True).count() == 12


# --- posting ------------------------------------------------------------------------------------


def test_a_balanced_transaction_writes_its_entries_balances_and_one_event():
    source, destination = customer_account(1_000), customer_account(50)
    journal = services.post_transaction(transfer_request(source, destination, 300, key="transfer:t-1"))

    assert journal.posting_key == "transfer:t-1"
    entries = list(journal.entries.order_by("id").values_list("account_id", "side", "amount", "balance_after"))
    assert entries == [(source.id, DEBIT, 300, 700), (destination.id, CREDIT, 300, 350)]
    assert balances(source, destination) == [(700, 0), (350, 0)]
    event = OutboxEvent.objects.get(event_type="ledger.entry_written", aggregate_id=str(journal.id))
    assert event.envelope["data"]["posting_key"] == "transfer:t-1"
    assert [e["account_id"] for e in event.envelope["data"]["entries"]] == [
        str(source.owner_ref),
        str(destination.owner_ref),
    ]
    assert reconcile_ledger().ok


def test_a_deposit_debits_settlement_and_credits_the_customer():
    account = customer_account()
    before = settlement().balance
    services.deposit_post(owner_ref=owner_of(account), amount=250, currency="BRL", posting_key="d-1", reference="r")
    assert balances(account) == [(250, 0)]
    assert settlement().balance == before + 250  # an asset: debits raise it


def test_a_batch_posts_in_a_bounded_number_of_statements(django_assert_max_num_queries):
    rng = random.Random(7)
    accounts = [customer_account(1_000_000) for _ in range(10)]

    def batch(size: int) -> list[JournalRequest]:
        requests = []
        for _ in range(size):
            source, destination = rng.sample(accounts, 2)
            requests.append(transfer_request(source, destination, rng.randint(1, 1_000)))
        return requests

    def statements(requests: list[JournalRequest]) -> int:
        with CaptureQueriesContext(connection) as queries:
            posted = services.post_transactions(requests)
        assert len(posted) == len(requests)
        outbox = [q for q in queries.captured_queries if "outbox_outboxevent" in q["sql"]]
        assert 1 <= len(outbox) <= 3  # every journal transaction's event, in one INSERT (SQLite splits it)
        return len(queries.captured_queries)

    small, large = statements(batch(20)), statements(batch(200))
    assert small <= 12
    assert large <= 20  # SQLite splits a bulk insert at 999 parameters; PostgreSQL needs no split
    if connection.vendor == "postgresql":
        assert large == small

    requests = batch(200)
    with django_assert_max_num_queries(20):
        services.post_transactions(requests)

    assert JournalTransaction.objects.filter(kind=JournalTransaction.Kind.TRANSFER).count() == 420
    assert JournalEntry.objects.filter(transaction__kind=JournalTransaction.Kind.TRANSFER).count() == 840
    assert sum(a.balance for a in LedgerAccount.objects.filter(pk__in=[a.pk for a in accounts])) == 10_000_000
    report = reconcile_ledger()
    assert report.ok, report.problems


def test_a_batch_that_moves_one_account_several_times_chains_its_balances():
    source, destination = customer_account(100), customer_account()
    services.post_transactions([transfer_request(source, destination, amount) for amount in (10, 20, 30)])
    after = list(
        JournalEntry.objects.filter(account=source).order_by("id").values_list("amount", "side", "balance_after")
    )
    assert after == [(100, CREDIT, 100), (10, DEBIT, 90), (20, DEBIT, 70), (30, DEBIT, 40)]
    assert balances(source, destination) == [(40, 0), (60, 0)]
    assert reconcile_ledger().ok


def test_one_bad_request_refuses_the_whole_batch():
    rich, poor, other = customer_account(1_000), customer_account(10), customer_account()
    before = snapshot()
    with pytest.raises(InsufficientFunds):
        services.post_transactions([transfer_request(rich, other, 500), transfer_request(poor, other, 11)])
    assert snapshot() == before


def test_an_unbalanced_transaction_is_refused_and_writes_nothing():
    source, destination = customer_account(1_000), customer_account()
    before = snapshot()
    request = JournalRequest(
        posting_key="transfer:lopsided",
        kind=JournalTransaction.Kind.TRANSFER,
        postings=[
            Posting(account_id=source.id, side=DEBIT, amount=300, currency="BRL"),
            Posting(account_id=destination.id, side=CREDIT, amount=299, currency="BRL"),
        ],
    )
    with pytest.raises(UnbalancedTransaction) as refusal:
        services.post_transaction(request)
    assert refusal.value.code == "unbalanced_transaction"
    assert snapshot() == before


def test_balancing_across_currencies_is_not_balancing():
    brl, usd = settlement("BRL"), settlement("USD")
    request = JournalRequest(
        posting_key="fx:cheat",
        kind=JournalTransaction.Kind.ADJUSTMENT,
        postings=[
            Posting(account_id=brl.id, side=DEBIT, amount=100, currency="BRL"),
            Posting(account_id=usd.id, side=CREDIT, amount=100, currency="USD"),
        ],
    )
    before = snapshot()
    with pytest.raises(UnbalancedTransaction):
        services.post_transaction(request)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("legs", "kind"),
    [
        pytest.param([(DEBIT, 100, "BRL")], "transfer", id="one-leg"),
        pytest.param([(DEBIT, 0, "BRL"), (CREDIT, 0, "BRL")], "transfer", id="zero"),
        pytest.param([(DEBIT, -5, "BRL"), (CREDIT, -5, "BRL")], "transfer", id="negative"),
        pytest.param([(DEBIT, 1.5, "BRL"), (CREDIT, 1.5, "BRL")], "transfer", id="fraction"),
        pytest.param([(DEBIT, True, "BRL"), (CREDIT, True, "BRL")], "transfer", id="bool"),
        pytest.param([("sideways", 100, "BRL"), (CREDIT, 100, "BRL")], "transfer", id="side"),
        pytest.param([(DEBIT, 100, "XXX"), (CREDIT, 100, "XXX")], "transfer", id="currency"),
        pytest.param([(DEBIT, 100, "BRL"), (CREDIT, 100, "BRL")], "gift", id="kind"),
    ],
)
def test_invalid_postings_are_refused_and_write_nothing(legs, kind):
    source, destination = customer_account(1_000), customer_account()
    accounts = [source, destination]
    request = JournalRequest(
        posting_key="bad",
        kind=kind,
        postings=[
            Posting(account_id=accounts[i].id, side=side, amount=amount, currency=currency)
            for i, (side, amount, currency) in enumerate(legs)
        ],
    )
    before = snapshot()
    with pytest.raises(InvalidPosting) as refusal:
        services.post_transaction(request)
    assert refusal.value.code == "invalid_posting"
    assert snapshot() == before


def test_a_posting_in_another_currency_than_its_account_is_refused():
    brl_customer = customer_account(1_000, "BRL")
    request = JournalRequest(
        posting_key="deposit:usd-into-brl",
        kind=JournalTransaction.Kind.DEPOSIT,
        postings=[
            Posting(account_id=settlement("USD").id, side=DEBIT, amount=100, currency="USD"),
            Posting(account_id=brl_customer.id, side=CREDIT, amount=100, currency="USD"),
        ],
    )
    before = snapshot()
    with pytest.raises(CurrencyMismatch) as refusal:
        services.post_transaction(request)
    assert refusal.value.code == "currency_mismatch"
    assert snapshot() == before


def test_an_unknown_account_is_refused():
    known = customer_account(100)
    ghost = LedgerAccount(id=uuid.uuid4(), currency="BRL")
    before = snapshot()
    with pytest.raises(LedgerAccountNotFound):
        services.post_transaction(transfer_request(known, ghost, 10))
    assert snapshot() == before


def test_a_customer_account_may_not_go_below_zero_but_may_reach_it():
    source, destination = customer_account(500), customer_account()
    before = snapshot()
    with pytest.raises(InsufficientFunds) as refusal:
        services.post_transaction(transfer_request(source, destination, 501))
    assert refusal.value.code == "insufficient_funds"
    assert snapshot() == before

    services.post_transaction(transfer_request(source, destination, 500))
    assert balances(source, destination) == [(0, 0), (500, 0)]


def test_money_on_hold_is_not_available_to_postings():
    source, destination = customer_account(1_000), customer_account()
    services.hold_place(owner_ref=owner_of(source), amount=600, currency="BRL", hold_key="transfer:h")
    with pytest.raises(InsufficientFunds):
        services.post_transaction(transfer_request(source, destination, 401))
    services.post_transaction(transfer_request(source, destination, 400))
    assert balances(source, destination) == [(600, 600), (400, 0)]


def test_the_banks_own_accounts_may_go_negative():
    # Suspense, not clearing: clearing must hold exactly the payments in the network's hands.
    suspense = LedgerAccount.objects.get(code="system:suspense:EUR")
    services.post_transaction(
        JournalRequest(
            posting_key="adjustment:eur",
            kind=JournalTransaction.Kind.ADJUSTMENT,
            postings=[
                Posting(account_id=suspense.id, side=DEBIT, amount=5, currency="EUR"),
                Posting(account_id=settlement("EUR").id, side=CREDIT, amount=5, currency="EUR"),
            ],
        )
    )
    assert balances(suspense, settlement("EUR")) == [(-5, 0), (-5, 0)]
    report = reconcile_ledger()
    assert report.ok, report.problems
    assert report.totals_by_currency["EUR"] == 0


def test_the_database_refuses_a_negative_available_balance_behind_the_services_back():
    account = customer_account(100)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.filter(pk=account.pk).update(held=F("balance") + 1)
    assert balances(account) == [(100, 0)]


# --- idempotency --------------------------------------------------------------------------------


def test_a_repeated_posting_key_returns_the_first_journal_transaction_and_moves_nothing_twice():
    source, destination = customer_account(1_000), customer_account()
    first = services.post_transaction(transfer_request(source, destination, 100, key="transfer:once"))
    after_first = snapshot()
    again = services.post_transaction(transfer_request(source, destination, 100, key="transfer:once"))
    different = services.post_transaction(transfer_request(source, destination, 999, key="transfer:once"))
    assert again.pk == first.pk
    assert different.pk == first.pk
    assert snapshot() == after_first
    assert balances(source, destination) == [(900, 0), (100, 0)]

    # In a batch, the posted key is returned in its place and only the new one posts.
    fresh = transfer_request(source, destination, 50, key="transfer:fresh")
    posted = services.post_transactions([transfer_request(source, destination, 100, key="transfer:once"), fresh])
    assert posted[0].pk == first.pk
    assert posted[1].posting_key == "transfer:fresh"
    assert balances(source, destination) == [(850, 0), (150, 0)]


def test_one_batch_may_not_post_a_key_twice():
    source, destination = customer_account(1_000), customer_account()
    before = snapshot()
    with pytest.raises(InvalidPosting):
        services.post_transactions(
            [transfer_request(source, destination, 1, key="k"), transfer_request(source, destination, 2, key="k")]
        )
    assert snapshot() == before


# --- holds --------------------------------------------------------------------------------------


def test_a_hold_lowers_the_available_balance_not_the_posted_one():
    account = customer_account(1_000)
    hold = services.hold_place(owner_ref=owner_of(account), amount=300, currency="BRL", hold_key="transfer:a")
    assert hold.status == Hold.Status.ACTIVE
    account.refresh_from_db()
    assert (account.balance, account.held, account.available) == (1_000, 300, 700)
    assert not JournalEntry.objects.filter(account=account).exclude(transaction__kind="deposit").exists()


def test_a_hold_beyond_the_available_balance_is_refused():
    account = customer_account(1_000)
    services.hold_place(owner_ref=owner_of(account), amount=700, currency="BRL", hold_key="transfer:a")
    before = snapshot()
    with pytest.raises(InsufficientFunds):
        services.hold_place(owner_ref=owner_of(account), amount=301, currency="BRL", hold_key="transfer:b")
    assert snapshot() == before
    services.hold_place(owner_ref=owner_of(account), amount=300, currency="BRL", hold_key="transfer:c")
    assert balances(account) == [(1_000, 1_000)]


@pytest.mark.parametrize(
    ("amount", "currency", "error"),
    [
        (0, "BRL", InvalidPosting),
        (-1, "BRL", InvalidPosting),
        (True, "BRL", InvalidPosting),
        (10, "USD", CurrencyMismatch),
    ],
)
def test_an_invalid_hold_is_refused(amount, currency, error):
    account = customer_account(1_000)
    before = snapshot()
    with pytest.raises(error):
        services.hold_place(owner_ref=owner_of(account), amount=amount, currency=currency, hold_key="transfer:x")
    assert snapshot() == before


def test_placing_a_hold_twice_with_one_key_returns_the_first():
    account = customer_account(1_000)
    first = services.hold_place(owner_ref=owner_of(account), amount=300, currency="BRL", hold_key="transfer:a")
    second = services.hold_place(owner_ref=owner_of(account), amount=500, currency="BRL", hold_key="transfer:a")
    assert second.pk == first.pk
    assert second.amount == 300
    assert balances(account) == [(1_000, 300)]
    assert Hold.objects.count() == 1


def test_posting_a_hold_moves_the_money_and_releases_it():
    source, destination = customer_account(1_000), customer_account(10)
    services.hold_place(owner_ref=owner_of(source), amount=300, currency="BRL", hold_key="transfer:a")
    journal = services.hold_post(
        hold_key="transfer:a", to_owner_ref=owner_of(destination), kind=JournalTransaction.Kind.TRANSFER, reference="a"
    )
    assert balances(source, destination) == [(700, 0), (310, 0)]
    hold = Hold.objects.get(hold_key="transfer:a")
    assert hold.status == Hold.Status.POSTED
    assert hold.journal_transaction_id == journal.id
    assert hold.resolved_at is not None
    assert journal.posting_key == "transfer:a"
    assert sorted(journal.entries.values_list("account_id", "side", "amount")) == sorted(
        [(source.id, DEBIT, 300), (destination.id, CREDIT, 300)]
    )
    # Posting it again returns the same journal transaction; nothing moves twice.
    after = snapshot()
    again = services.hold_post(
        hold_key="transfer:a", to_owner_ref=owner_of(destination), kind=JournalTransaction.Kind.TRANSFER
    )
    assert again.pk == journal.pk
    assert snapshot() == after
    assert reconcile_ledger().ok


def test_voiding_a_hold_releases_it_and_moves_nothing():
    account = customer_account(1_000)
    services.hold_place(owner_ref=owner_of(account), amount=300, currency="BRL", hold_key="transfer:a")
    entries_before = JournalEntry.objects.count()
    voided = services.hold_void(hold_key="transfer:a")
    assert voided is not None
    assert voided.status == Hold.Status.VOIDED
    assert voided.resolved_at is not None
    assert balances(account) == [(1_000, 0)]
    assert JournalEntry.objects.count() == entries_before
    after = snapshot()
    again = services.hold_void(hold_key="transfer:a")  # again: nothing changes
    assert again is not None
    assert again.status == Hold.Status.VOIDED
    assert snapshot() == after
    assert services.hold_void(hold_key="transfer:never-placed") is None
    assert reconcile_ledger().ok


def test_a_posted_hold_cannot_be_voided():
    source, destination = customer_account(1_000), customer_account()
    services.hold_place(owner_ref=owner_of(source), amount=300, currency="BRL", hold_key="transfer:a")
    services.hold_post(hold_key="transfer:a", to_owner_ref=owner_of(destination), kind="transfer")
    before = snapshot()
    with pytest.raises(HoldNotActive) as refusal:
        services.hold_void(hold_key="transfer:a")
    assert refusal.value.code == "hold_not_active"
    assert snapshot() == before
    assert balances(source, destination) == [(700, 0), (300, 0)]


def test_a_voided_hold_cannot_be_posted():
    source, destination = customer_account(1_000), customer_account()
    services.hold_place(owner_ref=owner_of(source), amount=300, currency="BRL", hold_key="transfer:a")
    services.hold_void(hold_key="transfer:a")
    before = snapshot()
    with pytest.raises(HoldNotActive):
        services.hold_post(hold_key="transfer:a", to_owner_ref=owner_of(destination), kind="transfer")
    # A hold that was never placed is not "no longer active": the operation and the books disagree.
    with pytest.raises(HoldNotFound):
        services.hold_post(hold_key="transfer:unknown", to_owner_ref=owner_of(destination), kind="transfer")
    assert snapshot() == before
    assert balances(source, destination) == [(1_000, 0), (0, 0)]


# --- reversals ----------------------------------------------------------------------------------


def test_a_reversal_posts_the_mirror_image_and_restores_the_balances():
    source, destination = customer_account(1_000), customer_account()
    original = services.post_transaction(transfer_request(source, destination, 400))
    reversal = services.journal_reverse(transaction_id=original.id, reason="sent to the wrong account")

    assert reversal.kind == JournalTransaction.Kind.REVERSAL
    assert reversal.reverses_id == original.id
    assert reversal.posting_key == f"reversal:{original.id}"
    assert reversal.description == "Reversal: sent to the wrong account"
    flipped = {"debit": "credit", "credit": "debit"}
    assert sorted(reversal.entries.values_list("account_id", "side", "amount", "currency")) == sorted(
        (account, flipped[side], amount, currency)
        for account, side, amount, currency in original.entries.values_list("account_id", "side", "amount", "currency")
    )
    assert balances(source, destination) == [(1_000, 0), (0, 0)]
    assert original.entries.count() == 2  # the original stays as it was
    assert reconcile_ledger().ok


def test_a_transaction_is_reversed_once():
    source, destination = customer_account(1_000), customer_account()
    original = services.post_transaction(transfer_request(source, destination, 400))
    services.journal_reverse(transaction_id=original.id, reason="mistake")
    before = snapshot()
    with pytest.raises(AlreadyReversed) as refusal:
        services.journal_reverse(transaction_id=original.id, reason="mistake, again")
    assert refusal.value.code == "already_reversed"
    assert snapshot() == before


def test_a_reversal_is_not_reversed():
    source, destination = customer_account(1_000), customer_account()
    original = services.post_transaction(transfer_request(source, destination, 400))
    reversal = services.journal_reverse(transaction_id=original.id, reason="mistake")
    before = snapshot()
    with pytest.raises(InvalidPosting):
        services.journal_reverse(transaction_id=reversal.id, reason="undo the undo")
    with pytest.raises(InvalidPosting):
        services.journal_reverse(transaction_id=uuid.uuid4(), reason="nothing there")
    assert snapshot() == before


def test_a_reversal_that_would_overdraw_the_receiver_is_refused():
    source, destination, third = customer_account(1_000), customer_account(), customer_account()
    original = services.post_transaction(transfer_request(source, destination, 400))
    services.post_transaction(transfer_request(destination, third, 350))  # the receiver spent most of it
    before = snapshot()
    with pytest.raises(InsufficientFunds):
        services.journal_reverse(transaction_id=original.id, reason="too late")
    assert snapshot() == before
