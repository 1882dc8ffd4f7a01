"""What other contexts may write to the audit trail: a decision of their own (a fraud review, a
rule changed), recorded in the caller's transaction so that the decision and its record commit
together, with the origin of the request that made it when there was one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apps.audit import origin as origins
from apps.audit.models import ActorType, AuditRecord
from apps.audit.services import audit_append
from fintech.auth.principal import Principal

__all__ = ["ActorType", "AuditEntry", "principal_type", "record", "records"]


def record(
    *,
    action: str,
    actor: str,
    actor_type: ActorType | str,
    resource_type: str,
    resource_id: str,
    customer_id: uuid.UUID | str | None = None,
    before: Any = None,
    after: Any = None,
    details: Any = None,
    occurred_at: datetime | None = None,
) -> None:
    """Append a record of `action` by `actor` on the resource. Inside a transaction it commits, or
    not, with the caller's work (the chain's lock is then held until that commits)."""
    origin = origins.current()
    audit_append(
        action=action,
        actor=actor,
        actor_type=actor_type,
        resource_type=resource_type,
        resource_id=resource_id,
        customer_id=customer_id,
        before=before,
        after=after,
        details=details,
        occurred_at=occurred_at,
        **(origin.as_fields() if origin is not None else origins.NO_ORIGIN),
    )


def principal_type(principal: Principal) -> ActorType:
    """The caller as the trail names it: the principal's own `kind` (customer, service, staff)."""
    return ActorType(principal.kind)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    occurred_at: datetime
    action: str
    actor: str
    actor_type: str
    resource_type: str
    resource_id: str
    before: Any
    after: Any
    details: Any


def records(*, action_prefix: str = "", resource_type: str = "", resource_id: str = "") -> list[AuditEntry]:
    """What the trail holds about a resource or an action, oldest first (reads the records the
    caller's context wrote, e.g. a decision's own record)."""
    rows = AuditRecord.objects.all()
    if action_prefix:
        rows = rows.filter(action__startswith=action_prefix)
    if resource_type:
        rows = rows.filter(resource_type=resource_type)
    if resource_id:
        rows = rows.filter(resource_id=resource_id)
    return [
        AuditEntry(
            seq=row.seq,
            occurred_at=row.occurred_at,
            action=row.action,
            actor=row.actor,
            actor_type=row.actor_type,
            resource_type=row.resource_type,
            resource_id=row.resource_id,
            before=row.before,
            after=row.after,
            details=row.details,
        )
        for row in rows.order_by("seq")
    ]
