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
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection
from django.utils import timezone

from apps.audit import public as audit
from apps.fraud import selectors
from apps.fraud.errors import (
    DenyListDuplicate,
    DenyListEntryNotFound,
    InvalidRuleParameters,
    NotInReview,
    ReviewAlreadyDecided,
    UnknownRule,
)
from apps.fraud.events import FraudAlert, FraudReviewDecided, FraudScreened
from apps.fraud.models import (
    Alert,
    Decision,
    DenyListEntry,
    FiredRule,
    FraudRule,
    FraudRuleVersion,
    MonitoredAccount,
    RuleBook,
    Screening,
)
from apps.fraud.rules import (
    APPROVE,
    CATALOGUE,
    REJECT,
    REVIEW,
    Facts,
    InvalidParameters,
    Operation,
    RuleSet,
    Verdict,
    Windows,
)
from apps.fraud.selectors import RecordedFacts
from fintech.errors import ValidationFailed
from fintech.events import rfc3339
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work

# Who decided what nobody decided, and who rejected what the rules rejected.
REVIEW_TIMEOUT_ACTOR = "system:fraud-review-timeout"
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


# -- reviews ----------------------------------------------------------------------------------


def review_approve(
    *, subject_id: uuid.UUID, decided_by: str, decider_kind: str, reason: str = "", now: datetime | None = None
) -> Alert:
    """An analyst lets an operation held for review continue."""
    return _review_decide(subject_id, Alert.Status.APPROVED, decided_by, decider_kind, reason, now)


def review_reject(
    *, subject_id: uuid.UUID, decided_by: str, decider_kind: str, reason: str = "", now: datetime | None = None
) -> Alert:
    """An analyst stops an operation held for review: it fails and its hold is released."""
    return _review_decide(subject_id, Alert.Status.REJECTED, decided_by, decider_kind, reason, now)


def _review_decide(
    subject_id: uuid.UUID, status: str, decided_by: str, decider_kind: str, reason: str, now: datetime | None
) -> Alert:
    now = now or timezone.now()
    reason = _reason(reason)
    with unit_of_work():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .select_related("screening")
            .filter(subject_id=subject_id)
            .first()
        )
        if alert is None or alert.screening.decision != Decision.REVIEW:
            raise NotInReview(f"{subject_id} is not held for review.")
        if alert.status != Alert.Status.REVIEW:
            raise ReviewAlreadyDecided(f"The review of {subject_id} was already decided: {alert.status}.")
        _decided([alert], status=status, decided_by=decided_by, decider_kind=decider_kind, reason=reason, now=now)
    return alert


def reviews_expire(*, now: datetime | None = None, limit: int = 200) -> int:
    """Reject the reviews nobody decided within FINTECH_FRAUD_REVIEW_TIMEOUT_HOURS, oldest first,
    at most `limit` in one transaction; returns how many. A review an analyst is deciding right
    now is skipped, not waited for."""
    now = now or timezone.now()
    deadline = now - timedelta(hours=settings.FINTECH_FRAUD_REVIEW_TIMEOUT_HOURS)
    with unit_of_work():
        alerts = list(
            Alert.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("screening")
            .filter(status=Alert.Status.REVIEW, raised_at__lte=deadline)
            .order_by("raised_at")[:limit]
        )
        if alerts:
            _decided(
                alerts,
                status=Alert.Status.EXPIRED,
                decided_by=REVIEW_TIMEOUT_ACTOR,
                decider_kind=audit.ActorType.SYSTEM,
                reason=f"not decided within {settings.FINTECH_FRAUD_REVIEW_TIMEOUT_HOURS} h",
                now=now,
            )
    return len(alerts)


def _decided(
    alerts: Sequence[Alert], *, status: str, decided_by: str, decider_kind: str, reason: str, now: datetime
) -> None:
    """Record the decision on each alert, publish it, and write it to the audit trail."""
    Alert.objects.filter(pk__in=[alert.pk for alert in alerts]).update(
        status=status, decided_at=now, decided_by=decided_by, decision_reason=reason
    )
    for alert in alerts:
        alert.status, alert.decided_at, alert.decided_by, alert.decision_reason = status, now, decided_by, reason
        screening = alert.screening
        publish(
            FraudReviewDecided(
                subject_type=screening.subject_type,
                subject_id=str(screening.subject_id),
                decision=status,
                decided_by=decided_by,
                reason=reason,
                decided_at=rfc3339(now),
            ),
            occurred_at=now,
        )
        audit.record(
            action=f"fraud.review.{status}",
            actor=decided_by,
            actor_type=decider_kind,
            resource_type=f"fraud.{screening.subject_type}",
            resource_id=str(screening.subject_id),
            customer_id=screening.customer_id,
            details={
                "alert_id": str(alert.id),
                "screening_id": str(screening.id),
                "reason": reason,
                "screened": screening.decision,
                "score": screening.score,
                "rule_versions": screening.rule_versions,
            },
            occurred_at=now,
        )


def _reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) > 500:
        raise ValidationFailed("reason is at most 500 characters.", errors={"reason": ["At most 500 characters."]})
    return reason


# -- the rules and the deny list ----------------------------------------------------------------


def rule_change(
    *,
    name: str,
    changed_by: str,
    changer_kind: str,
    enabled: bool | None = None,
    parameters: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> FraudRule:
    """Switch a rule on or off or change its parameters (missing ones take their defaults): a new
    version, recorded in its history, in force for every screening from the commit on. A change
    that changes nothing makes no version."""
    rule_class = CATALOGUE.get(name)
    if rule_class is None:
        raise UnknownRule(f"No fraud rule {name!r}; the rules are {', '.join(CATALOGUE)}.")
    now = now or timezone.now()
    with unit_of_work():
        rule = FraudRule.objects.select_for_update().filter(pk=name).first()
        if rule is None:  # a table emptied by hand: the rule ran with its defaults, version 1
            rule = FraudRule(name=name, enabled=True, parameters=rule_class.default_parameters(), version=1)
        before = {"enabled": rule.enabled, "parameters": rule.parameters, "version": rule.version}
        wanted = dict(rule.parameters if parameters is None else parameters)
        try:
            configured = rule_class.configured(wanted, version=rule.version + 1)
        except InvalidParameters as error:
            raise InvalidRuleParameters(
                f"The {name} rule cannot run with these parameters: {error}.",
                errors={field: [message] for field, message in error.errors.items()},
            ) from None
        new_enabled = rule.enabled if enabled is None else enabled
        new_parameters = configured.parameters()
        if rule._state.adding is False and (new_enabled, new_parameters) == (rule.enabled, rule.parameters):
            return rule
        rule.enabled, rule.parameters, rule.version = new_enabled, new_parameters, configured.version
        rule.updated_by, rule.updated_at = changed_by, now
        rule.save()
        FraudRuleVersion.objects.create(
            rule=name,
            version=rule.version,
            enabled=rule.enabled,
            parameters=rule.parameters,
            changed_by=changed_by,
            changed_at=now,
        )
        RuleBook.objects.update_or_create(pk=1, defaults={"revision": uuid.uuid4(), "changed_at": now})
        audit.record(
            action="fraud.rule.changed",
            actor=changed_by,
            actor_type=changer_kind,
            resource_type="fraud.rule",
            resource_id=name,
            before=before,
            after={"enabled": rule.enabled, "parameters": rule.parameters, "version": rule.version},
            occurred_at=now,
        )
    return rule


def deny_list_add(
    *, kind: str, value: str, reason: str, added_by: str, adder_kind: str, now: datetime | None = None
) -> DenyListEntry:
    """Refuse every transfer or payment to this destination from now on (the deny-list rule rejects them)."""
    now = now or timezone.now()
    value = deny_list_value(kind=kind, value=value)
    reason = reason.strip()
    if not reason:
        raise ValidationFailed("Say why it is denied.", errors={"reason": ["This field is required."]})
    try:
        with unit_of_work(savepoint=True):
            entry = DenyListEntry.objects.create(
                kind=kind, value=value, reason=reason[:280], added_by=added_by, created_at=now
            )
            audit.record(
                action="fraud.deny_list.added",
                actor=added_by,
                actor_type=adder_kind,
                resource_type="fraud.deny_list",
                resource_id=f"{kind}:{value}",
                details={"reason": entry.reason},
                occurred_at=now,
            )
    except IntegrityError:
        raise DenyListDuplicate(f"{kind} {value} is already on the deny list.") from None
    return entry


def deny_list_value(*, kind: str, value: str) -> str:
    """The value of a deny-list entry as the screening compares it: an account's or customer's id
    in its canonical form, a beneficiary's reference as given."""
    if kind not in DenyListEntry.Kind.values:
        raise ValidationFailed(
            f"kind is one of {', '.join(DenyListEntry.Kind.values)}.", errors={"kind": ["Unknown kind."]}
        )
    value = value.strip()
    if kind in (DenyListEntry.Kind.ACCOUNT, DenyListEntry.Kind.CUSTOMER):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValidationFailed(f"A {kind} is named by its id.", errors={"value": ["Must be a UUID."]}) from None
    if not value or len(value) > 128:
        raise ValidationFailed("value is 1 to 128 characters.", errors={"value": ["1 to 128 characters."]})
    return value


def deny_list_remove(*, entry_id: int, removed_by: str, remover_kind: str, now: datetime | None = None) -> None:
    now = now or timezone.now()
    with unit_of_work():
        entry = DenyListEntry.objects.select_for_update().filter(pk=entry_id).first()
        if entry is None:
            raise DenyListEntryNotFound(f"No deny-list entry {entry_id}.")
        entry.delete()
        audit.record(
            action="fraud.deny_list.removed",
            actor=removed_by,
            actor_type=remover_kind,
            resource_type="fraud.deny_list",
            resource_id=f"{entry.kind}:{entry.value}",
            details={"reason": entry.reason, "added_by": entry.added_by},
            occurred_at=now,
        )
