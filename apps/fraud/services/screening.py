"""Commands of the fraud context: screening transfers and payments, deciding reviews, expiring
the ones nobody decided, changing the rules and the deny list.

A screening of a batch of operations costs three statements on PostgreSQL when every one is
approved: the accounts' rows locked (so the screenings of one account follow each other), the
facts of the whole batch (which also says whether the process's rules are still in force), and
the screenings written. Review and reject add the fired rules and the alerts.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from apps.fraud import selectors
from apps.fraud.events import FraudAlert, FraudScreened
from apps.fraud.models import (
    Alert,
    FiredRule,
    MonitoredAccount,
    Screening,
)
from apps.fraud.rules import (
    APPROVE,
    REJECT,
    REVIEW,
    Facts,
    Operation,
    RuleSet,
    Verdict,
    Windows,
)
from apps.fraud.selectors import RecordedFacts
from fintech.events import rfc3339
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work

# Who rejected what the rules rejected.
RULES_ACTOR = "system:fraud-rules"
# Attempts at reading facts under the rules in force while an administrator keeps changing them.
RULE_READS = 3
LOCK_BATCH_ROWS = 5_000

# -- screening --------------------------------------------------------------------------------


def operations_screen(*, operations: Sequence[Operation], now: datetime | None = None) -> list[Screening]:
    """Judge each operation by the rules in force, record the judgement and publish it:
    `fraud.screened` for every one, `fraud.alert` for those held for review or rejected.

    An operation already screened (its event delivered again, or by another route) is left as it
    is and not published again. Operations are judged in the order given, each with the facts
    of those before it, in this batch and before.
    """
    now = now or timezone.now()
    seen: set[uuid.UUID] = set()
    batch = []
    for operation in operations:
        if operation.subject_id not in seen:
            seen.add(operation.subject_id)
            batch.append(operation)
    if not batch:
        return []
    with unit_of_work():
        _take_turns(sorted({operation.account_id for operation in batch}), now)
        rules, recorded = _rules_and_facts(batch)
        windows = rules.windows()
        judged: dict[uuid.UUID, list[tuple[Operation, Verdict]]] = defaultdict(list)
        screenings: list[tuple[Screening, Verdict]] = []
        for operation, known in zip(batch, recorded, strict=True):
            if known.already_screened:
                continue
            facts = _facts(operation, known, judged, windows)
            verdict = rules.judge(facts)
            judged[operation.account_id].append((operation, verdict))
            screenings.append((_screening(operation, facts, verdict, rules, now), verdict))
        Screening.objects.bulk_create([screening for screening, _ in screenings])
        flagged = [(screening, verdict) for screening, verdict in screenings if verdict.decision != APPROVE]
        alerts = _raise_alerts(flagged, now) if flagged else {}
        for screening, verdict in screenings:
            judgement: dict[str, Any] = {
                "subject_type": screening.subject_type,
                "subject_id": str(screening.subject_id),
                "account_id": str(screening.account_id),
                "amount": screening.amount,
                "currency": screening.currency,
                "decision": screening.decision,
                "score": screening.score,
                "rules": [fired.as_event() for fired in verdict.fired],
            }
            publish(
                FraudScreened(**judgement, screening_id=str(screening.id), screened_at=rfc3339(now)), occurred_at=now
            )
            alert = alerts.get(screening.id)
            if alert is not None:
                publish(FraudAlert(**judgement, alert_id=str(alert.id), raised_at=rfc3339(now)), occurred_at=now)
    return [screening for screening, _ in screenings]


def _take_turns(account_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """Lock the accounts' rows (creating those not seen yet), in id order, until the commit: a
    concurrent screening of the same account waits and then counts this one.

    On SQLite every write transaction already holds the database's single write lock from its
    first statement (IMMEDIATE), so screenings follow each other without it."""
    if connection.vendor != "postgresql":
        return
    table = MonitoredAccount._meta.db_table
    moment = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        for start in range(0, len(account_ids), LOCK_BATCH_ROWS):
            chunk = account_ids[start : start + LOCK_BATCH_ROWS]
            values = ", ".join(["(%s::uuid, %s::timestamptz)"] * len(chunk))
            params: list[Any] = []
            for account_id in chunk:
                params += [account_id, moment]
            cursor.execute(
                f"INSERT INTO {table} (account_id, last_screened_at) VALUES {values} "  # noqa: S608
                "ON CONFLICT (account_id) DO UPDATE SET last_screened_at = EXCLUDED.last_screened_at",
                params,
            )


def _rules_and_facts(batch: Sequence[Operation]) -> tuple[RuleSet, list[RecordedFacts]]:
    """The rules in force and the facts gathered under them. The facts query reads the rule
    book's revision: when it is not the one the process's rules were read under, the rules are
    read again and so are the facts (their windows come from the rules)."""
    rules = selectors.cached_rule_set() or selectors.rule_set_load()
    for _ in range(RULE_READS):
        revision, recorded = selectors.recorded_facts(batch, rules.windows())
        if revision == rules.revision:
            return rules, recorded
        rules = selectors.rule_set_load()
    raise RuntimeError("the fraud rules kept changing while a screening read them; it is tried again")


def _facts(
    operation: Operation,
    known: RecordedFacts,
    judged: Mapping[uuid.UUID, list[tuple[Operation, Verdict]]],
    windows: Windows,
) -> Facts:
    """The recorded facts, plus the operations of this batch judged before this one."""
    count, amount = known.recent_count, known.recent_amount
    known_counterparty, returning_money = known.known_counterparty, known.returning_money
    for earlier, verdict in judged.get(operation.account_id, ()):
        if earlier.occurred_at > operation.occurred_at - windows.count:
            count += 1
        if earlier.currency == operation.currency and earlier.occurred_at > operation.occurred_at - windows.amount:
            amount += earlier.amount
        if earlier.counterparty == operation.counterparty and verdict.decision == APPROVE:
            known_counterparty = True
    if operation.counterparty_account_id is not None:
        for earlier, verdict in judged.get(operation.counterparty_account_id, ()):
            if (
                earlier.counterparty_account_id == operation.account_id
                and verdict.decision != REJECT
                and earlier.occurred_at > operation.occurred_at - windows.round_trip
            ):
                returning_money = True
    return Facts(
        amount=operation.amount,
        currency=operation.currency,
        occurred_at=operation.occurred_at,
        initiated_by_customer=operation.initiated_by_customer,
        account_opened_at=known.account_opened_at,
        recent_count=count,
        recent_amount=amount,
        known_counterparty=known_counterparty,
        returning_money=returning_money,
        deny_listed=known.deny_listed,
    )


def _screening(operation: Operation, facts: Facts, verdict: Verdict, rules: RuleSet, now: datetime) -> Screening:
    return Screening(
        id=uuid.uuid4(),
        subject_type=operation.subject_type,
        subject_id=operation.subject_id,
        account_id=operation.account_id,
        customer_id=operation.customer_id,
        counterparty=operation.counterparty,
        counterparty_account_id=operation.counterparty_account_id,
        amount=operation.amount,
        currency=operation.currency,
        initiated_by_customer=operation.initiated_by_customer,
        occurred_at=operation.occurred_at,
        decision=verdict.decision,
        score=verdict.score,
        rule_versions=rules.versions(),
        inputs=facts.as_inputs(),
        screened_at=now,
    )


def _raise_alerts(flagged: Sequence[tuple[Screening, Verdict]], now: datetime) -> dict[uuid.UUID, Alert]:
    FiredRule.objects.bulk_create(
        FiredRule(
            screening_id=screening.id,
            rule=fired.rule,
            version=fired.version,
            score=fired.score,
            reason=fired.reason[:500],
        )
        for screening, verdict in flagged
        for fired in verdict.fired
    )
    alerts = {
        screening.id: Alert(
            id=uuid.uuid4(),
            screening_id=screening.id,
            subject_id=screening.subject_id,
            account_id=screening.account_id,
            status=Alert.Status.REVIEW if verdict.decision == REVIEW else Alert.Status.REJECTED,
            raised_at=now,
            # The rules' reject is final: no analyst is asked.
            decided_at=None if verdict.decision == REVIEW else now,
            decided_by="" if verdict.decision == REVIEW else RULES_ACTOR,
        )
        for screening, verdict in flagged
    }
    Alert.objects.bulk_create(alerts.values())
    return alerts


def accounts_opened(*, opened: Mapping[uuid.UUID, datetime]) -> None:
    """Accounts were opened: their age is a fact the rules look at. Telling it again changes nothing."""
    if not opened:
        return
    with unit_of_work():
        MonitoredAccount.objects.bulk_create(
            [MonitoredAccount(account_id=account_id, opened_at=at) for account_id, at in sorted(opened.items())],
            update_conflicts=True,
            unique_fields=["account_id"],
            update_fields=["opened_at"],
        )
