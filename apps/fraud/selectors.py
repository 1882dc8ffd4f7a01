"""Queries of the fraud context: the rules in force (kept in the process under the rule book's
revision), the facts a screening needs (one statement for a whole batch), and the alerts."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.fraud.models import Alert, DenyListEntry, FraudRule, FraudRuleVersion, MonitoredAccount, RuleBook, Screening
from apps.fraud.rules import Operation, RuleConfiguration, RuleSet, Windows

# Rows per facts statement: 13 parameters a row, well under SQLite's 32,766 and PostgreSQL's 65,535.
FACTS_BATCH_ROWS = 1_000

_cache_lock = threading.Lock()
_cached: list[RuleSet] = []


# -- the rules in force -----------------------------------------------------------------------


def rule_book_revision() -> str | None:
    revision = RuleBook.objects.filter(pk=1).values_list("revision", flat=True).first()
    return str(revision) if revision is not None else None


def rule_set_load() -> RuleSet:
    """Read the rules from the table and keep them as this process's rules in force. The revision
    is read first: rules changed in between are newer than it, so the next facts query, which
    reads the revision again, finds it moved and loads them once more (never the reverse)."""
    revision = rule_book_revision()
    rows = FraudRule.objects.all()
    rule_set = RuleSet.of(
        (RuleConfiguration(name=r.name, enabled=r.enabled, parameters=r.parameters, version=r.version) for r in rows),
        revision=revision,
    )
    with _cache_lock:
        _cached[:] = [rule_set]
    return rule_set


def cached_rule_set() -> RuleSet | None:
    """The rules this process read last (the facts query says whether they are still in force)."""
    return _cached[0] if _cached else None


def rule_list() -> QuerySet[FraudRule]:
    return FraudRule.objects.all()


def rule_history(*, rule: str) -> QuerySet[FraudRuleVersion]:
    return FraudRuleVersion.objects.filter(rule=rule)


# -- what the rules need to know --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedFacts:
    """What the fraud context's own records say about an operation before it is screened."""

    already_screened: bool
    recent_count: int
    recent_amount: int
    known_counterparty: bool
    returning_money: bool
    deny_listed: str | None
    account_opened_at: datetime | None


def recorded_facts(operations: Sequence[Operation], windows: Windows) -> tuple[str | None, list[RecordedFacts]]:
    """The rule book's revision, and the recorded facts of each operation, in one statement per
    thousand operations. Operations of one batch do not see each other here (the caller adds
    them): only screenings already recorded.

    Windows look back from each operation's initiation and do not end there: an operation of the
    account initiated later but screened earlier (a request that waited for the account's lock
    with an older clock) is counted, so of any two operations the one screened second counts the
    first.
    """
    revision: str | None = None
    facts: list[RecordedFacts] = []
    for start in range(0, len(operations), FACTS_BATCH_ROWS):
        chunk = operations[start : start + FACTS_BATCH_ROWS]
        sql, params = _facts_statement(chunk, windows)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = sorted(cursor.fetchall(), key=lambda row: int(row[0]))
        for row in rows:
            revision = str(uuid.UUID(str(row[8]))) if row[8] is not None else None  # SQLite answers hex
            facts.append(
                RecordedFacts(
                    already_screened=bool(row[1]),
                    recent_count=int(row[2]),
                    recent_amount=int(row[3]),
                    known_counterparty=bool(row[4]),
                    returning_money=bool(row[5]),
                    deny_listed=str(row[6]) if row[6] is not None else None,
                    account_opened_at=_moment(row[7]),
                )
            )
    return revision, facts


def _facts_statement(operations: Sequence[Operation], windows: Windows) -> tuple[str, list[Any]]:
    postgres = connection.vendor == "postgresql"
    ops = connection.ops
    cast = {
        "int": "%s::integer" if postgres else "%s",
        "uuid": "%s::uuid" if postgres else "%s",
        "text": "%s::text" if postgres else "%s",
        "time": "%s::timestamptz" if postgres else "%s",
    }
    columns = (
        ("n", "int"),
        ("subject_id", "uuid"),
        ("account_id", "uuid"),
        ("counterparty", "text"),
        ("counterparty_account_id", "uuid"),
        ("currency", "text"),
        ("count_since", "time"),
        ("amount_since", "time"),
        ("round_trip_since", "time"),
        ("deny_account", "text"),
        ("deny_customer", "text"),
        ("deny_beneficiary", "text"),
    )
    row_sql = "(" + ", ".join(cast[kind] for _, kind in columns) + ")"

    def as_uuid(value: uuid.UUID | None) -> Any:
        if value is None:
            return None
        return value if postgres else value.hex  # how Django keeps a UUIDField on SQLite

    params: list[Any] = []
    for n, op in enumerate(operations):
        params += [
            n,
            as_uuid(op.subject_id),
            as_uuid(op.account_id),
            op.counterparty,
            as_uuid(op.counterparty_account_id),
            op.currency,
            ops.adapt_datetimefield_value(op.occurred_at - windows.count),
            ops.adapt_datetimefield_value(op.occurred_at - windows.amount),
            ops.adapt_datetimefield_value(op.occurred_at - windows.round_trip),
            str(op.counterparty_account_id) if op.counterparty_account_id else None,
            str(op.counterparty_customer_id) if op.counterparty_customer_id else None,
            op.beneficiary_ref,
        ]
    screening = Screening._meta.db_table
    alert = Alert._meta.db_table
    deny = DenyListEntry._meta.db_table
    monitored = MonitoredAccount._meta.db_table
    book = RuleBook._meta.db_table
    names = ", ".join(name for name, _ in columns)
    sql = f"""
        WITH batch ({names}) AS (VALUES {", ".join([row_sql] * len(operations))})
        SELECT b.n,
            EXISTS (SELECT 1 FROM {screening} s WHERE s.subject_id = b.subject_id),
            (SELECT COUNT(*) FROM {screening} s
              WHERE s.account_id = b.account_id AND s.occurred_at > b.count_since),
            (SELECT COALESCE(SUM(s.amount), 0) FROM {screening} s
              WHERE s.account_id = b.account_id AND s.currency = b.currency AND s.occurred_at > b.amount_since),
            EXISTS (SELECT 1 FROM {screening} s LEFT JOIN {alert} a ON a.screening_id = s.id
              WHERE s.account_id = b.account_id AND s.counterparty = b.counterparty
                AND (s.decision = 'approve' OR a.status = 'approved')),
            EXISTS (SELECT 1 FROM {screening} s
              WHERE s.account_id = b.counterparty_account_id AND s.counterparty_account_id = b.account_id
                AND s.decision <> 'reject' AND s.occurred_at > b.round_trip_since),
            (SELECT MIN(d.kind) FROM {deny} d
              WHERE (d.kind = 'account' AND d.value = b.deny_account)
                 OR (d.kind = 'customer' AND d.value = b.deny_customer)
                 OR (d.kind = 'beneficiary' AND d.value = b.deny_beneficiary)),
            (SELECT m.opened_at FROM {monitored} m WHERE m.account_id = b.account_id),
            (SELECT r.revision FROM {book} r WHERE r.id = 1)
        FROM batch b
    """  # noqa: S608 - table names are the models' own, every value is a parameter
    return sql, params


def _moment(value: object) -> datetime | None:
    """A timestamp from a raw row: PostgreSQL answers datetimes, SQLite the text Django stored (UTC)."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else parse_datetime(str(value))
    if moment is None:
        return None
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


# -- alerts -----------------------------------------------------------------------------------


def alert_list(
    *,
    status: str | None = None,
    account_id: uuid.UUID | None = None,
    rule: str | None = None,
    raised_from: datetime | None = None,
    raised_to: datetime | None = None,
) -> QuerySet[Alert]:
    alerts = Alert.objects.select_related("screening").prefetch_related("screening__fired_rules")
    if status:
        alerts = alerts.filter(status=status)
    if account_id is not None:
        alerts = alerts.filter(account_id=account_id)
    if rule:
        alerts = alerts.filter(screening__fired_rules__rule=rule)  # a rule fires at most once a screening
    if raised_from is not None:
        alerts = alerts.filter(raised_at__gte=raised_from)
    if raised_to is not None:
        alerts = alerts.filter(raised_at__lt=raised_to)
    return alerts


def alert_of(*, subject_id: uuid.UUID) -> Alert | None:
    return alert_list().filter(subject_id=subject_id).first()


def screening_of(*, subject_id: uuid.UUID) -> Screening | None:
    return Screening.objects.filter(subject_id=subject_id).prefetch_related("fired_rules").first()


def open_reviews_count(*, customer_id: uuid.UUID, account_ids: Sequence[uuid.UUID]) -> int:
    """Reviews not decided yet of operations the customer sends or receives."""
    return (
        Alert.objects.filter(status=Alert.Status.REVIEW)
        .filter(Q(screening__customer_id=customer_id) | Q(screening__counterparty_account_id__in=list(account_ids)))
        .count()
    )
