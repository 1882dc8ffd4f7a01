"""Proofs that the books are right, read in chunks so they work on millions of rows.

- every journal transaction balances per currency;
- every entry's balance_after continues its account's running balance;
- every account's cached balance equals the sum of its entries, and its held amount the sum
  of its active holds; no account that may not go negative is below zero;
- the balances of all accounts sum to zero per currency (debits = credits, bank-wide);
- each clearing account holds exactly the payments the network has and has not answered yet
  (a question to the payments context, read in the same snapshot as the balance).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import Sum

from apps.ledger.models import Hold, JournalEntry, LedgerAccount, Side, system_account_code
from apps.payments import public as payments

Progress = Callable[[str, int, int], None]


@dataclass
class ReconciliationReport:
    journal_transactions_checked: int = 0
    entries_checked: int = 0
    accounts_checked: int = 0
    problems: list[str] = field(default_factory=list)
    totals_by_currency: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _debit_positive(side: str, amount: int) -> int:
    return amount if side == Side.DEBIT else -amount


def reconcile_ledger(*, chunk_size: int = 20_000, progress: Progress | None = None) -> ReconciliationReport:
    report = ReconciliationReport()
    accounts = {
        a["id"]: a
        for a in LedgerAccount.objects.values(
            "id", "code", "normal_side", "currency", "balance", "held", "allow_negative"
        )
    }
    report.accounts_checked = len(accounts)
    running: dict[uuid.UUID, int] = defaultdict(int)  # the chain of balance_after, for continuity
    sums: dict[uuid.UUID, int] = defaultdict(int)  # what the entries really add up to
    open_journals: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    seen_journals: set[uuid.UUID] = set()
    total = JournalEntry.objects.count()
    last_id = 0
    while True:
        chunk = list(
            JournalEntry.objects.filter(id__gt=last_id)
            .order_by("id")
            .values_list("id", "transaction_id", "account_id", "side", "amount", "currency", "balance_after")[
                :chunk_size
            ]
        )
        if not chunk:
            break
        for entry_id, journal_id, account_id, side, amount, currency, balance_after in chunk:
            account = accounts[account_id]
            signed = amount if side == account["normal_side"] else -amount
            running[account_id] += signed
            sums[account_id] += signed
            if running[account_id] != balance_after:
                report.problems.append(
                    f"entry {entry_id} on {account['code']}: balance_after {balance_after} but the entries "
                    f"before it sum to {running[account_id]}"
                )
                running[account_id] = balance_after  # report each break once, not every entry after it
            open_journals[(journal_id, currency)] += _debit_positive(side, amount)
            seen_journals.add(journal_id)
        # Journal transactions that balance are done; only those straddling the chunk stay.
        for key in [k for k, net in open_journals.items() if net == 0]:
            del open_journals[key]
        last_id = chunk[-1][0]
        report.entries_checked += len(chunk)
        if progress:
            progress("entries", report.entries_checked, total)
    report.journal_transactions_checked = len(seen_journals)
    for (journal_id, currency), net in sorted(open_journals.items(), key=lambda item: str(item[0])):
        report.problems.append(f"journal transaction {journal_id} does not balance in {currency}: net {net:+d}")

    held = dict(
        Hold.objects.filter(status=Hold.Status.ACTIVE)
        .values("account_id")
        .annotate(total=Sum("amount"))
        .values_list("account_id", "total")
    )
    totals: dict[str, int] = defaultdict(int)
    for account_id, account in accounts.items():
        entries_sum = sums.get(account_id, 0)
        if account["balance"] != entries_sum:
            report.problems.append(
                f"account {account['code']}: cached balance {account['balance']} but its entries sum to {entries_sum}"
            )
        active_holds = held.get(account_id) or 0
        if account["held"] != active_holds:
            report.problems.append(
                f"account {account['code']}: held {account['held']} but its active holds sum to {active_holds}"
            )
        if not account["allow_negative"] and account["balance"] - account["held"] < 0:
            report.problems.append(f"account {account['code']}: available balance is negative")
        sign = 1 if account["normal_side"] == Side.DEBIT else -1
        totals[account["currency"]] += sign * account["balance"]
    report.totals_by_currency = dict(totals)
    for currency, net in sorted(totals.items()):
        if net:
            report.problems.append(f"the books do not balance in {currency}: debits exceed credits by {net:+d}")
    report.problems.extend(clearing_problems())
    return report


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """Reads that see one moment of a live database (PostgreSQL); elsewhere, or inside a
    transaction already open, the reads as they come."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def clearing_problems() -> list[str]:
    """Clearing owes the network exactly the payments it has and has not answered, per currency."""
    with _one_snapshot():
        clearing_accounts = LedgerAccount.objects.filter(
            is_system=True, code__startswith=system_account_code("clearing", "")
        )
        clearing = dict(clearing_accounts.values_list("currency", "balance"))
        in_flight = payments.in_flight_totals()
    return [
        f"clearing holds {clearing.get(currency, 0)} {currency} but the payments sent to the network and not "
        f"answered sum to {in_flight.get(currency, 0)}"
        for currency in sorted(set(clearing) | set(in_flight))
        if clearing.get(currency, 0) != in_flight.get(currency, 0)
    ]
