"""The books stay right whatever happens: a stateful property test through the services.

Hypothesis drives random sequences of the bank's operations, each through its services:

- accounts opened, blocked, unblocked and closed (a closed one refuses everything), deposits;
- transfers that may overdraw, dispatched right after their commit or left to a worker (and
  failed, or an account blocked, before the worker screens them), events dispatched a few at a time;
- outbound payments to other banks: refused whole (insufficient funds, a blocked or closed account,
  a beneficiary at this bank or not valid), or accepted and screened by the fraud rules: sent to the
  network, held for review, rejected (a deny-listed beneficiary), failed for an account blocked
  while they waited; flagged when the network is late;
- the payment network, played by the test with the simulator's `PaymentNetwork` (which returns the
  payments to accounts closed at the other bank, and some others at random): its answers delivered
  through the outbox as the in-process simulator delivers them (at once, or left to a worker) or
  straight to the payments context's handler as its Kafka consumer group does; the same answer
  again (the same message, or a new one); answers the bank must not book (an unknown payment,
  another amount, currency or end-to-end id, a payment never sent, a contradiction of the answer
  booked);
- credits from other banks: booked once per end-to-end id, sent again, contradicted, and returned
  for an account that is blocked, closed, unknown or at another bank;
- reviews of the transfers and payments the fraud rules hold (the amount rule's threshold lowered
  in the rule table and one beneficiary deny-listed, in the machine's setup, so that reviews and
  rejections are frequent): approved or rejected by an analyst, expired, decided again (refused).

After every step it checks, against a model of every account, transfer, payment and credit kept
by the test: the ledger reconciles (each journal transaction balances, debits equal credits per
currency, every cached balance and held amount equals its entries and active holds, clearing holds
exactly the payments sent and not answered); the bank's own accounts hold what the deposits,
credits and settled payments brought in and took out (money is conserved); no account that may not
go negative is below zero; each account's posted, held and available balances are the model's;
each transfer, payment and credit has exactly the journal transactions its history calls for (one
per transfer, one per payment sent, one per answer booked, one per credit), under the ledger's
posting keys; every transfer and payment is in a state its history allows (its steps or events, its
hold, its journal, its fraud screening and review agree); no handler gave up on an event. A refused
command, and a network message the bank must not book, change nothing in the books.

Each example starts from the database the migrations leave. `make test` runs it at CI size; a
bigger run by hand (with DATABASE_URL set for PostgreSQL; `--timeout 0` lifts the suite's limit):

    FINTECH_PROPERTY_EXAMPLES=200 FINTECH_PROPERTY_STEPS=60 \\
        .venv/bin/pytest -p no:cacheprovider --timeout 0 tests/test_books_property.py
"""

from __future__ import annotations

import copy
import os
import random
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.db.models import F, Q
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
from apps.analytics.models import Fact
from apps.audit.models import AuditRecord
from apps.customers.models import Customer
from apps.fraud import services as fraud
from apps.fraud.models import Alert, Screening
from apps.ledger import services as ledger
from apps.ledger.errors import InsufficientFunds
from apps.ledger.models import Hold, JournalEntry, JournalTransaction, LedgerAccount, system_account_code
from apps.ledger.reconciliation import reconcile_ledger
from apps.notifications.models import Notification
from apps.payments import services as payments
from apps.payments.beneficiaries import beneficiary_from
from apps.payments.models import IgnoredNetworkMessage, InboundCredit, Payment, PaymentStep
from apps.transactions import services as transactions
from apps.transactions.models import Deposit, Transfer
from fintech import bus
from fintech.errors import DomainError
from fintech.events import rfc3339
from fintech.payment_network import new_end_to_end_id
from outbox import dispatcher
from outbox.models import DeadLetter, DeliveryAttempt, InboxRecord, OutboxEvent
from outbox.network_simulator.network import SENDER_ISPB, PaymentNetwork, SettlementBook, network_message
from outbox.publisher import record_incoming
from tests import factories
from tests.payments_support import ACCOUNT_BENEFICIARY, CLOSED_BENEFICIARY, PIX_BENEFICIARY

MAX_ACCOUNTS = 5
INJECTED = "injected_failure"
# How an amount is chosen: a share (1..100 %) of the account's available balance, any amount
# (often more than the account holds), exactly the available balance, or one more.
AMOUNTS = st.tuples(
    st.sampled_from(["share", "share", "share", "absolute", "available", "available+1"]), st.integers(1, 1_500_000)
)
ACCOUNT_INDEXES = st.integers(0, MAX_ACCOUNTS - 1)
WITH_BLOCKED = st.sampled_from([False, False, False, True])
# Transfers and payments above this are held for review (the amount rule, lowered so that many
# are): together with the default rules on young accounts and new beneficiaries, a good share.
REVIEW_ABOVE = 100_000
# What the fraud review of a held transfer or payment ends with, and what it then fails with.
REVIEW_OUTCOMES = {"approve": "", "reject": "fraud_rejected", "expire": "review_expired"}
# How often the simulated network returns a payment to an account open at the other bank.
NETWORK_RETURN_RATE = 0.3

# Who a payment goes to. The network returns every payment to the account closed at its bank; the
# screening rejects every payment to the deny-listed one; the last two are refused before anything.
PAID, PIX, CLOSED_THERE, DENIED, AT_THIS_BANK, NOT_VALID = (
    "an account at another bank",
    "a PIX key",
    "an account closed at its bank",
    "a deny-listed beneficiary",
    "an account at this bank",
    "no valid beneficiary",
)
BENEFICIARY_KINDS = st.sampled_from([PAID] * 4 + [PIX, CLOSED_THERE, CLOSED_THERE, DENIED, AT_THIS_BANK, NOT_VALID])
DENIED_BENEFICIARY = {**ACCOUNT_BENEFICIARY, "account_number": "777777-7"}


def beneficiary(kind: str) -> dict[str, str]:
    return {
        PAID: ACCOUNT_BENEFICIARY,
        PIX: PIX_BENEFICIARY,
        CLOSED_THERE: CLOSED_BENEFICIARY,
        DENIED: DENIED_BENEFICIARY,
        AT_THIS_BANK: {**ACCOUNT_BENEFICIARY, "bank_code": django_settings.FINTECH_BANK_ISPB},
        NOT_VALID: {**ACCOUNT_BENEFICIARY, "document": "123.456.789-00"},
    }[kind]


# How a message of the network reaches the bank: recorded in the outbox and dispatched right after
# its commit (the in-process simulator), left there for a worker, or handed to the payments
# context's handler as its Kafka consumer group does (the inbox takes each message once).
INLINE, WORKER, CONSUMER = "outbox, dispatched at once", "outbox, left to a worker", "Kafka consumer"
DELIVERIES = st.sampled_from([INLINE, INLINE, WORKER, CONSUMER])

# What a payment is in the model: awaiting its screening, held for review, sent (its amount in
# clearing), or ended as the payment's own statuses say.
SCREENING, SENT = "awaiting screening", "sent"
REVIEW, SETTLED, RETURNED, FAILED = "review", "settled", "returned", "failed"  # as Payment.Status spells them

# A payment's history (its steps, each with the status it left) and a transfer's (its events).
PAYMENT_PATH = re.compile(r"initiated( review)?( failed| sent( flagged_overdue)?( settled| returned)?)?")
STEP_LEAVES = {
    "initiated": "pending",
    "review": "review",
    "sent": "pending",
    "flagged_overdue": "pending",
    "settled": "settled",
    "returned": "returned",
    "failed": "failed",
}
TRANSFER_PATH = re.compile(r"initiated( held_for_review)?( validated( completed)?| failed)?")
EVENT_LEAVES = {
    "initiated": Transfer.Status.INITIATED,
    "held_for_review": Transfer.Status.REVIEW,
    "validated": Transfer.Status.VALIDATED,
    "completed": Transfer.Status.COMPLETED,
    "failed": Transfer.Status.FAILED,
}
TRANSFER_EVENTS = [f"transaction.{name}" for name in EVENT_LEAVES]
# What an operation may fail with, by the fraud context's last word on it: the screening's
# decision (approve, reject), or the review's outcome (approved, rejected, expired). Approved, it
# still fails when one of its accounts was blocked or closed while it waited.
FAILURES_AFTER: dict[str | None, set[str]] = {
    "reject": {"fraud_rejected"},
    "approve": {"account_blocked", "account_closed"},
    "rejected": {"fraud_rejected"},
    "expired": {"review_expired"},
    "approved": {"account_blocked", "account_closed"},
}
# What a transfer held for review may be, by the review's outcome.
TRANSFER_AFTER_REVIEW: dict[str | None, set[str]] = {
    "review": {"review"},
    "approved": {"validated", "completed", "failed"},
    "rejected": {"failed"},
    "expired": {"failed"},
}


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


# What a network message the bank does not book may still write: the message itself (outbox,
# inbox) and the record kept for operations.
NETWORK_RECORDS = ("outbox", "inbox", "ignored network messages")


def footprint() -> dict[str, object]:
    """Everything a refused command could have written."""
    return {
        "transfers": Transfer.objects.count(),
        "deposits": Deposit.objects.count(),
        "holds": sorted(Hold.objects.values_list("hold_key", "status")),
        "journal transactions": JournalTransaction.objects.count(),
        "journal entries": JournalEntry.objects.count(),
        "ledger accounts": sorted(LedgerAccount.objects.values_list("code", "balance", "held")),
        "bank accounts": sorted(BankAccount.objects.values_list("number", "status")),
        "payments": sorted(Payment.objects.values_list("id", "status", "sent_at", "overdue_since")),
        "payment steps": PaymentStep.objects.count(),
        "credits": sorted(InboundCredit.objects.values_list("end_to_end_id", "status")),
        "screenings": Screening.objects.count(),
        "alerts": sorted(Alert.objects.values_list("subject_id", "status")),
        "audit records": AuditRecord.objects.count(),
        "notices": Notification.objects.count(),
        "analytics facts": Fact.objects.count(),
        "outbox": OutboxEvent.objects.count(),
        "inbox": InboxRecord.objects.count(),
        "ignored network messages": IgnoredNetworkMessage.objects.count(),
    }


def books_of(snapshot: dict[str, object], *, leaving_out: tuple[str, ...] = NETWORK_RECORDS) -> dict[str, object]:
    return {name: value for name, value in snapshot.items() if name not in leaving_out}


def ignored_by_reason() -> Counter[str]:
    return Counter(IgnoredNetworkMessage.objects.values_list("reason", flat=True))


def amount_of(available: int, choice: tuple[str, int]) -> int:
    kind, value = choice
    return {
        "share": max(available * (value % 100 + 1) // 100, 1),
        "absolute": value,
        "available": max(available, 1),
        "available+1": available + 1,
    }[kind]


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


@dataclass
class OutboundPayment:
    """A payment accepted by the bank, as the model follows it."""

    account: uuid.UUID
    amount: int
    beneficiary: str
    state: str = SCREENING
    failure_code: str = ""
    # Its account was blocked while it waited for the worker's screening (exact, as for transfers).
    blocked_at_screening: bool = False
    reviewed: bool = False  # the screening held it for review
    flagged: bool = False  # flagged overdue
    # The network's answer to it (its message), once the network sent one; booked when the bank
    # has read it (at once, or when a worker delivers it).
    answer: dict[str, Any] | None = None


@dataclass
class CreditSent:
    """A credit the network sent for one of our accounts (or for a number we do not have)."""

    message: dict[str, Any]
    account: uuid.UUID | None
    # Why the bank must return it when it reads it ("" when it must credit it): kept exact while
    # the message waits for a worker, as blocks change.
    refusal: str
    booked: bool = False  # the bank has read it: credited, or returned


class BooksMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        reset_database()
        self.customer: Customer | None = None
        self.account_ids: list[uuid.UUID] = []
        self.closed: list[uuid.UUID] = []
        self.posted: dict[uuid.UUID, int] = {}  # the model: each account's posted balance
        self.blocked: set[uuid.UUID] = set()
        self.in_flight: dict[uuid.UUID, InFlight] = {}
        self.expected_final: dict[uuid.UUID, tuple[str, str]] = {}  # transfer -> (status, failure code)
        self.completed_transfers = 0
        self.payments: dict[uuid.UUID, OutboundPayment] = {}
        self.credits: list[CreditSent] = []
        self.decided: list[uuid.UUID] = []  # transfers and payments whose review was decided
        self.settlement = 0  # the bank's reserve: deposits and credits in, settled payments out
        self.journals = 0  # the journal transactions the operations so far call for
        self.network = PaymentNetwork(book=SettlementBook())
        self.pending = 0  # events left undispatched, as of the last check

    # --- the model -----------------------------------------------------------------------------

    def held(self, account_id: uuid.UUID) -> int:
        transfers = sum(f.amount for f in self.in_flight.values() if f.source == account_id)
        waiting = sum(
            p.amount for p in self.payments.values() if p.account == account_id and p.state in (SCREENING, REVIEW)
        )
        return transfers + waiting

    def available(self, account_id: uuid.UUID) -> int:
        return self.posted[account_id] - self.held(account_id)

    def clearing(self) -> int:
        return sum(p.amount for p in self.payments.values() if p.state == SENT)

    def follow(self) -> None:
        """Bring into the model what the bank did since (screenings, postings, answers and
        credits a worker delivered), checking each outcome against what the model allows."""
        self.settle_resolved_holds()
        self.follow_payments()
        self.follow_credits()

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
                self.journals += 1
                self.expected_final[transfer_id] = (Transfer.Status.COMPLETED, "")
            else:
                assert flight.failure_injected or flight.fails_screening, f"hold of {transfer_id} voided for nothing"
                code = INJECTED if flight.failure_injected else "account_blocked"
                self.expected_final[transfer_id] = (Transfer.Status.FAILED, code)
            del self.in_flight[transfer_id]

    def follow_payments(self) -> None:
        """Payments a worker screened, and answers of the network the bank has booked."""
        moving = [pid for pid, p in self.payments.items() if p.state == SCREENING or (p.state == SENT and p.answer)]
        if not moving:
            return
        rows = {p.id: p for p in Payment.objects.filter(pk__in=moving)}
        decisions = dict(Screening.objects.filter(subject_id__in=moving).values_list("subject_id", "decision"))
        for payment_id in moving:
            flight, row = self.payments[payment_id], rows[payment_id]
            if flight.state == SCREENING:
                if payment_id in decisions:
                    self.screened(payment_id, row, decisions[payment_id])
                else:  # the screening and the payment's step on it run in one unit of work
                    assert (row.status, row.sent_at) == (Payment.Status.PENDING, None), payment_id
            elif row.status != Payment.Status.PENDING:
                self.answered(payment_id, row)

    def screened(self, payment_id: uuid.UUID, row: Payment, decision: str) -> None:
        flight = self.payments[payment_id]
        if flight.beneficiary == DENIED:
            assert decision == "reject", f"a payment to a deny-listed beneficiary was screened {decision}"
        elif flight.amount > REVIEW_ABOVE:
            assert decision == "review", f"a payment above the amount rule's threshold was screened {decision}"
        if decision == "review":
            assert row.status == Payment.Status.REVIEW, (payment_id, row.status)
            flight.state, flight.reviewed = REVIEW, True
        elif decision == "reject":
            self.payment_failed(payment_id, row, "fraud_rejected")
        elif flight.blocked_at_screening:
            self.payment_failed(payment_id, row, "account_blocked")
        else:
            self.payment_sent(payment_id, row)

    def payment_sent(self, payment_id: uuid.UUID, row: Payment) -> None:
        assert (row.status, row.failure_code) == (Payment.Status.PENDING, ""), (payment_id, row.status)
        assert row.sent_at is not None, f"payment {payment_id} approved but not sent"
        flight = self.payments[payment_id]
        flight.state = SENT
        self.posted[flight.account] -= flight.amount
        self.journals += 1

    def payment_failed(self, payment_id: uuid.UUID, row: Payment, code: str) -> None:
        assert (row.status, row.failure_code, row.sent_at) == (Payment.Status.FAILED, code, None), payment_id
        flight = self.payments[payment_id]
        flight.state, flight.failure_code = FAILED, code

    def answered(self, payment_id: uuid.UUID, row: Payment) -> None:
        flight = self.payments[payment_id]
        assert flight.answer is not None
        answer = flight.answer["data"]
        assert (row.status, row.network_reference) == (answer["status"], answer["network_reference"]), payment_id
        flight.state = answer["status"]
        self.journals += 1
        if flight.state == SETTLED:
            self.settlement -= flight.amount
        else:
            self.posted[flight.account] += flight.amount

    def follow_credits(self) -> None:
        waiting = {c.message["data"]["end_to_end_id"]: c for c in self.credits if not c.booked}
        if not waiting:
            return
        for row in InboundCredit.objects.filter(end_to_end_id__in=list(waiting)):
            credit = waiting[row.end_to_end_id]
            credit.booked = True
            amount = credit.message["data"]["amount"]
            assert row.amount == amount
            if credit.refusal:
                assert (row.status, row.return_reason, row.journal_transaction_id) == (
                    InboundCredit.Status.RETURNED,
                    credit.refusal,
                    None,
                ), row.end_to_end_id
                returned = OutboxEvent.objects.filter(
                    event_type="payment.credit_returned", aggregate_id=row.end_to_end_id
                )
                [notice] = [event.envelope["data"] for event in returned]
                assert notice["return_reason"] == credit.refusal
                self.network.credit_returned(notice)  # what the network's reader of the topic does
                continue
            assert credit.account is not None
            assert (row.status, row.account_id) == (InboundCredit.Status.CREDITED, credit.account), row.end_to_end_id
            self.posted[credit.account] += amount
            self.settlement += amount
            self.journals += 1

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
        self.follow()
        for transfer_id in self.unscreened():
            flight = self.in_flight[transfer_id]
            flight.fails_screening = bool({flight.source, flight.destination} & self.blocked)
        for payment in self.payments.values():
            if payment.state == SCREENING:
                payment.blocked_at_screening = payment.account in self.blocked
        for credit in self.credits:
            if not credit.booked:
                credit.refusal = self.credit_refusal(credit.account)

    def credit_refusal(self, account_id: uuid.UUID | None) -> str:
        if account_id is None:
            return "account_not_found"
        if account_id in self.closed:
            return "account_closed"
        return "account_blocked" if account_id in self.blocked else ""

    def refused(self, code: str, command: Callable[[], object]) -> DomainError:
        """`command` must raise a domain error with `code` and write nothing at all."""
        before = footprint()
        with pytest.raises(DomainError) as refusal:
            command()
        assert refusal.value.code == code, refusal.value
        assert footprint() == before, f"the refused command ({code}) wrote something"
        return refusal.value

    def not_booked(self, deliver: Callable[[], object], *, reason: str | None) -> None:
        """`deliver` hands the bank a network message it must not book: nothing in the books
        moves; the message is kept for operations with `reason` (None: a duplicate, only logged)."""
        before, ignored = footprint(), ignored_by_reason()
        deliver()
        assert books_of(footprint()) == books_of(before), f"a network message the bank must not book ({reason}) moved"
        ignored.update([reason] if reason else [])
        assert ignored_by_reason() == ignored

    # --- rules ---------------------------------------------------------------------------------

    def account(self, index: int) -> uuid.UUID:
        return self.account_ids[index % len(self.account_ids)]

    def parties(self, *, with_blocked: bool) -> list[uuid.UUID]:
        """The accounts an operation picks from: all of them, or (so that a block does not refuse
        most of what follows it) the ones not blocked, while there are two."""
        active = [account_id for account_id in self.account_ids if account_id not in self.blocked]
        return self.account_ids if with_blocked or len(active) < 2 else active

    def open_one(self, *, new_customer: bool = True) -> uuid.UUID:
        if new_customer or self.customer is None:
            self.customer = factories.verified_customer()
        account = factories.open_account(customer=self.customer)
        self.account_ids.append(account.id)
        self.posted[account.id] = 0
        return account.id

    @initialize(
        funds=st.lists(st.integers(100_000, 1_000_000), min_size=3, max_size=3), network_seed=st.integers(0, 2**32 - 1)
    )
    def three_accounts(self, funds, network_seed):
        fraud.rule_change(
            name="amount", parameters={"threshold": REVIEW_ABOVE}, changed_by="property test", changer_kind="system"
        )
        fraud.deny_list_add(
            kind="beneficiary",
            value=beneficiary_from(DENIED_BENEFICIARY).reference(),
            reason="property test",
            added_by="property test",
            adder_kind="system",
        )
        self.network = PaymentNetwork(
            book=SettlementBook(), return_rate=NETWORK_RETURN_RATE, rng=random.Random(network_seed)
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
        self.settlement += amount
        self.journals += 1

    @rule(index=ACCOUNT_INDEXES, amount=st.integers(1, 1_000_000))
    def deposit(self, index, amount):
        self.deposit_into(self.account(index), amount)

    @rule(
        index=ACCOUNT_INDEXES,
        step=st.integers(1, MAX_ACCOUNTS - 1),
        same_account=st.sampled_from([False] * 9 + [True]),
        amount=AMOUNTS,
        dispatch=st.sampled_from(
            ["inline", "inline", "worker", "worker, then failed", "worker, then failed inline", "worker, then blocked"]
        ),
        with_blocked=WITH_BLOCKED,
    )
    def transfer(self, index, step, same_account, amount, dispatch, with_blocked):
        """A transfer whose events are dispatched right after its commit, or left to the worker
        (and sometimes failed, or its destination blocked, before the worker screens it)."""
        self.follow()
        parties = self.parties(with_blocked=with_blocked)
        source = parties[index % len(parties)]
        destination = source if same_account else parties[(index + 1 + step % (len(parties) - 1)) % len(parties)]
        available = self.available(source)
        amount = amount_of(available, amount)

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
        assert amount <= REVIEW_ABOVE, f"a transfer above the amount rule's threshold was not held: {amount}"
        assert transfer.status == Transfer.Status.COMPLETED, (transfer.status, transfer.failure_code)
        self.posted[source] -= amount
        self.posted[destination] += amount
        self.journals += 1
        self.completed_transfers += 1

    @rule(
        index=ACCOUNT_INDEXES,
        amount=AMOUNTS,
        kind=BENEFICIARY_KINDS,
        dispatch=st.sampled_from(["inline", "inline", "worker"]),
        with_blocked=WITH_BLOCKED,
    )
    def pay(self, index, amount, kind, dispatch, with_blocked):
        """A payment to another bank, screened right after its commit or left to the worker."""
        self.follow()
        parties = self.parties(with_blocked=with_blocked)
        account_id = parties[index % len(parties)]
        available = self.available(account_id)
        amount = amount_of(available, amount)

        def initiate() -> Payment:
            return payments.payment_initiate(
                account_id=account_id, amount=amount, currency="BRL", beneficiary=beneficiary(kind), initiated_by="t"
            )

        refusal = (
            "invalid_beneficiary"
            if kind == NOT_VALID
            else "same_bank_beneficiary"
            if kind == AT_THIS_BANK
            else "account_blocked"
            if account_id in self.blocked
            else "insufficient_funds"
            if amount > available
            else None
        )
        if refusal:
            self.refused(refusal, initiate)
            return
        with worker_dispatch(dispatch == "worker"):
            payment = initiate()
        self.payments[payment.id] = OutboundPayment(account=account_id, amount=amount, beneficiary=kind)
        self.follow_payments()
        screened = self.payments[payment.id].state != SCREENING
        assert screened == (dispatch == "inline"), f"payment {payment.id} screened: {screened}"

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

    def waiting_for_screening(self) -> list[list[uuid.UUID]]:
        """The accounts of each transfer and payment the worker has not screened yet."""
        self.follow()
        transfers = [[self.in_flight[t].source, self.in_flight[t].destination] for t in self.unscreened()]
        return transfers + [[p.account] for p in self.payments.values() if p.state == SCREENING]

    @precondition(
        lambda self: not self.blocked and (self.in_flight or any(p.state == SCREENING for p in self.payments.values()))
    )
    @rule(data=st.data())
    def block_an_account_in_flight(self, data):
        """Block an account of a transfer or payment the worker has not screened yet."""
        waiting = self.waiting_for_screening()
        if not waiting:
            return
        parties = data.draw(st.sampled_from(waiting), label="operation in flight")
        self.block(data.draw(st.sampled_from(parties), label="account to block"))

    def involved(self, account_id: uuid.UUID) -> bool:
        """Whether an operation still in flight names the account (its closing is left out)."""
        self.follow()
        return (
            any(account_id in (f.source, f.destination) for f in self.in_flight.values())
            or any(p.account == account_id and p.state in (SCREENING, REVIEW, SENT) for p in self.payments.values())
            or any(c.account == account_id and not c.booked for c in self.credits)
        )

    @rule(index=ACCOUNT_INDEXES, fresh=st.sampled_from([True, False, False]))
    def close_an_account(self, index, fresh):
        """Close an account: one opened for the purpose (it never held money), or one of the
        others, which is refused while it holds money."""
        if fresh or len(self.account_ids) <= 2:
            account_id = factories.open_account(customer=factories.verified_customer()).id
            self.posted[account_id] = 0
        else:
            account_id = self.account(index)
            if self.involved(account_id):
                return
        close = lambda: accounts.account_close(account_id=account_id, reason="property test", changed_by="ops")  # noqa: E731
        if self.posted[account_id] or self.held(account_id):
            self.refused("account_not_empty", close)
            return
        close()
        if account_id in self.account_ids:
            self.account_ids.remove(account_id)
        self.blocked.discard(account_id)
        self.closed.append(account_id)

    @precondition(lambda self: bool(self.closed))
    @rule(
        data=st.data(),
        operation=st.sampled_from(["deposit", "transfer from", "transfer to", "payment", "block", "unblock", "close"]),
    )
    def use_a_closed_account(self, data, operation):
        """Whatever is asked of a closed account is refused."""
        closed = data.draw(st.sampled_from(self.closed), label="closed account")
        active = [account_id for account_id in self.account_ids if account_id not in self.blocked]
        if not active:
            return
        other = active[0]

        def move(source: uuid.UUID, destination: uuid.UUID) -> Callable[[], object]:
            return lambda: transactions.transfer_initiate(
                from_account_id=source, to_account_id=destination, amount=1, currency="BRL", initiated_by="t"
            )

        status = {"account_id": closed, "reason": "property test", "changed_by": "ops"}
        command, code = {
            "deposit": (
                lambda: transactions.deposit_make(
                    account_id=closed, amount=1, currency="BRL", reference=f"cash-{uuid.uuid4()}", made_by="t"
                ),
                "account_closed",
            ),
            "transfer from": (move(closed, other), "account_closed"),
            "transfer to": (move(other, closed), "account_closed"),
            "payment": (
                lambda: payments.payment_initiate(
                    account_id=closed, amount=1, currency="BRL", beneficiary=ACCOUNT_BENEFICIARY, initiated_by="t"
                ),
                "account_closed",
            ),
            "block": (lambda: accounts.account_block(**status), "invalid_account_status"),
            "unblock": (lambda: accounts.account_unblock(**status), "invalid_account_status"),
            "close": (lambda: accounts.account_close(**status), "invalid_account_status"),
        }[operation]
        self.refused(code, command)

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

    # --- reviews -------------------------------------------------------------------------------

    def in_review(self) -> list[uuid.UUID]:
        self.follow()
        transfers = [transfer_id for transfer_id, flight in self.in_flight.items() if flight.in_review]
        return transfers + [payment_id for payment_id, p in self.payments.items() if p.state == REVIEW]

    @precondition(
        lambda self: (
            any(f.in_review for f in self.in_flight.values())
            or any(p.state in (SCREENING, REVIEW) for p in self.payments.values())
        )
    )
    @rule(data=st.data(), outcome=st.sampled_from(sorted(REVIEW_OUTCOMES)))
    def decide_a_review(self, data, outcome):
        """An analyst approves or rejects a transfer or payment held for review, or every review
        times out. The decision's events run right after its commit: the operation goes on or
        ends at once.

        The fraud context screens every transfer it is told of, so a transfer that failed before
        its screening ran (or that the screening's account check failed) may leave a review open
        that holds nothing: deciding it changes nothing but the alert."""
        held = self.in_review()
        open_reviews = set(Alert.objects.filter(status=Alert.Status.REVIEW).values_list("subject_id", flat=True))
        assert set(held) <= open_reviews, set(held) - open_reviews
        stale = sorted(open_reviews - set(held))  # sorted: a replayed example draws the same
        ended = dict(Transfer.objects.filter(pk__in=stale).values_list("pk", "status"))
        assert all(ended.get(subject_id) == Transfer.Status.FAILED for subject_id in stale), (stale, ended)
        if not held and not stale:
            return
        before = {t.pk: (t.status, t.failure_code) for t in Transfer.objects.filter(pk__in=stale)}
        if outcome == "expire":
            deciding = held + stale
            assert fraud.reviews_expire(now=timezone.now() + timedelta(days=365)) == len(deciding)
        else:
            deciding = [data.draw(st.sampled_from(held + stale), label="operation in review")]
            command = fraud.review_approve if outcome == "approve" else fraud.review_reject
            command(subject_id=deciding[0], decided_by="analyst", decider_kind="staff", reason="property test")
        self.decided += deciding
        after = {t.pk: (t.status, t.failure_code) for t in Transfer.objects.filter(pk__in=stale)}
        assert after == before, "deciding a review left open on a failed transfer changed it"
        for subject_id in deciding:
            if subject_id in self.payments:
                self.payment_review_ended(subject_id, outcome)
            elif subject_id not in stale:
                self.transfer_review_ended(subject_id, outcome)

    def transfer_review_ended(self, transfer_id: uuid.UUID, outcome: str) -> None:
        flight = self.in_flight.pop(transfer_id)
        transfer = Transfer.objects.get(pk=transfer_id)
        hold = Hold.objects.get(hold_key=ledger.hold_key("transfer", transfer_id))
        if outcome == "approve" and not {flight.source, flight.destination} & self.blocked:
            assert (transfer.status, hold.status) == (Transfer.Status.COMPLETED, Hold.Status.POSTED)
            self.posted[flight.source] -= flight.amount
            self.posted[flight.destination] += flight.amount
            self.journals += 1
            self.completed_transfers += 1
            return
        code = REVIEW_OUTCOMES[outcome] or "account_blocked"  # approved, but an account was blocked since
        assert (transfer.status, transfer.failure_code, hold.status) == (
            Transfer.Status.FAILED,
            code,
            Hold.Status.VOIDED,
        )

    def payment_review_ended(self, payment_id: uuid.UUID, outcome: str) -> None:
        row = Payment.objects.get(pk=payment_id)
        if outcome == "approve" and self.payments[payment_id].account not in self.blocked:
            self.payment_sent(payment_id, row)
            return
        self.payment_failed(payment_id, row, REVIEW_OUTCOMES[outcome] or "account_blocked")

    @precondition(lambda self: bool(self.decided) or bool(self.payments))
    @rule(data=st.data(), approve=st.booleans(), subject=st.sampled_from(["decided", "never held"]))
    def decide_a_review_again(self, data, approve, subject):
        """Deciding a review already decided, or an operation the screening never held, is refused."""
        if subject == "decided" and self.decided:
            subject_id, code = data.draw(st.sampled_from(self.decided), label="decided"), "review_already_decided"
        else:
            never = [payment_id for payment_id, p in self.payments.items() if not p.reviewed and p.state != SCREENING]
            subject_id = data.draw(st.sampled_from([*never, uuid.UUID(int=0)]), label="never held")
            code = "transfer_not_in_review"
        command = fraud.review_approve if approve else fraud.review_reject
        self.refused(
            code, lambda: command(subject_id=subject_id, decided_by="analyst", decider_kind="staff", reason="again")
        )

    # --- the payment network -------------------------------------------------------------------

    def deliver(self, message: dict[str, Any], via: str) -> None:
        if via == CONSUMER:
            event = dispatcher.received_from_envelope(copy.deepcopy(message))
            for subscription in bus.subscriptions_for(event.type):
                if subscription.name.startswith("payments."):  # what `manage.py consume --group payments` runs
                    dispatcher.run_handler(subscription, event, after_commit=False)
            return
        with worker_dispatch(via == WORKER):
            record_incoming(copy.deepcopy(message))

    def requested(self, payment_id: uuid.UUID) -> dict[str, Any]:
        """What the bank asked the network for this payment (its payment.requested)."""
        [request] = OutboxEvent.objects.filter(event_type="payment.requested", aggregate_id=str(payment_id))
        return dict(request.envelope["data"])

    @precondition(lambda self: any(p.state == SENT and not p.answer for p in self.payments.values()))
    @rule(data=st.data(), via=DELIVERIES)
    def network_answers(self, data, via):
        """The network settles or returns a payment it was sent."""
        self.follow()
        waiting = [payment_id for payment_id, p in self.payments.items() if p.state == SENT and not p.answer]
        if not waiting:
            return
        payment_id = data.draw(st.sampled_from(waiting), label="payment answered")
        flight = self.payments[payment_id]
        [flight.answer] = self.network.answer(self.requested(payment_id), now=timezone.now())
        if flight.beneficiary == CLOSED_THERE:
            assert flight.answer["data"]["status"] == RETURNED
        self.deliver(flight.answer, via)
        self.follow()
        if via != WORKER:
            assert flight.state == flight.answer["data"]["status"], f"payment {payment_id}: answer not booked"

    @precondition(lambda self: any(p.answer for p in self.payments.values()))
    @rule(data=st.data(), same_message=st.booleans(), via=DELIVERIES)
    def network_answers_again(self, data, same_message, via):
        """The network's answer arrives again: the same message (Kafka delivers at least once),
        or the same answer in a new message (the network asked again). It is booked once."""
        self.follow()
        payment_id = data.draw(st.sampled_from([pid for pid, p in self.payments.items() if p.answer]), label="again")
        flight = self.payments[payment_id]
        assert flight.answer is not None
        if same_message:  # one id can be recorded in the outbox once: again, it comes from Kafka
            message, via = flight.answer, CONSUMER
        else:
            [message] = self.network.answer(self.requested(payment_id), now=timezone.now())
            assert message["data"]["status"] == flight.answer["data"]["status"]
        if flight.state == SENT:  # the first one still waits for a worker: this one books it
            self.deliver(message, via)
            self.follow()
            assert via == WORKER or flight.state != SENT
            return
        if same_message:  # the inbox knows it: nothing at all is written
            before = footprint()
            self.deliver(message, via)
            assert footprint() == before
            return
        self.not_booked(lambda: self.deliver(message, via), reason=None)

    @rule(
        data=st.data(),
        kind=st.sampled_from(["unknown", "not sent", "amount", "currency", "end_to_end_id", "contradicting"]),
        via=st.sampled_from([INLINE, CONSUMER]),
    )
    def network_sends_a_wrong_answer(self, data, kind, via):
        """An answer that does not fit a payment the bank sent is kept for operations and moves
        nothing: for a payment it does not know or never sent, with another amount, currency or
        end-to-end id, or contradicting the answer the bank booked. Through the outbox, every
        other reader of the event stays out of it too (they read what the bank booked, not the
        network's `payment.processed`): no handler fails, no notice is written."""
        self.follow()
        pick = {
            "unknown": lambda p: False,
            "not sent": lambda p: p.state in (SCREENING, REVIEW, FAILED),
            "contradicting": lambda p: p.state in (SETTLED, RETURNED),
        }.get(kind, lambda p: p.state in (SENT, SETTLED, RETURNED))
        candidates = [payment_id for payment_id, p in self.payments.items() if pick(p)]
        if kind == "unknown":
            payment_id, amount = uuid.uuid4(), 1_000
            end_to_end_id = new_end_to_end_id(ispb=django_settings.FINTECH_BANK_ISPB, at=timezone.now())
            status = SETTLED
        elif not candidates:
            return
        else:
            payment_id = data.draw(st.sampled_from(candidates), label="payment")
            row = Payment.objects.get(pk=payment_id)
            amount, end_to_end_id = row.amount, row.end_to_end_id
            status = {SETTLED: RETURNED, RETURNED: SETTLED}.get(row.status, SETTLED)
        answer = {
            "payment_id": str(payment_id),
            "status": status,
            "network_reference": f"WRONG{uuid.uuid4().hex[:8]}",
            "return_reason": "AC03 invalid creditor account number" if status == RETURNED else None,
            "processed_at": rfc3339(timezone.now()),
            "amount": amount + 1 if kind == "amount" else amount,
            "currency": "USD" if kind == "currency" else "BRL",
            "end_to_end_id": (
                new_end_to_end_id(ispb=django_settings.FINTECH_BANK_ISPB, at=timezone.now())
                if kind == "end_to_end_id"
                else end_to_end_id
            ),
        }
        message = network_message("payment.processed", subject=str(payment_id), data=answer, now=timezone.now())
        reason = {
            "unknown": IgnoredNetworkMessage.Reason.UNKNOWN_PAYMENT,
            "not sent": IgnoredNetworkMessage.Reason.NOT_SENT,
            "amount": IgnoredNetworkMessage.Reason.AMOUNT_MISMATCH,
            "currency": IgnoredNetworkMessage.Reason.CURRENCY_MISMATCH,
            "end_to_end_id": IgnoredNetworkMessage.Reason.END_TO_END_MISMATCH,
            "contradicting": IgnoredNetworkMessage.Reason.CONFLICTING_ANSWER,
        }[kind]
        self.not_booked(lambda: self.deliver(message, via), reason=reason)

    @precondition(lambda self: any(p.state == SENT and not p.flagged for p in self.payments.values()))
    @rule()
    def network_is_late(self):
        """The network's answer time runs out: the payments it has not answered are flagged for
        operations, and nothing else happens to them."""
        self.follow()
        late = {payment_id for payment_id, p in self.payments.items() if p.state == SENT and not p.flagged}
        before = footprint()
        timeout = timedelta(seconds=django_settings.FINTECH_PAYMENT_ANSWER_TIMEOUT_SECONDS + 1)
        flagged = payments.payments_flag_overdue(now=timezone.now() + timeout)
        assert {payment.id for payment in flagged} == late
        kept = ("payments", "payment steps")
        assert books_of(footprint(), leaving_out=kept) == books_of(before, leaving_out=kept)
        for payment_id in late:
            self.payments[payment_id].flagged = True

    @rule(
        index=ACCOUNT_INDEXES,
        amount=st.integers(1, 1_000_000),
        to=st.sampled_from(["account"] * 4 + ["closed account", "unknown number", "another bank"]),
        via=DELIVERIES,
    )
    def credit_arrives(self, index, amount, to, via):
        """Another bank sends money to one of our accounts (credited, or returned to the network
        when the account is blocked or closed), to a number we do not have, or to another bank."""
        self.follow()
        account_id: uuid.UUID | None = None
        if to == "account" or (to == "closed account" and self.closed):
            account_id = self.account(index) if to == "account" else self.closed[index % len(self.closed)]
            number = BankAccount.objects.get(pk=account_id).number
        else:
            number = "00000000-0"
        [message] = self.network.credit(account_number=number, amount=amount, currency="BRL", now=timezone.now())
        if to == "another bank":
            account_id = None
            data = {**message["data"], "creditor_ispb": SENDER_ISPB}
            message = network_message("payment.received", subject=data["end_to_end_id"], data=data, now=timezone.now())
        credit = CreditSent(message=message, account=account_id, refusal=self.credit_refusal(account_id))
        self.credits.append(credit)
        self.deliver(message, via)
        self.follow_credits()
        assert credit.booked == (via != WORKER)

    @precondition(lambda self: any(c.booked for c in self.credits))
    @rule(data=st.data(), how=st.sampled_from(["the same message", "a new message", "another amount"]), via=DELIVERIES)
    def credit_arrives_again(self, data, how, via):
        """A credit the bank booked arrives again: the same message, the same credit in a new
        message (both change nothing), or another amount under the same end-to-end id (kept for
        operations, not booked)."""
        self.follow()
        credit = data.draw(st.sampled_from([c for c in self.credits if c.booked]), label="credit")
        if how == "the same message":
            message, via = credit.message, CONSUMER
        else:
            changed = {"amount": credit.message["data"]["amount"] + 1} if how == "another amount" else {}
            message = network_message(
                "payment.received",
                subject=credit.message["subject"],
                data={**credit.message["data"], **changed},
                now=timezone.now(),
            )
        reason = IgnoredNetworkMessage.Reason.CONFLICTING_CREDIT if how == "another amount" else None
        if via == WORKER:  # read later: checked when a worker delivers it, by the books' invariants
            self.deliver(message, via)
            return
        self.not_booked(lambda: self.deliver(message, via), reason=reason)

    # --- the worker ----------------------------------------------------------------------------

    @precondition(lambda self: self.pending > 0)
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
        report = reconcile_ledger()  # clearing included: payments.public.in_flight_totals()
        assert report.ok, report.problems
        assert report.totals_by_currency.get("BRL", 0) == 0
        below_zero = LedgerAccount.objects.filter(allow_negative=False).filter(Q(balance__lt=F("held")) | Q(held__lt=0))
        assert not below_zero.exists(), list(below_zero.values_list("code", "balance", "held"))

    @invariant()
    def money_is_conserved(self):
        """Money enters by deposits and credits and leaves by settled payments: the bank's own
        accounts hold what the model says, and nothing lands anywhere else."""
        self.follow()
        balances = dict(LedgerAccount.objects.filter(is_system=True).values_list("code", "balance"))
        expected = dict.fromkeys(balances, 0)
        expected[system_account_code("settlement", "BRL")] = self.settlement
        expected[system_account_code("clearing", "BRL")] = self.clearing()
        assert balances == expected

    @invariant()
    def no_handler_failed(self):
        """No handler gave up on an event. One waits, by design, and only while an event older
        than the one it failed on is left to the worker: analytics reads a review's money from
        the alert's fact, so a review decided (and dispatched at once) before the worker delivered
        its `fraud.alert` is retried until it has."""
        assert not DeadLetter.objects.exists(), list(DeadLetter.objects.values("handler", "error"))
        for event_id, handler, error in DeliveryAttempt.objects.values_list("event_id", "handler", "last_error"):
            assert handler == "analytics.count.fraud.review_decided", (handler, error)
            assert "SubjectNotYetKnown" in error, (handler, error)
            [failed_on] = OutboxEvent.objects.filter(event_id=event_id).values_list("id", flat=True)
            waits_for = OutboxEvent.objects.filter(id__lt=failed_on, dispatched_at__isnull=True, next_attempt_at=None)
            assert waits_for.exists(), f"{handler} fails on {event_id} with nothing left for it to wait for"

    @invariant()
    def one_posting_per_operation(self):
        """Every journal transaction belongs to exactly one operation, under the ledger's key for
        it, and there are as many as the operations call for: a deposit, a transfer, a payment
        sent and its answer, a credit each post once."""
        self.follow()
        journals = dict(JournalTransaction.objects.values_list("id", "posting_key"))
        assert len(journals) == self.journals, (len(journals), self.journals)
        hold_keys = {ledger.hold_key("payment", payment_id) for payment_id in self.payments}
        sends = dict(
            Hold.objects.filter(hold_key__in=hold_keys, status=Hold.Status.POSTED).values_list(
                "hold_key", "journal_transaction_id"
            )
        )
        completed = dict(
            Transfer.objects.filter(status=Transfer.Status.COMPLETED).values_list("id", "journal_transaction_id")
        )
        owners: Counter[uuid.UUID | None] = Counter([*sends.values(), *completed.values()])
        for model in (Deposit, Payment, InboundCredit):
            owners.update(
                model.objects.exclude(journal_transaction_id=None).values_list("journal_transaction_id", flat=True)
            )
        assert owners == Counter(journals.keys()), "journal transactions without an operation, or with two"
        for hold_key, send in sends.items():
            assert send is not None
            assert journals[send] == hold_key
        for transfer_id, posting in completed.items():
            assert posting is not None
            assert journals[posting] == ledger.hold_key("transfer", transfer_id)

    @invariant()
    def every_operation_where_its_history_allows(self):
        self.follow()
        check_payment_histories(self.payments)
        check_transfer_histories()

    @invariant()
    def ledger_equals_the_model(self):
        self.follow()
        ledger_accounts = {a.owner_ref: a for a in LedgerAccount.objects.filter(owner_ref__in=list(self.posted))}
        assert set(ledger_accounts) == set(self.posted)
        for account_id, posted in self.posted.items():
            account = ledger_accounts[account_id]
            assert (account.balance, account.held) == (posted, self.held(account_id)), account.code
            assert account.available == self.available(account_id) >= 0
        self.pending = pending_events()
        if self.pending:
            return
        # Everything was dispatched: every transfer and payment in flight has ended, as the model
        # says it must, waits in review for a decision, or (a payment) waits for the network.
        waiting = [transfer_id for transfer_id, flight in self.in_flight.items() if not flight.in_review]
        assert not waiting, f"transfers still holding money with no event left: {waiting}"
        unscreened = [pid for pid, p in self.payments.items() if p.state == SCREENING]
        assert not unscreened, f"payments still waiting for their screening with no event left: {unscreened}"
        unbooked = [pid for pid, p in self.payments.items() if p.state == SENT and p.answer]
        assert not unbooked, f"answers of the network not booked with no event left: {unbooked}"
        assert all(credit.booked for credit in self.credits)
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


def check_payment_histories(model: dict[uuid.UUID, OutboundPayment]) -> None:
    """Each payment's steps are a path its life allows, and its status, hold, journal, request to
    the network and fraud record agree with them and with the model."""
    rows = {p.id: p for p in Payment.objects.all()}
    assert set(rows) == set(model)
    steps: dict[uuid.UUID, list[tuple[str, str]]] = {payment_id: [] for payment_id in rows}
    for payment_id, step, status in PaymentStep.objects.order_by("id").values_list("payment_id", "step", "status"):
        steps[payment_id].append((step, status))
    holds = dict(
        Hold.objects.filter(hold_key__in=[ledger.hold_key("payment", p) for p in rows]).values_list(
            "hold_key", "status"
        )
    )
    requests = Counter(
        OutboxEvent.objects.filter(event_type="payment.requested").values_list("aggregate_id", flat=True)
    )
    screened = dict(Screening.objects.filter(subject_type="payment").values_list("subject_id", "decision"))
    alerts = dict(Alert.objects.filter(subject_id__in=list(rows)).values_list("subject_id", "status"))
    for payment_id, payment in rows.items():
        path = " ".join(step for step, _ in steps[payment_id])
        assert PAYMENT_PATH.fullmatch(path), f"payment {payment_id}: {path}"
        assert all(status == STEP_LEAVES[step] for step, status in steps[payment_id]), (payment_id, steps[payment_id])
        assert payment.status == steps[payment_id][-1][1], (payment_id, payment.status, path)
        sent = " sent" in path
        assert (payment.sent_at is not None) == sent == (requests[str(payment_id)] == 1), payment_id
        assert requests[str(payment_id)] <= 1, f"payment {payment_id} asked of the network twice"
        hold = Hold.Status.VOIDED if payment.status == FAILED else Hold.Status.POSTED if sent else Hold.Status.ACTIVE
        assert holds[ledger.hold_key("payment", payment_id)] == hold, payment_id
        answered = payment.status in (SETTLED, RETURNED)
        assert (payment.journal_transaction_id is not None) == answered, payment_id
        assert (payment.failure_code != "") == (payment.status == FAILED), payment_id
        decision = screened.get(payment_id)
        review = alerts.get(payment_id) if decision == "review" else None
        assert (decision == "review") == (" review" in path), (payment_id, decision, path)
        if payment.status == FAILED:
            allowed = FAILURES_AFTER.get(review or decision, set())  # never screened: never failed
            assert payment.failure_code in allowed, (payment_id, decision, review, payment.failure_code)
        if sent:
            assert decision == "approve" or review == Alert.Status.APPROVED, (payment_id, decision, review)
        if payment.status == REVIEW:
            assert review == Alert.Status.REVIEW, payment_id
        flight = model[payment_id]
        expected = {SCREENING: (Payment.Status.PENDING, False), SENT: (Payment.Status.PENDING, True)}
        assert (payment.status, sent) == expected.get(flight.state, (flight.state, sent)), (payment_id, flight.state)
        assert payment.failure_code == flight.failure_code, payment_id
        assert (payment.overdue_since is not None) == flight.flagged == (" flagged_overdue" in path), payment_id


def check_transfer_histories() -> None:
    """Each transfer's events are a path its life allows; its status is its last event's, and its
    hold and journal agree with it."""
    transfers = {t.id: t for t in Transfer.objects.all()}
    events: dict[str, list[str]] = {str(transfer_id): [] for transfer_id in transfers}
    failing: set[str] = set()  # failed, the failure not yet delivered by a worker
    published = OutboxEvent.objects.filter(event_type__in=TRANSFER_EVENTS).order_by("id")
    for aggregate_id, event_type, dispatched_at in published.values_list("aggregate_id", "event_type", "dispatched_at"):
        events[aggregate_id].append(event_type.removeprefix("transaction."))
        if event_type == "transaction.failed" and dispatched_at is None:
            failing.add(aggregate_id)
    holds = {
        h.hold_key: h for h in Hold.objects.filter(hold_key__in=[ledger.hold_key("transfer", t) for t in transfers])
    }
    alerts = dict(Alert.objects.filter(subject_id__in=list(transfers)).values_list("subject_id", "status"))
    for transfer_id, transfer in transfers.items():
        path = " ".join(events[str(transfer_id)])
        assert TRANSFER_PATH.fullmatch(path), f"transfer {transfer_id}: {path}"
        assert transfer.status == EVENT_LEAVES[events[str(transfer_id)][-1]], (transfer_id, transfer.status, path)
        hold = holds[ledger.hold_key("transfer", transfer_id)]
        if transfer.status == Transfer.Status.COMPLETED:
            assert hold.status == Hold.Status.POSTED
            assert transfer.journal_transaction_id == hold.journal_transaction_id is not None
        else:
            assert transfer.journal_transaction_id is None
            # A failed transfer's hold is voided by the ledger's step on its failure, which may
            # still wait for a worker; the step of a failure found while screening runs with it.
            if transfer.status != Transfer.Status.FAILED:
                assert hold.status == Hold.Status.ACTIVE, (transfer_id, path)
            elif hold.status != Hold.Status.VOIDED:
                assert hold.status == Hold.Status.ACTIVE, (transfer_id, path)
                assert str(transfer_id) in failing, (transfer_id, path)
        if " held_for_review" in path:
            review = alerts.get(transfer_id)
            assert transfer.status in TRANSFER_AFTER_REVIEW[review], (transfer_id, review, transfer.status)
            if transfer.status == Transfer.Status.FAILED:
                assert transfer.failure_code in FAILURES_AFTER[review], (transfer_id, review, transfer.failure_code)


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


# CI-sized by default (about a minute on SQLite and on PostgreSQL, on two busy cores); bigger by hand.
EXAMPLES = int(os.environ.get("FINTECH_PROPERTY_EXAMPLES", "15"))
STEPS = int(os.environ.get("FINTECH_PROPERTY_STEPS", "30"))


@pytest.fixture
def network_played_by_the_test(settings):
    """The payment network is outside the bank (the in-process simulator, where installed, stays
    silent): the machine answers for it. A handler's retry is due at once: the worker's next pass
    stands for the time its back-off waits."""
    settings.FINTECH_PAYMENT_NETWORK = "kafka"
    settings.FINTECH_HANDLER_RETRY_BASE_SECONDS = 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("network_played_by_the_test")
def test_the_books_stay_right_under_random_operations():
    with asynchronous_commits():
        run_state_machine_as_test(
            BooksMachine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,  # nothing written to the working tree; each run explores afresh
                # No shrinking: each try replays steps against a real database, and shrinking runs
                # past the test timeout. A failure prints its steps as they ran.
                phases=[Phase.explicit, Phase.reuse, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            ),
        )
