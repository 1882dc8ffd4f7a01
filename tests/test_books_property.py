"""The books stay right whatever happens: a stateful property test through the services.

Hypothesis drives random sequences of operations (open accounts, deposits, transfers that may
overdraw, blocking and unblocking, failures injected into transfers in flight, events left to
a worker and dispatched a few at a time, transfers the fraud rules hold for review and the
analysts' or the time-out's decisions on them) and after every step checks that the ledger
reconciles, that no customer account is below zero, and that the ledger's balances equal
those of a model kept by the test. Each example starts from the database the migrations leave.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.db import connection, transaction
from django.db.models import F
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from apps.accounts import services as accounts
from apps.accounts.models import BankAccount
from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.fraud import services as fraud
from apps.ledger import services as ledger
from apps.ledger.errors import InsufficientFunds
from apps.ledger.models import Hold, JournalEntry, JournalTransaction, LedgerAccount
from apps.ledger.reconciliation import reconcile_ledger
from apps.transactions import services as transactions
from apps.transactions.models import Deposit, Transfer
from fintech.errors import DomainError
from outbox import dispatcher
from outbox.models import DeadLetter, DeliveryAttempt, OutboxEvent
from tests import factories

MAX_ACCOUNTS = 5
INJECTED = "injected_failure"
# How a transfer's amount is chosen: a share (1..100 %) of the source's available balance, any
# amount (often more than the source holds), exactly the available balance, or one more.
TRANSFER_AMOUNTS = st.tuples(
    st.sampled_from(["share", "share", "share", "absolute", "available", "available+1"]), st.integers(1, 1_500_000)
)
ACCOUNT_INDEXES = st.integers(0, MAX_ACCOUNTS - 1)
# Transfers above this are held for review (the amount rule, lowered so that many are): together
# with the default rules on young accounts and new beneficiaries, a good share of the transfers.
REVIEW_ABOVE = 200_000
# What the fraud review of a held transfer ends with, and what the transfer then becomes.
REVIEW_OUTCOMES = {"approve": "", "reject": "fraud_rejected", "expire": "review_expired"}


def reset_database() -> None:
    """Back to what the migrations leave, between examples: no rows in the bank's tables but the
    system ledger accounts, at zero. Django's own reset (flush, then serialized_rollback's reload
    of the migrations' rows) takes ten times as long on PostgreSQL, and its reload collides with
    the content types that other transactional tests' flushes re-create in a full run."""
    tables = [
        model._meta.db_table
        for model in django_apps.get_models()
        if model._meta.managed and not model.__module__.startswith("django.") and model is not LedgerAccount
    ]
    quote = connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        if (
            connection.vendor == "postgresql"
        ):  # the journal's and the audit trail's triggers refuse DELETE, not TRUNCATE
            append_only = [JournalEntry, Hold, JournalTransaction, AuditRecord]
            cursor.execute(f"TRUNCATE {', '.join(quote(m._meta.db_table) for m in append_only)}")
        for table in tables:
            cursor.execute(f"DELETE FROM {quote(table)}")  # noqa: S608 - table names from the models
        LedgerAccount.objects.filter(is_system=False).delete()
        LedgerAccount.objects.update(balance=0, held=0)
        for currency in ("BRL", "USD", "EUR"):  # what the ledger's migration opens
            for purpose in ledger.SYSTEM_PURPOSES:
                ledger.system_account(purpose, currency)


def worker_dispatch(enabled: bool = True):
    """Leave the events to a worker (nothing is delivered after the commit)."""
    return override_settings(FINTECH_EVENT_DISPATCH="worker") if enabled else nullcontext()


def pending_events() -> int:
    return OutboxEvent.objects.filter(dispatched_at__isnull=True).count()


def footprint() -> tuple[object, ...]:
    """Everything a refused command could have written."""
    return (
        Transfer.objects.count(),
        Deposit.objects.count(),
        Hold.objects.count(),
        JournalTransaction.objects.count(),
        JournalEntry.objects.count(),
        OutboxEvent.objects.count(),
        sorted(LedgerAccount.objects.values_list("code", "balance", "held")),
        sorted(BankAccount.objects.values_list("number", "status")),
    )


@dataclass
class InFlight:
    """A transfer accepted while its events were left to the worker: its hold is active until
    the choreography posts or voids it."""

    source: uuid.UUID
    destination: uuid.UUID
    amount: int
    failure_injected: bool = False
    # Whether screening refuses it: one of its accounts is blocked while it waits to be screened.
    # Only dispatch screens, so the flag is exact: set and cleared by blocks and unblocks before.
    fails_screening: bool = False
    # The fraud rules held it for review: it waits, hold in place, for a decision.
    in_review: bool = False


class BooksMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        reset_database()
        self.customer: Customer | None = None
        self.account_ids: list[uuid.UUID] = []
        self.posted: dict[uuid.UUID, int] = {}  # the model: each account's posted balance
        self.blocked: set[uuid.UUID] = set()
        self.in_flight: dict[uuid.UUID, InFlight] = {}
        self.expected_final: dict[uuid.UUID, tuple[str, str]] = {}  # transfer -> (status, failure code)
        self.completed_transfers = 0
        self.pending = 0  # events left undispatched, as of the last check

    # --- the model -----------------------------------------------------------------------------

    def held(self, account_id: uuid.UUID) -> int:
        return sum(f.amount for f in self.in_flight.values() if f.source == account_id)

    def available(self, account_id: uuid.UUID) -> int:
        return self.posted[account_id] - self.held(account_id)

    def settle_resolved_holds(self) -> None:
        """Move the in-flight transfers whose hold the ledger has posted or voided into the model,
        checking that the outcome is one the operations allow."""
        if not self.in_flight:
            return
        holds = {
            h.hold_key: h
            for h in Hold.objects.filter(hold_key__in=[ledger.hold_key("transfer", t) for t in self.in_flight])
        }
        statuses = dict(Transfer.objects.filter(pk__in=list(self.in_flight)).values_list("pk", "status"))
        for transfer_id, flight in list(self.in_flight.items()):
            hold = holds[ledger.hold_key("transfer", transfer_id)]
            assert hold.amount == flight.amount
            if hold.status == Hold.Status.ACTIVE:
                # A worker's screening held it for review (screening checks the accounts first).
                flight.in_review = statuses[transfer_id] == Transfer.Status.REVIEW
                assert not (flight.in_review and (flight.failure_injected or flight.fails_screening))
                continue
            if hold.status == Hold.Status.POSTED:
                assert not flight.failure_injected, f"transfer {transfer_id} was failed, yet the ledger posted it"
                assert not flight.fails_screening, f"transfer {transfer_id} was posted though an account was blocked"
                self.posted[flight.source] -= flight.amount
                self.posted[flight.destination] += flight.amount
                self.expected_final[transfer_id] = (Transfer.Status.COMPLETED, "")
            else:
                assert flight.failure_injected or flight.fails_screening, f"hold of {transfer_id} voided for nothing"
                code = INJECTED if flight.failure_injected else "account_blocked"
                self.expected_final[transfer_id] = (Transfer.Status.FAILED, code)
            del self.in_flight[transfer_id]

    def unscreened(self) -> list[uuid.UUID]:
        """The transfers in flight that the worker has not screened yet."""
        pending = Transfer.objects.filter(pk__in=list(self.in_flight), status=Transfer.Status.INITIATED)
        unscreened = set(pending.values_list("pk", flat=True))
        # In the order they were made, not by their random ids: a replayed example draws the same.
        return [transfer_id for transfer_id in self.in_flight if transfer_id in unscreened]

    def block(self, account_id: uuid.UUID) -> None:
        accounts.account_block(account_id=account_id, reason="property test", changed_by="ops")
        self.blocked.add(account_id)
        self.blocks_changed()

    def unblock(self, account_id: uuid.UUID) -> None:
        accounts.account_unblock(account_id=account_id, reason="property test", changed_by="ops")
        self.blocked.discard(account_id)
        self.blocks_changed()

    def blocks_changed(self) -> None:
        for transfer_id in self.unscreened():
            flight = self.in_flight[transfer_id]
            flight.fails_screening = bool({flight.source, flight.destination} & self.blocked)

    def refused(self, code: str, command: Callable[[], object]) -> DomainError:
        """`command` must raise a domain error with `code` and write nothing at all."""
        before = footprint()
        with pytest.raises(DomainError) as refusal:
            command()
        assert refusal.value.code == code, refusal.value
        assert footprint() == before, f"the refused command ({code}) wrote something"
        return refusal.value

    # --- rules ---------------------------------------------------------------------------------

    def account(self, index: int) -> uuid.UUID:
        return self.account_ids[index % len(self.account_ids)]

    def open_one(self, *, new_customer: bool = True) -> uuid.UUID:
        if new_customer or self.customer is None:
            self.customer = factories.verified_customer()
        account = factories.open_account(customer=self.customer)
        self.account_ids.append(account.id)
        self.posted[account.id] = 0
        return account.id

    @initialize(funds=st.lists(st.integers(0, 1_000_000), min_size=2, max_size=2))
    def two_accounts(self, funds):
        fraud.rule_change(
            name="amount", parameters={"threshold": REVIEW_ABOVE}, changed_by="property test", changer_kind="system"
        )
        for index, amount in enumerate(funds):
            account_id = self.open_one(new_customer=index == 0)
            if amount:
                self.deposit_into(account_id, amount)

    @precondition(lambda self: len(self.account_ids) < MAX_ACCOUNTS)
    @rule(new_customer=st.booleans())
    def open_account(self, new_customer):
        """Another account, for a new verified customer or for the last one."""
        self.open_one(new_customer=new_customer)

    def deposit_into(self, account_id: uuid.UUID, amount: int) -> None:
        def make() -> Deposit:
            return transactions.deposit_make(
                account_id=account_id, amount=amount, currency="BRL", reference=f"cash-{uuid.uuid4()}", made_by="t"
            )

        if account_id in self.blocked:
            self.refused("account_blocked", make)
            return
        deposit = make()
        assert deposit.journal_transaction_id is not None
        self.posted[account_id] += amount

    @rule(index=ACCOUNT_INDEXES, amount=st.integers(1, 1_000_000))
    def deposit(self, index, amount):
        self.deposit_into(self.account(index), amount)

    @rule(
        index=ACCOUNT_INDEXES,
        step=st.integers(1, MAX_ACCOUNTS - 1),
        same_account=st.sampled_from([False] * 9 + [True]),
        amount=TRANSFER_AMOUNTS,
        dispatch=st.sampled_from(
            ["inline", "worker", "worker, then failed", "worker, then failed inline", "worker, then blocked"]
        ),
    )
    def transfer(self, index, step, same_account, amount, dispatch):
        """A transfer whose events are dispatched right after its commit, or left to the worker
        (and sometimes failed, or its destination blocked, before the worker screens it)."""
        self.settle_resolved_holds()
        source = self.account(index)
        destination = source if same_account else self.account(index + 1 + step % (len(self.account_ids) - 1))
        available = self.available(source)
        kind, value = amount
        amount = {
            "share": max(available * (value % 100 + 1) // 100, 1),
            "absolute": value,
            "available": max(available, 1),
            "available+1": available + 1,
        }[kind]

        def initiate() -> Transfer:
            return transactions.transfer_initiate(
                from_account_id=source, to_account_id=destination, amount=amount, currency="BRL", initiated_by="t"
            )

        if source == destination:
            self.refused("same_account", initiate)
            return
        if source in self.blocked or destination in self.blocked:
            self.refused("account_blocked", initiate)
            return
        if amount > available:
            refusal = self.refused("insufficient_funds", initiate)
            assert isinstance(refusal, InsufficientFunds)
            return
        with worker_dispatch(dispatch != "inline"):
            transfer = initiate()
        transfer.refresh_from_db()
        if dispatch != "inline":
            assert transfer.status == Transfer.Status.INITIATED
            self.in_flight[transfer.id] = InFlight(source, destination, amount)
            if "failed" in dispatch:
                self.fail(transfer.id, to_worker=not dispatch.endswith("inline"))
            elif "blocked" in dispatch and not self.blocked:
                self.block(destination)
            return
        # Dispatched right after the commit: the choreography ran to its end, or to a review.
        if transfer.status == Transfer.Status.REVIEW:
            self.in_flight[transfer.id] = InFlight(source, destination, amount, in_review=True)
            return
        assert transfer.status == Transfer.Status.COMPLETED, (transfer.status, transfer.failure_code)
        self.posted[source] -= amount
        self.posted[destination] += amount
        self.completed_transfers += 1

    @rule(index=ACCOUNT_INDEXES, again=st.sampled_from([False] * 4 + [True]))
    def block_or_unblock(self, index, again):
        """Block an active account, or unblock the blocked one (one at a time, so that most
        transfers stay possible). `again` repeats an account's state instead (block a blocked
        account, unblock an active one), which is refused."""
        account_id = self.account(index)
        if again:
            command = accounts.account_block if account_id in self.blocked else accounts.account_unblock
            self.refused(
                "invalid_account_status",
                lambda: command(account_id=account_id, reason="property test", changed_by="ops"),
            )
            return
        if self.blocked:
            self.unblock(next(iter(self.blocked)))
            return
        self.block(account_id)

    @precondition(lambda self: bool(self.in_flight) and not self.blocked)
    @rule(data=st.data())
    def block_an_account_in_flight(self, data):
        """Block the source or destination of a transfer the worker has not screened yet."""
        unscreened = self.unscreened()
        if not unscreened:
            return
        flight = self.in_flight[data.draw(st.sampled_from(unscreened), label="transfer in flight")]
        self.block(data.draw(st.sampled_from([flight.source, flight.destination]), label="account to block"))

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data(), to_worker=st.booleans())
    def inject_failure(self, data, to_worker):
        """Fail a transfer the worker has not screened yet: its hold must be voided, nothing moves."""
        unscreened = self.unscreened()
        if not unscreened:
            return
        self.fail(data.draw(st.sampled_from(unscreened), label="transfer to fail"), to_worker=to_worker)

    def fail(self, transfer_id: uuid.UUID, *, to_worker: bool) -> None:
        with worker_dispatch(to_worker):
            failed = transactions.transfer_fail(transfer_id=transfer_id, code=INJECTED, detail="chaos")
        assert failed.status == Transfer.Status.FAILED
        assert failed.failure_code == INJECTED
        self.in_flight[transfer_id].failure_injected = True
        if not to_worker:  # the failure was dispatched after its commit: the hold is gone already
            assert Hold.objects.get(hold_key=ledger.hold_key("transfer", transfer_id)).status == Hold.Status.VOIDED

    def in_review(self) -> list[uuid.UUID]:
        self.settle_resolved_holds()
        return [transfer_id for transfer_id, flight in self.in_flight.items() if flight.in_review]

    @precondition(lambda self: any(flight.in_review for flight in self.in_flight.values()))
    @rule(data=st.data(), outcome=st.sampled_from(sorted(REVIEW_OUTCOMES)))
    def decide_a_review(self, data, outcome):
        """An analyst approves or rejects a transfer held for review, or every review times out.
        The decision's events run right after its commit: the transfer ends at once."""
        held = self.in_review()
        if not held:
            return
        if outcome == "expire":
            deciding = held
            assert fraud.reviews_expire(now=timezone.now() + timedelta(days=365)) == len(held)
        else:
            deciding = [data.draw(st.sampled_from(held), label="transfer in review")]
            command = fraud.review_approve if outcome == "approve" else fraud.review_reject
            command(subject_id=deciding[0], decided_by="analyst", decider_kind="staff", reason="property test")
        for transfer_id in deciding:
            flight = self.in_flight.pop(transfer_id)
            transfer = Transfer.objects.get(pk=transfer_id)
            hold = Hold.objects.get(hold_key=ledger.hold_key("transfer", transfer_id))
            if outcome == "approve" and not {flight.source, flight.destination} & self.blocked:
                assert (transfer.status, hold.status) == (Transfer.Status.COMPLETED, Hold.Status.POSTED)
                self.posted[flight.source] -= flight.amount
                self.posted[flight.destination] += flight.amount
                self.completed_transfers += 1
                continue
            code = REVIEW_OUTCOMES[outcome] or "account_blocked"  # approved, but an account was blocked since
            assert (transfer.status, transfer.failure_code, hold.status) == (
                Transfer.Status.FAILED,
                code,
                Hold.Status.VOIDED,
            )

    @precondition(lambda self: bool(self.in_flight))
    @rule(limit=st.integers(1, 6))
    def dispatch_a_few(self, limit):
        with worker_dispatch():
            dispatcher.dispatch(limit=limit)

    @precondition(lambda self: self.pending > 0)
    @rule()
    def drain(self):
        """The worker catches up: every committed event reaches its handlers."""
        with worker_dispatch():
            for _ in range(20):
                if not pending_events():
                    break
                dispatcher.sweep(grace_seconds=0)
        assert pending_events() == 0

    # --- invariants, checked after every step --------------------------------------------------

    @invariant()
    def books_reconcile(self):
        report = reconcile_ledger()
        assert report.ok, report.problems
        assert report.totals_by_currency.get("BRL", 0) == 0
        overdrawn = LedgerAccount.objects.filter(is_system=False, balance__lt=F("held"))
        assert not overdrawn.exists(), list(overdrawn.values_list("code", "balance", "held"))

    @invariant()
    def no_handler_failed(self):
        assert not DeliveryAttempt.objects.exists(), list(DeliveryAttempt.objects.values("handler", "last_error"))
        assert not DeadLetter.objects.exists(), list(DeadLetter.objects.values("handler", "error"))

    @invariant()
    def ledger_equals_the_model(self):
        self.settle_resolved_holds()
        ledger_accounts = {a.owner_ref: a for a in LedgerAccount.objects.filter(owner_ref__in=list(self.posted))}
        assert set(ledger_accounts) == set(self.posted)
        for account_id, posted in self.posted.items():
            account = ledger_accounts[account_id]
            assert (account.balance, account.held) == (posted, self.held(account_id)), account.code
            assert account.available == self.available(account_id) >= 0
        self.pending = pending_events()
        if self.pending:
            return
        # Everything was dispatched: every transfer in flight has ended, as the model says it must, or
        # waits in review for a decision.
        waiting = [transfer_id for transfer_id, flight in self.in_flight.items() if not flight.in_review]
        assert not waiting, f"transfers still holding money with no event left: {waiting}"
        finals = {t.pk: t for t in Transfer.objects.filter(pk__in=list(self.expected_final))}
        for transfer_id, (status, code) in self.expected_final.items():
            transfer = finals[transfer_id]
            assert (transfer.status, transfer.failure_code) == (status, code), transfer_id
            hold = Hold.objects.get(hold_key=ledger.hold_key("transfer", transfer_id))
            if status == Transfer.Status.COMPLETED:
                assert transfer.journal_transaction_id == hold.journal_transaction_id is not None
        self.completed_transfers += sum(1 for s, _ in self.expected_final.values() if s == Transfer.Status.COMPLETED)
        self.expected_final.clear()
        assert Transfer.objects.filter(status=Transfer.Status.COMPLETED).count() == self.completed_transfers
        unfinished = Transfer.objects.exclude(status__in=Transfer.FINAL)
        assert set(unfinished.values_list("pk", flat=True)) == set(self.in_flight)
        assert not unfinished.exclude(status=Transfer.Status.REVIEW).exists()


@contextmanager
def asynchronous_commits() -> Iterator[None]:
    """On PostgreSQL, commit without waiting for the WAL to reach the disk. Visibility, locks and
    constraints are unchanged (only durability across a server crash is given up), and the
    thousands of commits of the run stop waiting on fsync: it runs about twice as fast."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


@pytest.mark.django_db(transaction=True)
def test_the_books_stay_right_under_random_operations():
    with asynchronous_commits():
        run_state_machine_as_test(
            BooksMachine,
            settings=settings(
                max_examples=15,
                stateful_step_count=25,
                deadline=None,
                database=None,  # nothing written to the working tree; each run explores afresh
                # No shrinking: each try replays steps against a real database, and shrinking runs
                # past the test timeout. A failure prints its steps (at most 25) as they ran.
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            ),
        )
