"""The rule book and the deny list, changed by the back office: each change versioned or
recorded, and audited."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import IntegrityError
from django.utils import timezone

from apps.audit import public as audit
from apps.fraud.errors import (
    DenyListDuplicate,
    DenyListEntryNotFound,
    InvalidRuleParameters,
    UnknownRule,
)
from apps.fraud.models import (
    DenyListEntry,
    FraudRule,
    FraudRuleVersion,
    RuleBook,
)
from apps.fraud.rules import (
    CATALOGUE,
    InvalidParameters,
)
from fintech.errors import ValidationFailed
from outbox.unit_of_work import unit_of_work

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
