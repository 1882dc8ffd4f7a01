"""The network's settlement file against the bank's own records (`manage.py reconcile_settlement`).

Every row is matched by its id (the payment id of an outbound item, the end-to-end id of an
inbound one), in chunks, so a file of millions of rows costs a bounded number of queries per
thousand rows:

- **extra**: a row the bank has no record of (or a row listed twice);
- **mismatched**: a row whose amount, currency, end-to-end id or status differs from ours (the
  network says settled and the bank still waits, the bank returned a credit the network lists as
  credited, ...);
- **missing**: a payment the network answered, or a credit it sent, on one of the file's days by
  the bank's records, that the file does not list;
- **unreadable**: a row that is not one the network writes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from apps.payments import selectors
from apps.payments.models import InboundCredit, Payment
from fintech.payment_network import INBOUND, OUTBOUND, SettlementFileError, SettlementItem, read_settlement_file

Progress = Callable[[int, int], None]
CHUNK_ROWS = 1000


@dataclass
class SettlementReport:
    rows: int = 0
    matched: int = 0
    days: set[date] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.mismatched or self.unreadable)


def _differences(ours: tuple[int, str, str, str], theirs: SettlementItem) -> list[str]:
    amount, currency, end_to_end_id, status = ours
    found = []
    if amount != theirs.amount:
        found.append(f"amount {theirs.amount} in the file, {amount} in our books")
    if currency != theirs.currency:
        found.append(f"currency {theirs.currency} in the file, {currency} in our books")
    if end_to_end_id != theirs.end_to_end_id:
        found.append(f"end-to-end id {theirs.end_to_end_id} in the file, {end_to_end_id} in our books")
    if status != theirs.status:
        found.append(f"{theirs.status} in the file, {status} in our books")
    return found


class _Matcher:
    def __init__(self, report: SettlementReport) -> None:
        self.report = report
        self.seen_payments: set[str] = set()
        self.seen_credits: set[str] = set()

    def match(self, items: list[SettlementItem]) -> None:
        outbound = [item for item in items if item.direction == OUTBOUND]
        inbound = [item for item in items if item.direction == INBOUND]
        payments = selectors.payments_by_id(payment_ids=[uuid.UUID(item.payment_id) for item in outbound])
        credits = selectors.credits_by_end_to_end_id(end_to_end_ids=[item.end_to_end_id for item in inbound])
        for item in outbound:
            payment = payments.get(item.payment_id)
            self._one(item, item.payment_id, self.seen_payments, _terms_of_payment(payment) if payment else None)
        for item in inbound:
            credit = credits.get(item.end_to_end_id)
            self._one(item, item.end_to_end_id, self.seen_credits, _terms_of_credit(credit) if credit else None)

    def _one(self, item: SettlementItem, key: str, seen: set[str], ours: tuple[int, str, str, str] | None) -> None:
        name = f"{item.direction} {key}"
        if key in seen:
            self.report.extra.append(f"{name}: listed twice in the file")
            return
        seen.add(key)
        if ours is None:
            self.report.extra.append(f"{name}: in the file ({item.status} {item.amount} {item.currency}), not ours")
            return
        differences = _differences(ours, item)
        if differences:
            self.report.mismatched.append(f"{name}: {'; '.join(differences)}")
        else:
            self.report.matched += 1


def _terms_of_payment(payment: Payment) -> tuple[int, str, str, str]:
    return payment.amount, payment.currency, payment.end_to_end_id, payment.status


def _terms_of_credit(credit: InboundCredit) -> tuple[int, str, str, str]:
    return credit.amount, credit.currency, credit.end_to_end_id, credit.status


def _chunks(
    items: Iterable[SettlementItem | SettlementFileError], report: SettlementReport
) -> Iterable[list[SettlementItem]]:
    chunk: list[SettlementItem] = []
    for item in items:
        report.rows += 1
        if isinstance(item, SettlementFileError):
            report.unreadable.append(str(item))
            continue
        report.days.add(date.fromisoformat(item.date))
        chunk.append(item)
        if len(chunk) >= CHUNK_ROWS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def reconcile_settlement(
    path: str | Path, *, days: set[date] | None = None, progress: Progress | None = None
) -> SettlementReport:
    """Match the settlement file at `path` against our payments and credits. `days` are the days
    the file covers (by default, those its rows name): what we booked for them must be in it."""
    report = SettlementReport()
    with open(path, "rb") as handle:
        total = max(sum(1 for _ in handle) - 1, 0)
    matcher = _Matcher(report)
    for chunk in _chunks(read_settlement_file(path), report):
        matcher.match(chunk)
        if progress and report.rows < total:
            progress(report.rows, total)
    if progress:
        progress(report.rows, total)
    if days:
        report.days = set(days)
    for payment in selectors.payments_answered_on(days=report.days).iterator(chunk_size=2000):
        if str(payment.id) not in matcher.seen_payments:
            report.missing.append(
                f"{OUTBOUND} {payment.id}: {payment.status} {payment.amount} {payment.currency} in our books, "
                "not in the file"
            )
    for credit in selectors.credits_sent_on(days=report.days).iterator(chunk_size=2000):
        if credit.end_to_end_id not in matcher.seen_credits:
            report.missing.append(
                f"{INBOUND} {credit.end_to_end_id}: {credit.status} {credit.amount} {credit.currency} in our books, "
                "not in the file"
            )
    return report
