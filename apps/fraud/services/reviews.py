"""Reviews of what the rules held: an analyst approves or rejects, and the time-out expires
what nobody decided; each decision audited and published."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.audit import public as audit
from apps.fraud.errors import (
    NotInReview,
    ReviewAlreadyDecided,
)
from apps.fraud.events import FraudReviewDecided
from apps.fraud.models import (
    Alert,
    Decision,
)
from fintech.errors import ValidationFailed
from fintech.events import rfc3339
from outbox.publisher import publish
from outbox.unit_of_work import unit_of_work

# Who decided what nobody decided.
REVIEW_TIMEOUT_ACTOR = "system:fraud-review-timeout"
# Who closes a review whose operation failed for another reason while it waited.
OPERATION_ENDED_ACTOR = "system:fraud-operation-ended"

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


def reviews_withdraw(*, subject_ids: Sequence[uuid.UUID], failure_codes: dict[uuid.UUID, str], now: datetime) -> int:
    """Withdraw the open reviews of operations that failed while they waited (an account blocked
    under a held transfer, say): one statement when there are none. Audited; no decision event,
    since nothing was decided and the operation's own failure event already told everyone."""
    with unit_of_work():
        alerts = list(
            Alert.objects.select_for_update(of=("self",))
            .select_related("screening")
            .filter(status=Alert.Status.REVIEW, subject_id__in=subject_ids)
        )
        reasons = {
            alert.pk: f"the operation failed while in review: {failure_codes.get(alert.subject_id, 'failed')}"
            for alert in alerts
        }
        for reason in set(reasons.values()):  # one statement per failure code, not per alert
            Alert.objects.filter(pk__in=[pk for pk, text in reasons.items() if text == reason]).update(
                status=Alert.Status.WITHDRAWN, decided_at=now, decided_by=OPERATION_ENDED_ACTOR, decision_reason=reason
            )
        for alert in alerts:
            reason = reasons[alert.pk]
            screening = alert.screening
            audit.record(
                action=f"fraud.review.{Alert.Status.WITHDRAWN}",
                actor=OPERATION_ENDED_ACTOR,
                actor_type=audit.ActorType.SYSTEM,
                resource_type=f"fraud.{screening.subject_type}",
                resource_id=str(screening.subject_id),
                customer_id=screening.customer_id,
                details={"alert_id": str(alert.id), "screening_id": str(screening.id), "reason": reason},
                occurred_at=now,
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
